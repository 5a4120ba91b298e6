"""Locate the deployment tools and run them in their own virtualenv.

aws-sam-cli pins many packages, so it lives in a separate venv (RULEAUTH_SAM_VENV,
default `.venv-sam` at the repository root) and the tests call it as a subprocess.
A missing tool fails the test with the command that installs it: CI must have them.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

TEMPLATES = (
    "template.yaml",
    "templates/apigw-logging.yaml",
    "examples/http-api/template.yaml",
    "examples/embed/template.yaml",
    "examples/nested/template.yaml",
    "examples/usage-plan/template.yaml",
)
SAM_TEMPLATES = tuple(t for t in TEMPLATES if t != "templates/apigw-logging.yaml")

INSTALL_HINT = "python3 -m venv .venv-sam && .venv-sam/bin/pip install aws-sam-cli cfn-lint aws-sam-translator"


def sam_venv() -> Path:
    configured = os.environ.get("RULEAUTH_SAM_VENV")
    return Path(configured) if configured else REPO / ".venv-sam"


def venv_tool(name: str) -> Path:
    """Path of an executable in the SAM venv; fails the test when it is missing."""
    path = sam_venv() / "bin" / name
    if not path.exists():
        pytest.fail(
            f"{name} not found at {path}. Install the deployment tools with `{INSTALL_HINT}` "
            "(or point RULEAUTH_SAM_VENV at a venv that has them).",
            pytrace=False,
        )
    return path


def run_tool(args: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION="us-east-1")
    env.update(kwargs.pop("env", {}))
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, check=False, **kwargs)


def translate(requests: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Transform SAM templates with aws-sam-translator, in one subprocess for speed.

    `requests` maps a key to (template path relative to the repo, parameter values).
    """
    python = venv_tool("python")
    payload = {key: [str(REPO / path), params] for key, (path, params) in requests.items()}
    result = run_tool([str(python), str(HERE / "translate.py")], timeout=180, input=json.dumps(payload))
    if result.returncode != 0:
        pytest.fail(f"aws-sam-translator failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    return json.loads(result.stdout)


def lambda_python(version: str) -> str:
    """An interpreter of the Lambda runtime's version, to import the built bundle.

    Compiled dependencies (cryptography, google-re2, pyyaml, pendulum) are wheels for
    that version, so the build host's own Python cannot import them.
    """
    candidates: list[str] = []
    if os.environ.get("RULEAUTH_LAMBDA_PYTHON"):
        candidates.append(os.environ["RULEAUTH_LAMBDA_PYTHON"])
    found = shutil.which(f"python{version}")
    if found:
        candidates.append(found)
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"), reverse=True)
    candidates += [f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    for candidate in candidates:
        try:
            probe = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except OSError:
            continue
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    pytest.fail(
        f"No Python {version} found to import the built bundle (tried {candidates}). Install "
        f"CPython {version} (e.g. `pyenv install {version}`) or set RULEAUTH_LAMBDA_PYTHON.",
        pytrace=False,
    )
    raise AssertionError("unreachable")  # pytest.fail raises; keeps type checkers content
