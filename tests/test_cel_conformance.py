"""cel-spec's conformance suite through rules files, on every engine path: CEL's answer or a load error.

Every case ruleauth's variables can express (tests/cel_conformance.py says how a case becomes
rules, and which cases cannot) runs on compiled closures, the interpreter fallback,
`RULEAUTH_CEL_INTERPRETER=1`, cel-expr-python and a rules snapshot. Each must give CEL's
answer or be refused at load; never a different answer. The counts per engine are printed at the end of the session
(tests/conftest.py) and are in the assertion message.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from ruleauth.cel import compiler as expressions
from ruleauth.cel import fast_engine
from ruleauth.errors import RulesError
from ruleauth.rules import loader as rules_loader
from ruleauth.rules import snapshot as rules_snapshot
from ruleauth.runtime.authorizer import Authorizer
from ruleauth.tools.synthetic_events import build_event
from tests import cel_conformance as cc

NOW = 1_800_000_000.0


COUNTS: dict[str, Counter] = {}
ALL_CASES = list(cc.cases())


def _engine_setup(engine: str, monkeypatch: pytest.MonkeyPatch) -> str | None:
    monkeypatch.delenv(expressions.ENGINE_ENV, raising=False)
    monkeypatch.delenv(expressions.INTERPRETER_ENV, raising=False)
    if engine == cc.INTERPRETER:
        monkeypatch.setenv(expressions.INTERPRETER_ENV, "1")
    if engine == cc.FAST:
        if not fast_engine.available():
            pytest.skip("cel-expr-python is not installed")
        return fast_engine.NAME
    return None


def _load(path, entries, defines, engine_name, snapshot=False):
    """Load the file, dropping rules the loader refuses until it loads: (authorizer, refused names)."""
    refused: set[str] = set()
    while True:
        kept = [(name, text) for name, text in entries if name not in refused]
        path.write_text(cc.rules_file(kept, defines, engine_name), encoding="utf-8")
        try:
            if snapshot:
                ruleset = rules_snapshot.decode(rules_snapshot.encode(rules_loader.load(path)))
                return Authorizer(ruleset), refused
            return Authorizer.load(path, environ={}), refused
        except RulesError as exc:
            names = {problem.rule for problem in exc.problems if problem.severity == "error"}
            lines = {
                problem.pos.line for problem in exc.problems if problem.severity == "error" and problem.pos is not None
            }
            # A problem names its rule, or points at the rule's line (one rule a line).
            text = path.read_text(encoding="utf-8").splitlines()
            for line in lines:
                if 1 <= line <= len(text):
                    for name, _ in kept:
                        if f"name: {name}," in text[line - 1]:
                            names.add(name)
            names.discard(None)
            if not names & {name for name, _ in kept}:
                return None, refused | {name for name, _ in kept}  # refused as a whole (a define)
            refused |= names


def _run(engine: str, tmp_path, monkeypatch) -> tuple[Counter, list[str]]:
    engine_name = _engine_setup(engine, monkeypatch)
    counts: Counter = Counter()
    wrong: list[str] = []
    groups: dict[str, list[tuple[int, cc.Case]]] = {}
    for index, case in enumerate(ALL_CASES):
        if case.not_expressible:
            counts[cc.NOT_EXPRESSIBLE] += 1
            continue
        key = f"case{index}" if case.defines else case.qualified.split("/")[0]
        groups.setdefault(key, []).append((index, case))
    for key, members in groups.items():
        entries, expected = [], {}
        for index, case in members:
            for rule in case.rules:
                name = f"c{index}{rule.name}"
                text = f"({rule.text}){cc.FALLBACK_SUFFIX}" if engine == cc.FALLBACK else rule.text
                entries.append((name, text))
                expected[name] = rule.must
        authorizer, refused = _load(
            tmp_path / f"{key}.yaml", entries, members[0][1].defines, engine_name, snapshot=engine == cc.SNAPSHOT
        )
        by_name = {rule.name: rule for rule in authorizer.ruleset.rules} if authorizer else {}
        for index, case in members:
            names = [f"c{index}{rule.name}" for rule in case.rules]
            if any(name in refused for name in names):
                counts[cc.REFUSED] += 1
                continue
            problems = []
            for name in names:
                if engine == cc.FALLBACK:
                    runs_on = by_name[name].allow.runs_on
                    assert runs_on == expressions.INTERPRETER, f"{name} ran on {runs_on}, not the fallback"
                event = build_event("rest-request", "GET", f"/{name}")
                decision = authorizer.authorize(event, now=NOW).decision
                got = "allow" if decision.outcome == "allow" else decision.reason
                if got != expected[name]:
                    problems.append(f"{by_name[name].allow.source!r}: {got}, CEL: {expected[name]}")
            if not problems:
                counts[cc.AGREE] += 1
                continue
            if any(": allow, CEL:" in problem for problem in problems):
                counts[cc.WRONG_ALLOWS] += 1  # of the wrong ones: an allow CEL would deny
            counts[cc.WRONG] += 1
            wrong.append(f"{case.qualified} (expected {case.expected}): " + "; ".join(problems))
    return counts, wrong


def summary(engine: str, counts: Counter) -> str:
    order = (cc.AGREE, cc.REFUSED, cc.NOT_EXPRESSIBLE, cc.WRONG, cc.WRONG_ALLOWS)
    return f"{engine}: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in order)


@pytest.mark.parametrize("engine", cc.ENGINES)
def test_every_expressible_cel_spec_case_gives_cels_answer_or_is_refused_at_load(engine, tmp_path, monkeypatch):
    counts, wrong = _run(engine, tmp_path, monkeypatch)
    COUNTS[engine] = counts
    assert sum(n for kind, n in counts.items() if kind != cc.WRONG_ALLOWS) == len(ALL_CASES)
    assert not wrong, summary(engine, counts) + f"; {len(wrong)} wrong:\n" + "\n".join(wrong)


def test_the_conformance_files_are_read_whole():
    # Every test of every vendored file is read (2456 at the vendored commit), none silently
    # lost: each test has one `expr:` line.
    assert len(ALL_CASES) == sum(
        len(re.findall(r"^\s*expr:", path.read_text(encoding="utf-8"), re.M))
        for path in cc.FIXTURES.glob("*.textproto")
    )
    assert len(ALL_CASES) == len({case.qualified for case in ALL_CASES})
