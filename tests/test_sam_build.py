"""`sam build` (aws-sam-cli, no container) makes a bundle that holds only runtime files
and decides the demo requests when imported from the build directory alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ruleauth.tools.template_routes import load_document
from tests.sam.tools import REPO, lambda_python, run_clean, run_tool, venv_tool

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/GET/hello"
ROUTE_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/$default/GET/hello"

# Never in the bundle: the project's own test and benchmark trees, dev tools.
FORBIDDEN = ("tests", "bench", "pytest", "_pytest", "hypothesis", "pip", "setuptools", "bin")
RUNTIME_PACKAGES = ("ruleauth", "rules", "yaml", "jwt", "cryptography", "celpy")


def makefile_variable(name: str) -> str:
    text = (REPO / "Makefile").read_text()
    match = re.search(rf"^{name}\s*[:?]?=\s*(.+)$", text, re.MULTILINE)
    assert match, f"Makefile defines no {name}"
    return match.group(1).strip()


def runtime_version() -> str:
    function = load_document(str(REPO / "template.yaml"))["Resources"]["RuleauthFunction"]["Properties"]
    return function["Runtime"].removeprefix("python")


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run `sam build` on a copy of the sources with decoy dev trees beside them."""
    sam = venv_tool("sam")
    source = tmp_path_factory.mktemp("src")
    for name in ("template.yaml", "Makefile", "pyproject.toml"):
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("ruleauth", "rules"):
        shutil.copytree(REPO / name, source / name, ignore=ignore)
    # What a checkout also has; none of it may reach the bundle.
    (source / "tests").mkdir()
    (source / "tests" / "test_decoy.py").write_text("import pytest\n")
    (source / "bench").mkdir()
    (source / "bench" / "bench_decoy.py").write_text("")
    build_dir = tmp_path_factory.mktemp("build")
    env = {"LAMBDA_PYTHON": lambda_python(runtime_version())}
    result = run_tool(
        [str(sam), "build", "--template", "template.yaml", "--build-dir", str(build_dir)],
        timeout=600,
        cwd=source,
        env=env,
    )
    assert result.returncode == 0, f"sam build failed:\n{result.stdout}\n{result.stderr}"
    function_dir = build_dir / "RuleauthFunction"
    assert function_dir.is_dir(), f"no RuleauthFunction in {sorted(p.name for p in build_dir.iterdir())}"
    return function_dir


def test_makefile_targets_the_templates_runtime_and_architecture() -> None:
    template = load_document(str(REPO / "template.yaml"))
    function = template["Resources"]["RuleauthFunction"]
    assert function["Metadata"]["BuildMethod"] == "makefile"
    assert f"python{makefile_variable('LAMBDA_PYTHON_VERSION')}" == function["Properties"]["Runtime"]
    assert [makefile_variable("LAMBDA_ARCHITECTURE")] == function["Properties"]["Architectures"]
    example = load_document(str(REPO / "examples/http-api/template.yaml"))
    assert example["Resources"]["RuleauthFunction"]["Properties"]["Runtime"] == function["Properties"]["Runtime"]


def test_bundle_holds_only_runtime_files(build: Path) -> None:
    names = {p.name for p in build.iterdir()}
    for package in RUNTIME_PACKAGES:
        assert package in names, f"{package} missing from the bundle: {sorted(names)}"
    assert not names & set(FORBIDDEN), f"dev files in the bundle: {sorted(names & set(FORBIDDEN))}"
    assert any((build / "rules").glob("*.y*ml")), "rules/ in the bundle has no rules file"
    assert (build / "ruleauth" / "handler.py").is_file()
    assert list((build / "ruleauth" / "_prebuilt").glob("cel-parser-*.cache")), "no prebuilt CEL parser"
    # Bytecode for the runtime's Python (LAMBDA_PYTHON was given), and for no other.
    tag = "cpython-" + runtime_version().replace(".", "")
    assert (build / "ruleauth" / "__pycache__" / f"handler.{tag}.pyc").is_file(), "no bytecode built"
    stray = [p for p in build.rglob("*.pyc") if tag not in p.name]
    assert not stray, f"bytecode for another Python: {stray[:3]}"
    size_mb = sum(p.stat().st_size for p in build.rglob("*") if p.is_file()) / 2**20
    assert size_mb < 250, f"bundle is {size_mb:.0f} MiB, over Lambda's 250 MB unzipped limit"


DECIDE = r"""
import json, os, sys
root = os.environ["LAMBDA_TASK_ROOT"]
import ruleauth.handler as module
# The build saved a rules snapshot and the cold start read it: nothing was parsed.
assert os.path.isfile(os.path.join(root, "rules", ".ruleauth-snapshot")), "no rules snapshot in the bundle"
assert "yaml" not in sys.modules and "lark" not in sys.modules, "the cold start parsed the rules"
# The demo's rule compiles to closures: cel-python's interpreter is never imported.
assert "celpy" not in sys.modules, "cel-python imported for rules that do not need it"
import yaml, celpy
from ruleauth.cel import parser as cel_parser
# The parser came from the prebuilt cache the build made, not from grammar analysis.
assert cel_parser.prebuilt(positions=False), "no prebuilt CEL parser"
# Everything must come from the bundle, not from the interpreter's own site-packages.
for mod in (module, yaml, celpy):
    assert os.path.realpath(mod.__file__).startswith(os.path.realpath(root)), mod.__file__
events = json.load(sys.stdin)
results = {}
for name, event in events.items():
    try:
        results[name] = {"response": module.handler(event, None)}
    except Exception as exc:  # the Unauthorized convention
        results[name] = {"raised": type(exc).__name__, "message": str(exc)}
print(json.dumps(results))
"""


def rest_request(headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "REQUEST",
        "methodArn": METHOD_ARN,
        "resource": "/hello",
        "path": "/hello",
        "httpMethod": "GET",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {},
        "multiValueQueryStringParameters": {},
        "pathParameters": {},
        "stageVariables": {},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "stage": "prod",
            "httpMethod": "GET",
            "resourcePath": "/hello",
            "path": "/prod/hello",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "identity": {"sourceIp": "203.0.113.7"},
        },
    }


def http_v2_request(headers: dict[str, str]) -> dict[str, Any]:
    return {
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": ROUTE_ARN,
        "identitySource": list(headers.values()),
        "routeKey": "GET /hello",
        "rawPath": "/hello",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "http": {"method": "GET", "path": "/hello", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7"},
            "requestId": "id-1",
            "routeKey": "GET /hello",
            "stage": "$default",
        },
    }


def arn_matches(pattern: str, arn: str) -> bool:
    """IAM resource matching: `*` any run of characters (`/` included), `?` one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None


def effects_for(response: dict[str, Any], arn: str) -> set[str]:
    effects = set()
    for statement in response["policyDocument"]["Statement"]:
        resources = statement["Resource"]
        resources = [resources] if isinstance(resources, str) else resources
        if any(arn_matches(resource, arn) for resource in resources):
            effects.add(statement["Effect"])
    return effects


@pytest.fixture(scope="module")
def decisions(build: Path) -> dict[str, Any]:
    events = {
        "odd": rest_request({"Authorization": "17"}),
        "even": rest_request({"Authorization": "2"}),
        "missing": rest_request({}),
        "http_odd": http_v2_request({"authorization": "17"}),
    }
    result = run_clean(
        [lambda_python(runtime_version()), "-s", "-c", DECIDE],
        cwd=build,
        env={"PYTHONPATH": str(build), "LAMBDA_TASK_ROOT": str(build), "PYTHONDONTWRITEBYTECODE": "1"},
        stdin=json.dumps(events),
    )
    assert result.returncode == 0, f"the built handler failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_build_fails_on_rules_that_do_not_load(tmp_path: Path, build: Path) -> None:
    """The build's rules snapshot loads the rules: a typo stops `sam build`, naming file and line."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "ruleauth", tmp_path / "ruleauth", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "rules").mkdir()
    demo = (REPO / "rules" / "demo.yaml").read_text()
    (tmp_path / "rules" / "demo.yaml").write_text(demo.replace("int(token)", "int(tokne)"))
    result = run_tool(
        [
            "make",
            "build-RuleauthFunction",
            f"ARTIFACTS_DIR={tmp_path / 'bundle'}",
            f"LAMBDA_PYTHON={lambda_python(runtime_version())}",
        ],
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "demo.yaml:" in result.stderr and "tokne" in result.stderr, result.stderr
    assert not (tmp_path / "bundle" / "rules" / ".ruleauth-snapshot").exists()


JWT_RULES = """\
version: 1
token: {header: Authorization, scheme: Bearer}
cache:
  mode: identity
  sources: {headers: [Authorization]}
jwt:
  - name: corp
    issuer: https://idp.example
    audience: [https://api.example]
    algorithms: [RS256]
    jwks_file: jwks.json
rules:
  - name: readers
    route: GET /hello
    allow: "'read' in scopes"
"""

READ_BACK = r"""
import os, sys
import ruleauth.handler
assert "yaml" not in sys.modules and "lark" not in sys.modules and "pickle" not in sys.modules
print("read", sys.version_info[:2])
"""


def test_the_build_snapshots_rules_that_need_a_compiled_dependency_from_any_host(tmp_path: Path) -> None:
    """A `jwt:` provider's check imports cryptography, which the bundle holds for Lambda's
    Python only: the build host's own Python (here this venv's, not 3.13) and its own packages
    make the snapshot instead, and Lambda's Python reads it from the bundle."""
    from tests.jwt_support import jwks_bytes, public_jwk, rsa_key

    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "ruleauth", tmp_path / "ruleauth", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "api.yaml").write_text(JWT_RULES)
    (tmp_path / "rules" / "jwks.json").write_bytes(jwks_bytes(public_jwk(rsa_key(), "k1")))
    bundle = tmp_path / "bundle"
    result = run_tool(
        ["make", "build-RuleauthFunction", f"ARTIFACTS_DIR={bundle}", f"PYTHON={sys.executable}", "LAMBDA_PYTHON=none"],
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"saved {bundle}/rules/.ruleauth-snapshot" in result.stdout, result.stdout
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "RULEAUTH_", "VIRTUAL_ENV"))}
    env.update(PYTHONPATH=str(bundle), LAMBDA_TASK_ROOT=str(bundle), PYTHONDONTWRITEBYTECODE="1")
    read = subprocess.run(
        [lambda_python(runtime_version()), "-s", "-c", READ_BACK],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert read.returncode == 0, read.stderr
    assert "rules snapshot not used" not in read.stdout
    assert f"read ({runtime_version().replace('.', ', ')})" in read.stdout


def test_built_handler_allows_an_odd_number(decisions: dict[str, Any]) -> None:
    response = decisions["odd"]["response"]
    assert response["principalId"]
    assert effects_for(response, METHOD_ARN) == {"Allow"}


def test_built_handler_denies_an_even_number(decisions: dict[str, Any]) -> None:
    assert "Deny" in effects_for(decisions["even"]["response"], METHOD_ARN)


def test_built_handler_answers_401_without_a_credential(decisions: dict[str, Any]) -> None:
    assert decisions["missing"] == {"raised": "Exception", "message": "Unauthorized"}


def test_built_handler_serves_the_http_api_example(decisions: dict[str, Any]) -> None:
    assert effects_for(decisions["http_odd"]["response"], ROUTE_ARN) == {"Allow"}
