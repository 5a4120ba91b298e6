#!/usr/bin/env python3
"""Bootstrap and run ruleauth's two everyday jobs with nothing but Python 3.

    python3 dev.py demo   # install ruleauth in .venv, then decide the article's requests with rules/
    python3 dev.py test   # install everything the tests need, lint, then run the whole suite
    python3 dev.py lint   # only the lint step: ruff check, ruff format --check, mypy (pyproject.toml)

Everything goes into the repository: .venv (ruleauth + test tools), .venv-sam (AWS SAM CLI,
cfn-lint and the SAM translator, which pin packages of their own) and tests/oidc/node_modules
(the OpenID provider the JWT tests start). Re-running skips what is already installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
SAM_VENV = ROOT / ".venv-sam"
SAM_TOOLS = ("aws-sam-cli==1.170.0", "cfn-lint==1.58.0", "aws-sam-translator==1.115.0")
ARTICLE_REQUESTS = (("17", "allow"), ("2", "deny"), ("abc", "deny"), (None, "unauthorized"))


def run(*args: str | os.PathLike[str], **kwargs) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], check=True, **kwargs)


def bin_of(env: Path, name: str) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin") / name


def ensure_venv(env: Path, marker: str, *packages: str, editable: str | None = None) -> None:
    stamp = env / f".installed-{marker}"
    if not stamp.exists():
        if not bin_of(env, "python").exists():
            venv.create(env, with_pip=True)
        pip = [bin_of(env, "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        if editable:
            run(*pip, "-e", editable)
        if packages:
            run(*pip, *packages)
        stamp.write_text("ok\n")
    if editable:
        # Prebuild the CEL parsers (as `sam build` does for Lambda), on every run so that they
        # match the grammar and lark in use: every import of the handler skips ~100 ms.
        run(bin_of(env, "python"), "-m", "ruleauth.cel.parser", stdout=subprocess.DEVNULL)


def ensure_node_provider() -> None:
    if (ROOT / "tests/oidc/node_modules/oidc-provider").exists():
        return
    if shutil.which("npm") is None:
        sys.exit("dev.py: the JWT tests start a real OpenID provider with Node.js: install node and npm")
    run("bash", ROOT / "tests/oidc/setup.sh")


def demo() -> int:
    ensure_venv(VENV, "runtime", editable=str(ROOT))
    ruleauth = bin_of(VENV, "ruleauth")
    run(ruleauth, "validate", ROOT / "rules")
    for value, expected in ARTICLE_REQUESTS:
        flags = ["-H", f"Authorization: {value}"] if value is not None else []
        label = f"Authorization: {value}" if value is not None else "no Authorization header"
        print(f"\n=== GET /hello with {label} (expect {expected}) ===", flush=True)
        run(ruleauth, "dry-run", ROOT / "rules", "--method", "GET", "--path", "/hello", *flags, "--expect", expected)
    print(flush=True)
    run(ruleauth, "test", ROOT / "rules")
    return 0


# The rule-semantics tests, run again with the fast engine forced (RULEAUTH_ENGINE), with
# cel-python's interpreter for every expression (RULEAUTH_CEL_INTERPRETER; the first pass runs
# most on compiled closures), and on rule sets read back from a rules snapshot
# (RULEAUTH_TEST_SNAPSHOT, tests/conftest.py): the same rules must decide alike every way they run.
ENGINE_SUITE = tuple(
    f"tests/{name}.py"
    for name in (
        "test_demo",
        "test_rules_loader",
        "test_expressions",
        "test_evaluation",
        "test_routing",
        "test_responses",
        "test_events",
        "test_credentials",
        "test_policy_cache",
        "test_shadow_rules",
        "test_cli_test",
        "test_fuzz_events",
        "test_caller_views",
    )
)


# Run before the tests, each failing the run: the lint and type configuration is pyproject.toml's.
LINT_STEPS = (("ruff", "check", "."), ("ruff", "format", "--check", "."), ("mypy",))


def lint() -> int:
    ensure_venv(VENV, "lint", editable=f"{ROOT}[lint]")
    return run_lint()


def run_lint() -> int:
    for tool, *args in LINT_STEPS:
        print("+", tool, *args, flush=True)
        done = subprocess.run([bin_of(VENV, tool), *args], cwd=ROOT)
        if done.returncode != 0:
            print(f"dev.py: `{tool} {' '.join(args)}` failed", file=sys.stderr, flush=True)
            return done.returncode
    return 0


def test(pytest_args: list[str]) -> int:
    # "test-lint-ric": a venv stamped before the [test] extra gained cel-expr-python or
    # awslambdaric, or before the [lint] extra existed, reinstalls.
    ensure_venv(VENV, "test-lint-ric", editable=f"{ROOT}[test,lint]")
    ensure_venv(SAM_VENV, "sam", *SAM_TOOLS)
    ensure_node_provider()
    linted = run_lint()
    if linted != 0:
        return linted
    passes = (
        ("engine cel-expr-python", "RULEAUTH_ENGINE", "cel-expr-python"),
        ("cel-python's interpreter only", "RULEAUTH_CEL_INTERPRETER", "1"),
        ("rule sets read back from a rules snapshot", "RULEAUTH_TEST_SNAPSHOT", "1"),
    )
    env = {k: v for k, v in os.environ.items() if k not in {variable for _, variable, _ in passes}}
    env["RULEAUTH_SAM_VENV"] = str(SAM_VENV)
    python = bin_of(VENV, "python")
    done = subprocess.run([python, "-m", "pytest", *pytest_args], cwd=ROOT, env=env)
    if done.returncode != 0 or any(not a.startswith("-") for a in pytest_args):
        return done.returncode  # a failure, or a run of chosen tests: no more passes
    for label, variable, value in passes:
        print(f"\n=== the rule tests again: {label} ({variable}) ===", flush=True)
        again = subprocess.run(
            [python, "-m", "pytest", *pytest_args, *ENGINE_SUITE], cwd=ROOT, env={**env, variable: value}
        )
        if again.returncode != 0:
            return again.returncode
    return 0


def main(argv: list[str]) -> int:
    commands = {"demo": lambda: demo(), "test": lambda: test(argv[1:]), "lint": lambda: lint()}
    if not argv or argv[0] not in commands:
        print(__doc__.strip())
        return 2
    os.chdir(ROOT)
    return commands[argv[0]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
