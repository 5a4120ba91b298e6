"""Embedding ruleauth in a user's own stack, built for real in temporary directories: the layer
(`make build-RuleauthLayer`), a user project on it (`sam build`, SAM's standard Python builder),
and the wheel and sdist installed in a fresh virtualenv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import venv
import zipfile
from pathlib import Path
from typing import Any

import pytest

from ruleauth.tools.template_routes import load_document
from tests.sam.tools import REPO, lambda_python, run_clean, run_tool, translate, venv_tool
from tests.test_sam_build import METHOD_ARN, effects_for, makefile_variable, rest_request

LOCAL_PYTHON = "%d.%d" % sys.version_info[:2]
EXAMPLE = REPO / "examples" / "own-stack"
LAYER_TEMPLATE = "templates/ruleauth-layer.yaml"
SHARED_TEMPLATES = ("template.yaml", LAYER_TEMPLATE)
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "_prebuilt")


def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def zipped_size(path: Path, into: Path) -> int:
    """The size of the zip `sam deploy` would upload for a built directory."""
    with zipfile.ZipFile(into, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            archive.write(file, file.relative_to(path))
    return into.stat().st_size


# --- the templates ----------------------------------------------------------------------


def test_the_layer_is_for_the_makefiles_python_and_architecture_and_the_example_uses_it() -> None:
    layer = load_document(str(REPO / LAYER_TEMPLATE))["Resources"]["RuleauthLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"]["BuildMethod"] == "makefile"
    runtime = f"python{makefile_variable('LAMBDA_PYTHON_VERSION')}"
    assert layer["Properties"]["CompatibleRuntimes"] == [runtime]
    assert layer["Properties"]["CompatibleArchitectures"] == [makefile_variable("LAMBDA_ARCHITECTURE")]
    # SAM's makefile builder runs the Makefile found in ContentUri.
    assert (REPO / "templates" / layer["Properties"]["ContentUri"] / "Makefile").is_file()

    example = load_document(str(EXAMPLE / "template.yaml"))
    function = example["Resources"]["AuthorizerFunction"]
    properties = function["Properties"]
    assert "Metadata" not in function  # SAM's standard builder: no BuildMethod, no Makefile
    assert properties["Handler"] == "ruleauth.handler.handler"
    assert (
        properties["Runtime"] == runtime
        and properties["Architectures"] == layer["Properties"]["CompatibleArchitectures"]
    )
    assert properties["Layers"] == [{"Ref": "RuleauthLayerArn"}]
    assert properties["LoggingConfig"]["LogFormat"] == "JSON"
    code = EXAMPLE / properties["CodeUri"]
    assert sorted(p.name for p in code.iterdir()) == ["demo.yaml"], "the function's code is only its rules"
    assert not list(EXAMPLE.rglob("*.py")) and not list(EXAMPLE.rglob("requirements*.txt"))


def test_the_layer_arn_is_exported_and_reaches_the_user_function_after_the_transform() -> None:
    arn = "arn:aws:lambda:us-east-1:123456789012:layer:ruleauth:3"
    cfn = translate(
        {"layer": (LAYER_TEMPLATE, {}), "own": ("examples/own-stack/template.yaml", {"RuleauthLayerArn": arn})}
    )
    layers = {k: r for k, r in cfn["layer"]["Resources"].items() if r["Type"] == "AWS::Lambda::LayerVersion"}
    assert len(layers) == 1
    output = cfn["layer"]["Outputs"]["RuleauthLayerArn"]
    assert output["Value"] == {"Ref": next(iter(layers))}
    assert output["Export"]["Name"] == {"Fn::Sub": "${AWS::StackName}-RuleauthLayerArn"}
    function = cfn["own"]["Resources"]["AuthorizerFunction"]["Properties"]
    assert function["Layers"] in ([arn], [{"Ref": "RuleauthLayerArn"}])
    assert function["Handler"] == "ruleauth.handler.handler"


@pytest.mark.parametrize("path", SHARED_TEMPLATES)
def test_a_shared_template_has_the_serverless_repository_metadata_of_the_package(path: str) -> None:
    metadata = load_document(str(REPO / path))["Metadata"]["AWS::ServerlessRepo::Application"]
    project = pyproject()
    assert metadata["SemanticVersion"] == project["version"]
    assert metadata["SpdxLicenseId"] == project["license"]
    for key in ("Name", "Description", "Author", "SourceCodeUrl"):
        assert metadata[key], key
    folder = (REPO / path).parent
    assert (folder / metadata["LicenseUrl"]).resolve() == REPO / "LICENSE"
    assert (folder / metadata["ReadmeUrl"]).resolve() == REPO / "README.md"
    assert "MIT License" in (REPO / "LICENSE").read_text()


@pytest.mark.parametrize("path", [*SHARED_TEMPLATES, "examples/own-stack/template.yaml"])
def test_sam_validate_lint_passes(path: str) -> None:
    result = run_tool([str(venv_tool("sam")), "validate", "--lint", "--template", path], timeout=180, cwd=REPO)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


# --- the layer, built by the Makefile for this interpreter's Python ---------------------------


@pytest.fixture(scope="module")
def layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("layer-src")
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "ruleauth", source / "ruleauth", ignore=IGNORE)
    (source / "rules").mkdir()  # a checkout's rules never reach the layer
    shutil.copy2(REPO / "rules" / "demo.yaml", source / "rules" / "demo.yaml")
    artifacts = tmp_path_factory.mktemp("layer")
    result = run_tool(
        [
            "make",
            "build-RuleauthLayer",
            f"ARTIFACTS_DIR={artifacts}",
            f"LAMBDA_PYTHON_VERSION={LOCAL_PYTHON}",
            f"LAMBDA_PYTHON={sys.executable}",
        ],
        timeout=600,
        cwd=source,
    )
    assert result.returncode == 0, f"make build-RuleauthLayer failed:\n{result.stdout}\n{result.stderr}"
    return artifacts


def test_the_layer_holds_ruleauth_its_dependencies_and_the_prebuilt_parser_under_python(layer: Path) -> None:
    assert sorted(p.name for p in layer.iterdir()) == ["python"]
    site = layer / "python"
    names = {p.name for p in site.iterdir()}
    for package in ("ruleauth", "yaml", "jwt", "cryptography", "celpy", "lark", "re2"):
        assert package in names, f"{package} missing from the layer: {sorted(names)}"
    assert not names & {"rules", "bin", "tests", "bench", "pip", "setuptools"}, sorted(names)
    assert list((site / "ruleauth" / "_prebuilt").glob("cel-parser-*.cache")), "no prebuilt CEL parser"
    tag = "cpython-" + LOCAL_PYTHON.replace(".", "")
    assert (site / "ruleauth" / "__pycache__" / f"handler.{tag}.pyc").is_file(), "no bytecode built"
    assert tree_size(layer) < 250 * 2**20, "over Lambda's 250 MB unzipped limit"


def test_sam_builds_the_layer_template_in_the_source_through_the_makefile(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(REPO / "ruleauth", source / "ruleauth", ignore=IGNORE)
    for name in ("Makefile", "pyproject.toml", LAYER_TEMPLATE):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    before = sorted(str(p.relative_to(source)) for p in source.rglob("*"))
    result = run_tool(
        [
            str(venv_tool("sam")),
            "build",
            "--build-in-source",
            "--template",
            LAYER_TEMPLATE,
            "--build-dir",
            str(tmp_path / "build"),
        ],
        timeout=600,
        cwd=source,
        env={"LAMBDA_PYTHON_VERSION": LOCAL_PYTHON, "LAMBDA_PYTHON": sys.executable},
    )
    assert result.returncode == 0, f"sam build failed:\n{result.stdout}\n{result.stderr}"
    built = tmp_path / "build" / "RuleauthLayer"
    assert sorted(p.name for p in built.iterdir()) == ["python"]
    assert (built / "python" / "ruleauth" / "handler.py").is_file() and (built / "python" / "re2").exists()
    # Built in the source, and the source is as it was: make writes only to ARTIFACTS_DIR.
    assert sorted(str(p.relative_to(source)) for p in source.rglob("*")) == before


# --- a user's project on the layer, built by SAM's standard Python builder -------------------


def sam_build_project(project: Path, build_dir: Path) -> Path:
    """`sam build` a copy of examples/own-stack; the built authorizer function's directory."""
    runtime = load_document(str(project / "template.yaml"))["Resources"]["AuthorizerFunction"]["Properties"]["Runtime"]
    # SAM's Python builder wants an interpreter of the function's runtime on PATH.
    python = Path(lambda_python(runtime.removeprefix("python")))
    result = run_tool(
        [str(venv_tool("sam")), "build", "--template", "template.yaml", "--build-dir", str(build_dir)],
        timeout=600,
        cwd=project,
        env={"PATH": f"{python.parent}{os.pathsep}{os.environ['PATH']}"},
    )
    assert result.returncode == 0, f"sam build failed:\n{result.stdout}\n{result.stderr}"
    return build_dir / "AuthorizerFunction"


@pytest.fixture(scope="module")
def user_function(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("own-stack")
    shutil.copytree(EXAMPLE, project, dirs_exist_ok=True)
    return sam_build_project(project, tmp_path_factory.mktemp("own-stack-build"))


def test_the_user_function_ships_only_its_rules_in_a_zip_of_a_few_kb(user_function: Path, tmp_path: Path) -> None:
    assert sorted(p.name for p in user_function.rglob("*")) == ["demo.yaml"]
    assert zipped_size(user_function, tmp_path / "function.zip") < 16 * 1024


DECIDE = r"""
import json, os, sys
root, layer = os.environ["LAMBDA_TASK_ROOT"], os.environ["LAYER_PYTHON"]
# Lambda's order: the task root, then the layer's python/ (/opt/python); -S kept site-packages out.
sys.path[:0] = [root, layer]
import ruleauth.handler as module
import re2, yaml
from ruleauth.cel import parser as cel_parser
from ruleauth.runtime.authorizer import locate_rules
for mod in (module, re2, yaml):
    assert os.path.realpath(mod.__file__).startswith(os.path.realpath(layer)), mod.__file__
assert str(locate_rules()) == root, locate_rules()  # the rules are the function's root
assert cel_parser.prebuilt(positions=False), "the layer's prebuilt CEL parser was not used"
results = {}
for name, event in json.load(sys.stdin).items():
    try:
        results[name] = {"response": module.handler(event, None)}
    except Exception as exc:  # the Unauthorized convention
        results[name] = {"raised": type(exc).__name__, "message": str(exc)}
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def decisions(layer: Path, user_function: Path) -> dict[str, Any]:
    events = {
        "odd": rest_request({"Authorization": "17"}),
        "even": rest_request({"Authorization": "2"}),
        "junk": rest_request({"Authorization": "abc"}),
        "missing": rest_request({}),
    }
    env = {
        "LAMBDA_TASK_ROOT": str(user_function),
        "LAYER_PYTHON": str(layer / "python"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    result = run_clean([sys.executable, "-S", "-c", DECIDE], cwd=user_function, env=env, stdin=json.dumps(events))
    assert result.returncode == 0, f"the handler from the layer failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_layer_and_the_user_rules_allow_an_odd_number(decisions: dict[str, Any]) -> None:
    response = decisions["odd"]["response"]
    assert response["principalId"] and effects_for(response, METHOD_ARN) == {"Allow"}


def test_the_layer_and_the_user_rules_deny_an_even_number_and_a_non_number(decisions: dict[str, Any]) -> None:
    assert "Deny" in effects_for(decisions["even"]["response"], METHOD_ARN)
    assert "Deny" in effects_for(decisions["junk"]["response"], METHOD_ARN)
    assert "Allow" not in effects_for(decisions["junk"]["response"], METHOD_ARN)


def test_the_layer_and_the_user_rules_answer_401_without_a_credential(decisions: dict[str, Any]) -> None:
    assert decisions["missing"] == {"raised": "Exception", "message": "Unauthorized"}


SNAPSHOT_READ = r"""
import json, os, sys
sys.path[:0] = [os.environ["LAMBDA_TASK_ROOT"], os.environ["LAYER_PYTHON"]]
import ruleauth.handler as module
# The cold start read the snapshot made before `sam build`: no rules file was parsed.
assert "yaml" not in sys.modules and "lark" not in sys.modules, "the cold start parsed the rules"
print(json.dumps(module.handler(json.load(sys.stdin), None)))
"""


def test_a_snapshot_made_before_sam_build_is_what_the_cold_start_reads(layer: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project)
    made = run_clean([sys.executable, "-m", "ruleauth", "snapshot", "rules"], cwd=project, env={})
    assert made.returncode == 0, made.stdout + made.stderr
    function = sam_build_project(project, tmp_path / "build")
    assert sorted(p.name for p in function.iterdir()) == [".ruleauth-snapshot", "demo.yaml"]
    assert zipped_size(function, tmp_path / "function.zip") < 16 * 1024
    env = {"LAMBDA_TASK_ROOT": str(function), "LAYER_PYTHON": str(layer / "python"), "PYTHONDONTWRITEBYTECODE": "1"}
    event = json.dumps(rest_request({"Authorization": "17"}))
    result = run_clean([sys.executable, "-S", "-c", SNAPSHOT_READ], cwd=function, env=env, stdin=event)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert effects_for(json.loads(result.stdout.strip().splitlines()[-1]), METHOD_ARN) == {"Allow"}


# --- the wheel and the sdist, installed in a fresh virtualenv --------------------------------


def venv_bin(env: Path, name: str) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin") / name


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build` on a copy of the sources (with a checkout's prebuilt parser files in it):
    an sdist, and the wheel built from that sdist."""
    source = tmp_path_factory.mktemp("dist-src")
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "ruleauth", source / "ruleauth", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (source / "ruleauth" / "_prebuilt").mkdir(exist_ok=True)
    (source / "ruleauth" / "_prebuilt" / "cel-parser-lark0.0-stale.cache").write_bytes(b"made for another lark")
    # What an editable install leaves in a checkout: setuptools puts what it lists in the sdist.
    (source / "ruleauth.egg-info").mkdir()
    (source / "ruleauth.egg-info" / "SOURCES.txt").write_text("ruleauth/_prebuilt/cel-parser-lark0.0-stale.cache\n")
    builder = tmp_path_factory.mktemp("build-venv")
    venv.create(builder, with_pip=True)
    python = str(venv_bin(builder, "python"))
    installed = run_tool([python, "-m", "pip", "install", "--quiet", "build"], timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    out = tmp_path_factory.mktemp("dist")
    built = run_tool([python, "-m", "build", "--outdir", str(out), str(source)], timeout=600)
    assert built.returncode == 0, f"python -m build failed:\n{built.stdout}\n{built.stderr}"
    return out


def test_the_sdist_and_wheel_hold_the_package_schema_and_licence_and_no_prebuilt_files(dist: Path) -> None:
    (wheel,) = dist.glob("ruleauth-*-py3-none-any.whl")
    (sdist,) = dist.glob("ruleauth-*.tar.gz")
    names = zipfile.ZipFile(wheel).namelist()
    assert "ruleauth/schema/rules.schema.json" in names and "ruleauth/handler.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not [n for n in names if "_prebuilt" in n or n.startswith(("tests/", "bench/", "rules/"))]
    with tarfile.open(sdist) as archive:
        members = [m.split("/", 1)[1] for m in archive.getnames() if "/" in m]
    assert {"pyproject.toml", "LICENSE", "README.md", "ruleauth/schema/rules.schema.json"} <= set(members)
    assert not [m for m in members if "_prebuilt" in m]
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert re.search(r"^ruleauth = ruleauth\.tools\.cli:main$", entry_points, re.M)


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel and its dependencies, at this checkout's versions."""
    env = tmp_path_factory.mktemp("fresh-venv")
    venv.create(env, with_pip=True)
    frozen = run_tool([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], timeout=120)
    constraints = tmp_path_factory.mktemp("constraints") / "constraints.txt"
    constraints.write_text("\n".join(line for line in frozen.stdout.splitlines() if "==" in line) + "\n")
    (wheel,) = dist.glob("ruleauth-*.whl")
    result = run_tool(
        [str(venv_bin(env, "python")), "-m", "pip", "install", "--quiet", "--constraint", str(constraints), str(wheel)],
        timeout=600,
    )
    assert result.returncode == 0, f"installing the wheel failed:\n{result.stdout}\n{result.stderr}"
    return env


def run_installed(env: Path, args: list[str], cwd: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return run_clean([str(venv_bin(env, args[0])), *args[1:]], cwd=cwd, env={"XDG_CACHE_HOME": str(cache)})


def test_the_installed_ruleauth_command_validates_and_dry_runs_from_any_directory(
    installed: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "my-project"
    shutil.copytree(EXAMPLE / "rules", elsewhere / "rules")
    cache = tmp_path / "cache"
    where = run_installed(installed, ["python", "-c", "import ruleauth; print(ruleauth.__file__)"], elsewhere, cache)
    assert where.returncode == 0 and Path(where.stdout.strip()).is_relative_to(installed), where.stdout + where.stderr

    validated = run_installed(installed, ["ruleauth", "validate", "rules"], elsewhere, cache)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "1 rule" in validated.stdout, validated.stdout
    for token, expect in (("17", "allow"), ("2", "deny"), ("abc", "deny")):
        done = run_installed(
            installed,
            [
                "ruleauth",
                "dry-run",
                "rules",
                "--method",
                "GET",
                "--path",
                "/hello",
                "-H",
                f"Authorization: {token}",
                "--expect",
                expect,
            ],
            elsewhere,
            cache,
        )
        assert done.returncode == 0, f"{token}: {done.stdout}{done.stderr}"
    missing = run_installed(
        installed,
        ["ruleauth", "dry-run", "rules", "--method", "GET", "--path", "/hello", "--expect", "unauthorized"],
        elsewhere,
        cache,
    )
    assert missing.returncode == 0, missing.stdout + missing.stderr

    schema = run_installed(installed, ["ruleauth", "schema"], elsewhere, cache)
    assert json.loads(schema.stdout) == json.loads((REPO / "ruleauth" / "schema" / "rules.schema.json").read_text())


def test_the_installed_package_saves_its_parser_once_and_loads_it_after(installed: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    probe = "from ruleauth.cel import parser; parser.parse('1 + 1 == 2'); print(parser.prebuilt())"
    first = run_installed(installed, ["python", "-c", probe], tmp_path, cache)
    assert first.stdout.strip() == "False", first.stdout + first.stderr  # built from the grammar, then saved
    assert list((cache / "ruleauth").glob("cel-parser-*.cache"))
    second = run_installed(installed, ["python", "-c", probe], tmp_path, cache)
    assert second.stdout.strip() == "True", second.stdout + second.stderr
