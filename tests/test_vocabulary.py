"""One vocabulary: every reason and outcome is a member of ruleauth.reasons, and the documents and
the code name the same set; every public exception descends from RuleauthError."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pickle
import pkgutil
import re
from pathlib import Path

import ruleauth
from ruleauth.errors import RuleauthError
from ruleauth.reasons import Outcome, Reason

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ruleauth"

# String constants that equal a reason's value but are not a reason: (module path, value, why).
NOT_A_REASON = {
    # the `--json` field holding Authorization.internal_error (what failed), named after the attribute
    ("ruleauth/tools/cli.py", "internal_error"),
}


def _section(text: str, heading: str) -> str:
    match = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.M)
    assert match, f"no section {heading!r}"
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start() if end else len(rest)]


def _reasons_in_table(section: str) -> set[str]:
    """The backticked snake_case words of the table's second column (the outcome and reason)."""
    found: set[str] = set()
    for line in section.splitlines():
        cells = line.split("|")
        if line.startswith("|") and len(cells) > 2:
            found.update(re.findall(r"`([a-z]+(?:_[a-z]+)+)`", cells[2]))
    return found


def _documented() -> dict[str, set[str]]:
    spec = (ROOT / "docs" / "spec.md").read_text()
    readme = (ROOT / "README.md").read_text()
    return {
        "docs/spec.md Decisions": _reasons_in_table(_section(spec, "Decisions")),
        "README.md Decisions and reasons": _reasons_in_table(_section(readme, "Decisions and reasons")),
    }


def test_every_documented_reason_is_a_reason_member_and_every_member_is_documented():
    members = {reason.value for reason in Reason}
    documented = _documented()
    for where, reasons in documented.items():
        assert reasons, f"{where}: no reasons parsed"
        assert reasons <= members, f"{where} names reasons that are not Reason members: {reasons - members}"
    every = set().union(*documented.values())
    assert members <= every, f"Reason members no document lists: {members - every}"
    # The README is the complete list (the spec's table omits the allow reason and policy_conflict).
    assert documented["README.md Decisions and reasons"] == members


def test_the_rules_schema_offers_exactly_the_outcomes_and_names_every_reason():
    schema = json.loads((PACKAGE / "schema" / "rules.schema.json").read_text(encoding="utf-8"))
    short, mapping = schema["properties"]["tests"]["items"]["properties"]["expect"]["oneOf"]
    assert short["enum"] == mapping["properties"]["decision"]["enum"] == list(Outcome)
    described = mapping["properties"]["reason"]["description"]
    assert set(re.findall(r"\b[a-z]+(?:_[a-z]+)+\b", described)) == {reason.value for reason in Reason}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _docstring_nodes(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def test_no_reason_or_outcome_is_spelled_as_a_bare_string_outside_reasons_py():
    reasons = {reason.value for reason in Reason}
    found = []
    for path in _modules():
        relative = path.relative_to(ROOT).as_posix()
        if relative == "ruleauth/reasons.py":
            continue
        tree = ast.parse(path.read_text(), filename=relative)
        docstrings = _docstring_nodes(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value in reasons
                and id(node) not in docstrings
                and (relative, node.value) not in NOT_A_REASON
            ):
                found.append(f"{relative}:{node.lineno}: {node.value!r}")
    assert not found, "use ruleauth.reasons.Reason:\n" + "\n".join(found)


def test_reasons_and_outcomes_serialise_as_their_plain_values():
    for member in [*Reason, *Outcome]:
        assert isinstance(member, str)
        assert json.dumps(member) == json.dumps(member.value)
        assert json.dumps({member: member}) == json.dumps({member.value: member.value})
        assert f"{member}" == str(member) == member.value
        assert pickle.loads(pickle.dumps(member)) is member
    assert tuple(Outcome) == ("allow", "deny", "unauthorized")


def _public_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(ruleauth.__path__, "ruleauth."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and not name.startswith("_")
                and value.__module__.startswith("ruleauth.")
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


# Control-flow exceptions that never leave the module or stage that raises them: they carry no
# message for a user and are caught by their own module (named with a leading underscore or here).
INTERNAL = {
    "ruleauth.cel.closures.Unsupported",  # the closure compiler declines; the interpreter takes over
    "ruleauth.cel.evaluation.DeadlineExceeded",  # the per-request budget ran out: a rule_error
    "ruleauth.rules.snapshot.SnapshotUnusable",  # a stale snapshot: the YAML is loaded instead
    "ruleauth.tools.cli.UsageError",  # one line on stderr and exit status 2
}


def test_every_public_exception_class_in_ruleauth_is_a_ruleauth_error():
    exceptions = _public_exceptions()
    assert len(exceptions) >= 15
    outside = sorted(
        name for name, cls in exceptions.items() if not issubclass(cls, RuleauthError) and name not in INTERNAL
    )
    assert not outside, f"not under RuleauthError: {outside}"
    for name in INTERNAL:
        assert name in exceptions, f"{name} is gone: drop it from INTERNAL"
        assert not issubclass(exceptions[name], RuleauthError), f"{name} joined the tree: drop it from INTERNAL"
