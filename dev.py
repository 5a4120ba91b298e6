#!/usr/bin/env python3
"""Bootstrap and run ruleauth's two everyday jobs with nothing but Python 3.

    python3 dev.py demo   # install ruleauth in .venv, then decide the article's requests with rules/
    python3 dev.py test   # install everything the tests need, then run the whole suite

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
    if stamp.exists():
        return
    if not bin_of(env, "python").exists():
        venv.create(env, with_pip=True)
    pip = [bin_of(env, "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if editable:
        run(*pip, "-e", editable)
        # Prebuild the CEL parser (as `sam build` does for Lambda): every import of the
        # handler then skips ~100 ms of grammar analysis.
        run(bin_of(env, "python"), "-m", "ruleauth.cel_parser")
    if packages:
        run(*pip, *packages)
    stamp.write_text("ok\n")


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
        run(ruleauth, "dry-run", ROOT / "rules", "--method", "GET", "--path", "/hello", *flags,
            "--expect", expected)
    print(flush=True)
    run(ruleauth, "test", ROOT / "rules")
    return 0


def test(pytest_args: list[str]) -> int:
    ensure_venv(VENV, "test", editable=f"{ROOT}[test]")
    ensure_venv(SAM_VENV, "sam", *SAM_TOOLS)
    ensure_node_provider()
    env = {**os.environ, "RULEAUTH_SAM_VENV": str(SAM_VENV)}
    done = subprocess.run([bin_of(VENV, "python"), "-m", "pytest", *pytest_args], cwd=ROOT, env=env)
    return done.returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__.strip())
        return 2
    os.chdir(ROOT)
    return demo() if argv[0] == "demo" else test(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
