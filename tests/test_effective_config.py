"""One effective configuration, checked once (rules/settings.py).

A setting given by the rules file, a RULEAUTH_* variable or a CLI flag is one value with
one origin, and every load check runs on it: RULEAUTH_RESPONSE=simple used to skip the
simple/cache-mode check that `response: simple` in the file meets, so a viewer's cached
"yes" opened DELETE. The property test runs the cache-policy guarantee over every way
response and cache mode can be given, every response type and every cache mode.
"""

from __future__ import annotations

import itertools
import json
import textwrap
from pathlib import Path

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from ruleauth.cel import compiler as expressions
from ruleauth.errors import RulesError
from ruleauth.rules import snapshot as rules_snapshot
from ruleauth.rules.settings import CACHE_MODES, ENGINES, RESPONSES, Settings
from ruleauth.runtime.authorizer import Authorizer
from ruleauth.tools.synthetic_events import build_event
from tests.cli_support import cli_env, run_cli, write
from tests.test_policy_cache import arn_of, iam_outcome, route_tables, sample_paths

SOURCES = ("file", "environment", "flag")
VARIABLE = {"response": "RULEAUTH_RESPONSE", "cache_mode": "RULEAUTH_CACHE_MODE"}

# The issue's rules: a viewer may read, only an admin may delete.
PROJECTS = """
version: 1
token: {header: Authorization}
rules:
  - {name: read, route: "GET /projects/{id}", auth: token, allow: "token in ['viewer', 'admin']"}
  - {name: delete, route: "DELETE /projects/{id}", auth: token, allow: "token == 'admin'"}
"""


def given_as(response: tuple[str, str], cache_mode: tuple[str, str]) -> tuple[list[str], dict, dict]:
    """(file lines, environment, flags) giving each (value, source)."""
    lines, environ, flags = [], {}, {}
    for name, (value, source) in (("response", response), ("cache_mode", cache_mode)):
        if source == "file":
            lines.append(f"response: {value}" if name == "response" else f"cache: {{mode: {value}}}")
        elif source == "environment":
            environ[VARIABLE[name]] = value
        else:
            flags[name] = value
    return lines, environ, flags


def rules_text(routes, top: list[str], reads_method: bool = False) -> str:
    """`reads_method`: rules on ANY routes also allow r4 on GET only (request.method)."""
    lines = ["version: 1", "token: {header: Authorization}", *top, "rules:"]
    for index, (method, path, roles) in enumerate(routes):
        allow = "token in [" + ", ".join(f"'{r}'" for r in roles) + "]"
        if reads_method and method == "ANY":
            allow += " || (token == 'r4' && request.method == 'GET')"
        lines += [
            f"  - name: rule {index}",
            f"    route: '{method} {path}'",
            "    auth: token",
            f'    allow: "{allow}"',
        ]
    return "\n".join(lines) + "\n"


def requests_of(routes) -> list[tuple[str, str]]:
    """Two sample paths per rule route (GET and DELETE for ANY), and requests no rule reaches."""
    found = []
    for method, path, _ in routes:
        for sample in sample_paths(path)[:2]:
            for m in ("GET", "DELETE") if method == "ANY" else (method,):
                found.append((m, sample))
    found += [("DELETE", "/admin/users"), *ROOT_AND_SLASH]
    return list(dict.fromkeys(found))


# The root and a trailing slash: a cached IAM policy's `GET/*` also matches them (IAM's `*`
# matches the empty string), so they are asked, and replayed on, everywhere.
ROOT_AND_SLASH = (("GET", "/"), ("PUT", "/a/"))


def event(method: str, path: str, role: str) -> dict:
    # HTTP API payload 2.0: the only events that get simple responses.
    return build_event("http-2.0", method, path, headers={"Authorization": role})


def allows(response: dict, method: str, path: str) -> bool:
    """What API Gateway does with a cached response for another request, judged by the policy
    property test's own model of IAM matching, not ruleauth's."""
    if "isAuthorized" in response:
        return response["isAuthorized"] is True
    return iam_outcome(response, arn_of(method, path)) == "allow"


COUNTS = {"tables": 0, "refused": 0, "requests": 0, "pairs": 0}
COMBINATIONS = list(itertools.product(RESPONSES, CACHE_MODES, SOURCES, SOURCES))


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    print(f"\ntest_effective_config property: {COUNTS}")


@pytest.mark.parametrize("response, mode, response_source, mode_source", COMBINATIONS)
@hypothesis_settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(routes=route_tables(), role=st.sampled_from(["r1", "r2", "r4"]), reads_method=st.booleans())
def test_property_every_way_a_setting_is_given_the_load_refuses_or_the_cached_response_answers_as_the_rules(
    tmp_path_factory, response, mode, response_source, mode_source, routes, role, reads_method
):
    folder = tmp_path_factory.mktemp("settings")
    top, environ, flags = given_as((response, response_source), (mode, mode_source))
    (folder / "rules.yaml").write_text(rules_text(routes, top, reads_method))
    (folder / "oracle.yaml").write_text(rules_text(routes, [], reads_method))
    # The rules' own answer: each request decided alone, nothing cached, IAM policies.
    oracle = Authorizer.load(
        folder / "oracle.yaml", settings=Settings.from_environ({}, {"cache_mode": "disabled", "response": "iam"})
    )
    COUNTS["tables"] += 1
    try:
        cached = Authorizer.load(folder / "rules.yaml", settings=Settings.from_environ(environ, flags))
    except RulesError as exc:
        COUNTS["refused"] += 1
        message = str(exc)
        if "cannot express these rules exactly" in message:
            hypothesis.event("refused: not expressible")
            return
        # A refusal of the response type says where each setting came from.
        assert response == "simple" and mode != "disabled", message
        named = {
            "file": "response: simple (",
            "environment": "RULEAUTH_RESPONSE=simple (environment)",
            "flag": "--response simple (flag)",
        }[response_source]
        assert named in message and "cache.mode" in message, message
        hypothesis.event("refused: simple with identity caching")
        return
    settings = cached.ruleset.settings
    assert (settings.response.value, settings.cache_mode.value) == (response, mode)
    assert (settings.response.origin, settings.cache_mode.origin) == (response_source, mode_source)
    requests = requests_of(routes)
    expected = {r: oracle.authorize(event(*r, role)).decision.outcome for r in requests}
    router = cached.ruleset.router
    # Deeper paths no rule lists, under a wildcard that must also allow listed ones, cannot be
    # denied by IAM: the load warns about them (uncovered gaps; `validate --template` says
    # whether the API has such routes), and they are not judged as replays, as in the policy
    # property test.
    table = cached.decider.table if mode == "identity" else cached.decider.route_table
    uncovered = table is not None and bool(table.uncovered_gaps)
    # Route mode loads tables identity mode refuses (conflicts): under an API route that covers
    # several rule routes their responses may deny an allowed route, never allow a denied one
    # (as in the policy property test).
    inexact = mode == "route" and table is not None and bool(table.conflicts)

    def judged(other) -> bool:
        path = other[1]
        return not uncovered or router.find(*other) is not None or path == "/" or "//" in path or path.endswith("/")

    COUNTS["requests"] += len(requests)
    for asked in requests:
        request = event(*asked, role)
        if mode == "route" and router.find(*asked) is not None:
            # The API's routes are the rules' (the pairs below assume it): its route key says so.
            request["routeKey"] = request["requestContext"]["routeKey"] = str(router.find(*asked).route)
        result = cached.authorize(request)
        assert result.response is not None
        assert (result.status == 200) == (expected[asked] == "allow"), asked
        if mode == "disabled" or not judged(asked):
            continue  # TTL 0: nothing is replayed; or a path the API has no route for
        asked_route = router.find(*asked)
        for other in requests:
            if not judged(other):
                continue
            if mode == "route":
                # The route is in the cache key: replayed only on the same API route, and an HTTP
                # API's route key for an ANY route ("ANY /a") holds no method.
                other_route = router.find(*other)
                if asked_route is None or other_route is None or other_route.route != asked_route.route:
                    continue
            COUNTS["pairs"] += 1
            if inexact:
                assert not allows(result.response, *other) or expected[other] == "allow", (asked, other)
            else:
                assert allows(result.response, *other) == (expected[other] == "allow"), (asked, other)


# -- the issue's reproduction, every way it can be given ---------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_simple_responses_under_identity_caching_are_refused_however_simple_is_given(tmp_path, source):
    top, environ, flags = given_as(("simple", source), ("identity", "file"))
    path = write(tmp_path / "api.yaml", PROJECTS.replace("rules:", "\n".join(top) + "\nrules:"))
    with pytest.raises(RulesError) as caught:
        Authorizer.load(path, settings=Settings.from_environ(environ, flags))
    message = str(caught.value)
    assert f"with cache.mode: identity ({path}:" in message
    assert {
        "file": f"response: simple ({path}:",
        "environment": "RULEAUTH_RESPONSE=simple (environment)",
        "flag": "--response simple (flag)",
    }[source] in message


@pytest.mark.parametrize("mode", ["route", "disabled"])
def test_simple_responses_load_when_the_cache_key_holds_the_route_or_nothing_is_cached(tmp_path, mode):
    path = write(tmp_path / "api.yaml", PROJECTS)
    auth = Authorizer.load(
        path, settings=Settings.from_environ({"RULEAUTH_RESPONSE": "simple", "RULEAUTH_CACHE_MODE": mode})
    )
    viewer = auth.authorize(event("GET", "/projects/1", "viewer"))
    assert viewer.response["isAuthorized"] is True
    assert auth.authorize(event("DELETE", "/projects/1", "viewer")).response["isAuthorized"] is False


def test_every_command_refuses_the_environment_override_validate_used_to_accept(tmp_path):
    path = write(tmp_path / "api.yaml", PROJECTS)
    env = {**cli_env(), "RULEAUTH_RESPONSE": "simple"}
    done = run_cli("validate", str(path), env=env)
    assert done.returncode == 1 and "RULEAUTH_RESPONSE=simple (environment) with cache.mode identity" in done.stdout
    for command in (
        ["dry-run", str(path), "--method", "DELETE", "--path", "/projects/1", "--token", "viewer"],
        ["test", str(path)],
        ["snapshot", str(path)],
        ["serve", str(path), "--port", "0"],
    ):
        done = run_cli(*command, env=env)
        assert done.returncode == 3, (command, done.stdout, done.stderr)
        assert "RULEAUTH_RESPONSE=simple (environment)" in done.stderr, command
    assert not rules_snapshot.snapshot_path(path).exists()


def test_validate_flags_preview_a_deployments_settings_and_json_says_where_each_came_from(tmp_path):
    path = write(tmp_path / "api.yaml", PROJECTS)
    done = run_cli("validate", str(path), "--response", "simple")
    assert done.returncode == 1 and "--response simple (flag) with cache.mode identity (the default)" in done.stdout
    done = run_cli("validate", str(path), "--response", "simple", "--cache-mode", "route")
    assert done.returncode == 0, done.stdout
    assert "checked under --response simple (flag), --cache-mode route (flag)" in done.stdout
    done = run_cli(
        "validate",
        str(path),
        "--json",
        "--engine",
        "cel-python",
        env={**cli_env(), "RULEAUTH_CACHE_MODE": "disabled", "RULEAUTH_RESPONSE": "simple"},
    )
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert report["settings"]["response"] == {"value": "simple", "origin": "environment", "where": "RULEAUTH_RESPONSE"}
    assert report["settings"]["cache_mode"]["origin"] == "environment"
    assert report["settings"]["engine"] == {"value": "cel-python", "origin": "flag", "where": "--engine"}


def test_a_file_setting_says_its_file_and_line(tmp_path):
    path = write(tmp_path / "api.yaml", "version: 1\nresponse: simple\ncache: {mode: route}\nrules: []\n")
    settings = Authorizer.load(path, settings=Settings.from_environ({})).ruleset.settings
    assert str(settings.response) == f"response: simple ({path}:2)"
    assert str(settings.cache_mode) == f"cache.mode: route ({path}:3)"
    overridden = Authorizer.load(path, settings=Settings.from_environ({"RULEAUTH_CACHE_MODE": "disabled"}))
    assert overridden.ruleset.cache.mode == "disabled"
    assert str(overridden.ruleset.settings.cache_mode) == "RULEAUTH_CACHE_MODE=disabled (environment)"


@pytest.mark.parametrize(
    "variable, value",
    [
        ("RULEAUTH_RESPONSE", "json"),
        ("RULEAUTH_ENGINE", "cel-go"),
        ("RULEAUTH_CACHE_MODE", "always"),
        ("RULEAUTH_METRICS", "yes"),
        ("RULEAUTH_LOG_LEVEL", "LOUD"),
        ("RULEAUTH_LOG_SAMPLE_ALLOW", "2"),
    ],
)
def test_every_bad_setting_is_a_load_error_naming_its_variable_all_at_once(variable, value):
    with pytest.raises(RulesError) as caught:
        Settings.from_environ({variable: value, "RULEAUTH_RESPONSE": "json"})
    messages = [p.message for p in caught.value.problems]
    assert any(m.startswith(f"{variable} must be") and repr(value) in m for m in messages), messages
    assert any(m.startswith("RULEAUTH_RESPONSE must be") for m in messages)


def test_the_settings_choices_are_the_loaders():
    from ruleauth.rules.ruleset import CACHE_MODES as LOADER_CACHE_MODES
    from ruleauth.rules.ruleset import RESPONSE_IAM, RESPONSE_SIMPLE

    assert ENGINES == expressions.ENGINES
    assert CACHE_MODES == LOADER_CACHE_MODES and RESPONSES == (RESPONSE_IAM, RESPONSE_SIMPLE)


# -- rules snapshots are keyed on the effective settings ------------------------------------


@pytest.mark.parametrize(
    "variable, value",
    [
        ("RULEAUTH_RESPONSE", "simple"),
        ("RULEAUTH_CACHE_MODE", "disabled"),
        ("RULEAUTH_ENGINE", "cel-expr-python"),
        ("RULEAUTH_CEL_INTERPRETER", "1"),
    ],
)
def test_a_snapshot_made_under_other_load_settings_is_stale(tmp_path, variable, value):
    path = write(tmp_path / "api.yaml", PROJECTS)
    rules_snapshot.save(Authorizer.load(path, settings=Settings.from_environ({})).ruleset, path)
    assert rules_snapshot.read(path, settings=Settings.from_environ({})) is not None
    with pytest.raises(rules_snapshot.SnapshotUnusable, match=f"setting {variable}"):
        rules_snapshot.read(path, settings=Settings.from_environ({variable: value}))


def test_a_cold_start_under_simple_never_uses_a_snapshot_made_under_iam(tmp_path, capsys):
    path = write(tmp_path / "api.yaml", PROJECTS)
    rules_snapshot.save(Authorizer.load(path, settings=Settings.from_environ({})).ruleset, path)
    with pytest.raises(RulesError, match=r"RULEAUTH_RESPONSE=simple \(environment\)"):
        Authorizer.load(path, environ={"RULEAUTH_RESPONSE": "simple"}, snapshot=True)
    assert "rules snapshot not used" in capsys.readouterr().out
    # Made and read under the same override: the snapshot's rule set carries it.
    made = Authorizer.load(path, environ={"RULEAUTH_RESPONSE": "simple", "RULEAUTH_CACHE_MODE": "route"})
    rules_snapshot.save(made.ruleset, path)
    read = rules_snapshot.read(
        path, environ={"RULEAUTH_RESPONSE": "simple", "RULEAUTH_CACHE_MODE": "route", "RULEAUTH_METRICS": "1"}
    )
    assert read.response == "simple" and read.cache.mode == "route"
    assert str(read.settings.response) == "RULEAUTH_RESPONSE=simple (environment)"
    assert read.settings.metrics.value == "on"  # today's, not the build's


# -- simple responses and routes no rule reaches ------------------------------------------


@pytest.mark.parametrize(
    "routes",
    [
        ["GET /hello"],
        ["GET /a", "GET /b"],
        ["ANY /", "ANY /{proxy+}"],
        ["ANY /{proxy+}"],
        ["GET /", "POST /", "ANY /{p+}"],
    ],
)
def test_simple_with_identity_caching_is_refused_while_any_request_reaches_no_rule(tmp_path, routes):
    rules = "".join(f"  - {{name: r{i}, route: '{r}', allow: \"token == 'x'\"}}\n" for i, r in enumerate(routes))
    path = write(tmp_path / "r.yaml", "version: 1\nresponse: simple\nrules:\n" + rules)
    with pytest.raises(RulesError, match=r"reaches no rule and is denied \(no_route\)"):
        Authorizer.load(path, settings=Settings.from_environ({}))


# -- field access on a define ------------------------------------------------------------


def test_field_access_on_a_define_reads_its_value_on_every_engine(tmp_path):
    text = textwrap.dedent("""
        version: 1
        token: {header: Authorization}
        define:
          q: "{'role': token, 'tags': [token, 'b']}"
        rules:
          - {name: a, route: GET /a, auth: token, allow: "q.role == 'x' && q['tags'][1] == 'b' && q.tags.exists(t, t == 'x')"}
    """)
    path = write(tmp_path / "r.yaml", text)
    for environ in ({}, {"RULEAUTH_CEL_INTERPRETER": "1"}, {"RULEAUTH_ENGINE": "cel-expr-python"}):
        auth = Authorizer.load(path, environ=environ)
        assert auth.authorize(build_event("rest-request", "GET", "/a", headers={"Authorization": "x"})).status == 200
        assert auth.authorize(build_event("rest-request", "GET", "/a", headers={"Authorization": "y"})).status == 403


@given(name=st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True))
def test_an_unknown_name_is_never_suggested_as_itself(name):
    message = expressions._unknown("variable", name, (*expressions.VARIABLES, name, name + "s"))
    assert f"did you mean {name!r}" not in message


# -- the cold start --------------------------------------------------------------------------


def test_the_lambda_import_fails_on_the_issues_deployment_and_says_which_settings(tmp_path):
    from tests.test_handler import results, run

    path = write(tmp_path / "api.yaml", PROJECTS)
    done = run({"RULEAUTH_RULES": str(path), "RULEAUTH_RESPONSE": "simple"})
    assert done.returncode != 0
    assert "RULEAUTH_RESPONSE=simple (environment) with cache.mode identity (the default)" in done.stdout
    # As examples/http-api deploys ResponseType=simple: caching off, told to the function too.
    viewer = {
        "version": "2.0",
        "type": "REQUEST",
        "headers": {"authorization": "viewer"},
        "routeArn": "arn:aws:execute-api:eu-west-1:123456789012:abc123/$default/DELETE/projects/1",
        "requestContext": {"requestId": "r"},
    }
    (result,) = results(
        run({"RULEAUTH_RULES": str(path), "RULEAUTH_RESPONSE": "simple", "RULEAUTH_CACHE_MODE": "disabled"}, [viewer])
    )
    assert result == {"response": {"isAuthorized": False, "context": {}}}
    done = run({"RULEAUTH_RULES": str(path), "RULEAUTH_METRICS": "yes", "RULEAUTH_LOG_SAMPLE_ALLOW": "2"})
    assert done.returncode != 0 and "RULEAUTH_METRICS must be" in done.stdout
    assert "RULEAUTH_LOG_SAMPLE_ALLOW must be" in done.stdout


def test_the_specs_environment_table_lists_every_setting():
    spec = (Path(__file__).resolve().parents[1] / "docs" / "spec.md").read_text(encoding="utf-8")
    from ruleauth.rules.settings import SOURCES as SETTINGS

    for _key, variable, flag, _default in SETTINGS.values():
        assert f"| `{variable}` |" in spec, variable
        if flag:
            assert f"flag `{flag}`" in spec, flag


def test_every_variable_the_code_reads_is_a_row_of_the_specs_table_and_named_in_the_readme():
    """Also the variables read outside the effective configuration (RULEAUTH_SERVICE, RULEAUTH_DEBUG)."""
    import re

    root = Path(__file__).resolve().parents[1]
    spelled = set()
    for module in (root / "ruleauth").rglob("*.py"):
        spelled |= set(re.findall(r"[\"'](RULEAUTH_[A-Z_]+)[\"']", module.read_text(encoding="utf-8")))
    spec = (root / "docs" / "spec.md").read_text(encoding="utf-8")
    table = spec[spec.index("\n## Environment variables\n") :].split("\n## ", 2)[1]
    rows = set(re.findall(r"^\| `(RULEAUTH_[A-Z_]+)` \|", table, re.M))
    assert spelled == rows
    readme = (root / "README.md").read_text(encoding="utf-8")
    paragraph = readme[readme.index("\nEnvironment variables: ") :].split("\n\n", 1)[0]
    # RULEAUTH_DEBUG is the command line's alone; the paragraph also names the build's RULEAUTH_EXTRAS.
    assert rows - {"RULEAUTH_DEBUG"} <= set(re.findall(r"`(RULEAUTH_[A-Z_]+)", paragraph))


@pytest.mark.parametrize("mode", ["route", "disabled"])
def test_dry_run_lists_only_what_a_cached_simple_yes_answers(tmp_path, mode):
    from tests.cli_support import run_json

    files = '  - {name: files, route: "ANY /files/{id}", auth: token, allow: "token == \'viewer\'"}\n'
    path = write(tmp_path / "api.yaml", PROJECTS + files)
    flags = ["--token", "viewer", "--event-type", "http-2.0", "--response", "simple", "--cache-mode", mode]
    status, report = run_json("dry-run", str(path), "--method", "GET", "--path", "/projects/1", *flags)
    assert status == 0 and report["response"] == {"isAuthorized": True, "context": {}}
    assert report["policy_grants"] == ["GET /projects/{id}"]
    status, report = run_json("dry-run", str(path), "--method", "PUT", "--path", "/files/1", *flags)
    expected = (
        ["PUT /files/{id}"]
        if mode == "disabled"
        else [f"{m} /files/{{id}}" for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")]
    )
    assert sorted(report["policy_grants"]) == sorted(expected)
    status, report = run_json("dry-run", str(path), "--method", "DELETE", "--path", "/projects/1", *flags)
    assert report["response"]["isAuthorized"] is False and report["policy_grants"] == []
