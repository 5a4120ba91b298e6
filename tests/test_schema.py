"""The editor schema (`ruleauth schema`) against the loader.

The test corpus is structural only: unknown keys, wrong types, missing required
keys and bad enum values, which a JSON Schema can express. CEL, route syntax,
cache safety, cross-file merging and YAML strictness (duplicate keys, anchors,
`on`/`yes`) are checked by the loader alone, so the corpus avoids them: every
valid file below is also valid for the loader's semantic checks, and every
invalid file differs from a valid one by a single structural fault.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
import yaml

from ruleauth.errors import RulesError
from ruleauth.rules import loader as rules_loader
from tests.cli_support import DEMO, ROOT, run_cli

SCHEMA_FILE = ROOT / "ruleauth" / "schema" / "rules.schema.json"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator(schema):
    return jsonschema.Draft202012Validator(schema)


def test_schema_command_prints_the_shipped_schema(schema):
    done = run_cli("schema")
    assert done.returncode == 0
    assert json.loads(done.stdout) == schema
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _properties(node: Any, path: str = ""):
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            yield f"{path}.{name}", sub
        for key, sub in node.items():
            if key != "properties":
                yield from _properties(sub, f"{path}/{key}")
        for name, sub in (node.get("properties") or {}).items():
            yield from _properties(sub, f"{path}.{name}")
    elif isinstance(node, list):
        for index, sub in enumerate(node):
            yield from _properties(sub, f"{path}[{index}]")


def test_every_key_has_a_description(schema):
    missing = [path for path, sub in _properties(schema) if not sub.get("description")]
    assert not missing
    assert schema.get("description")


def _keys(schema: dict[str, Any], *path: str) -> set[str]:
    node = schema
    for step in path:
        if step == "[]":
            node = node["items"]
        elif step == "|obj":
            node = next(option for option in node["oneOf"] if option.get("type") == "object")
        else:
            node = node["properties"][step]
    return set(node["properties"])


def test_schema_keys_are_the_loaders_keys(schema):
    assert _keys(schema) == set(rules_loader.TOP_KEYS)
    assert _keys(schema, "rules", "[]") == set(rules_loader.RULE_KEYS)
    assert _keys(schema, "token") == set(rules_loader.TOKEN_KEYS)
    assert _keys(schema, "cache") == set(rules_loader.CACHE_KEYS)
    assert _keys(schema, "cache", "sources") == set(rules_loader.SOURCE_KEYS)
    assert _keys(schema, "jwt", "|obj") == set(rules_loader.PROVIDER_KEYS)
    assert _keys(schema, "tests", "[]") == set(rules_loader.TEST_KEYS)
    assert _keys(schema, "tests", "[]", "request") == set(rules_loader.REQUEST_KEYS)
    expect = next(
        o for o in schema["properties"]["tests"]["items"]["properties"]["expect"]["oneOf"] if o.get("type") == "object"
    )
    assert set(expect["properties"]) == set(rules_loader.EXPECT_KEYS)


BASE: dict[str, Any] = {
    "version": 1,
    "token": {"header": "Authorization", "scheme": "Bearer"},
    "cache": {"mode": "identity", "sources": {"headers": ["Authorization"]}},
    "jwt": [
        {
            "name": "corp",
            "issuer": "https://idp.example.test",
            "audience": ["https://api.example.test"],
            "algorithms": ["RS256", "ES256"],
            "leeway": 30,
        },
        {"name": "pool", "issuer": "https://cognito.example.test", "client_ids": "abc", "token_use": "access"},
    ],
    "define": {"is_admin": "'admin' in claims.groups"},
    "principal": "claims.sub",
    "context": {"tenant": "claims.tenant"},
    "response": "iam",
    "engine": "cel-python",
    "rules": [
        {"name": "health", "route": "GET /health", "auth": "none", "allow": True, "description": "public"},
        {"name": "orders", "route": ["GET /orders/{id}", "HEAD /orders/{id}"], "allow": "'read:orders' in scopes"},
        {"name": "admins", "route": "ANY /admin/{proxy+}", "auth": {"jwt": ["corp"]}, "allow": "is_admin"},
        {"name": "admins next", "route": "ANY /admin/{proxy+}", "mode": "shadow", "allow": "is_admin"},
    ],
    "tests": [
        {"name": "health", "request": {"method": "GET", "path": "/health"}, "expect": "allow"},
        {
            "name": "orders",
            "request": {
                "method": "GET",
                "path": "/orders/1",
                "headers": {"X-Trace": "1"},
                "query": {"a": "b"},
                "source_ip": "192.0.2.1",
            },
            "claims": {"sub": "u1", "scope": "read:orders"},
            "now": "2026-01-01T00:00:00Z",
            "event_type": "http-2.0",
            "expect": {"decision": "allow", "rule": "orders", "status": 200, "principal": "u1", "context": {}},
        },
        {
            "name": "admins",
            "request": {"method": "DELETE", "path": "/admin/x"},
            "claims": {"sub": "u2", "groups": ["admin"]},
            "expect": {"decision": "allow", "reason": "rule_true"},
        },
    ],
}

VALID: dict[str, dict[str, Any]] = {
    "full": BASE,
    "minimal": {"version": 1, "rules": [{"name": "a", "route": "GET /", "allow": True}]},
    "query token, disabled cache, optional": {
        "version": 1,
        "token": {"query": "access_token"},
        "cache": {"mode": "disabled"},
        "rules": [{"name": "a", "route": "GET /a", "token": "optional", "allow": "token == '' || token == 'x'"}],
    },
    "cookie token, single provider, string lists": {
        "version": 1,
        "token": {"cookie": "session"},
        "cache": {"mode": "route", "sources": {"headers": "Cookie", "context": ["httpMethod", "resourcePath"]}},
        "jwt": {"issuer": "https://idp.example.test", "audience": "api"},
        "rules": [{"name": "a", "route": "GET /a", "allow": "claims.sub != ''"}],
    },
    "websocket and no rules": {"version": 1, "rules": [{"name": "ws", "route": "$connect", "allow": False}]},
}


def _mutate(change):
    document = copy.deepcopy(BASE)
    change(document)
    return document


def _set(path: str, value: Any):
    def change(document):
        *parents, last = path.split(".")
        node = document
        for step in parents:
            node = node[int(step)] if isinstance(node, list) else node[step]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


def _delete(path: str):
    def change(document):
        *parents, last = path.split(".")
        node = document
        for step in parents:
            node = node[int(step)] if isinstance(node, list) else node[step]
        del node[last]

    return change


INVALID: dict[str, Any] = {
    "missing version": _delete("version"),
    "version 2": _set("version", 2),
    "version as text": _set("version", "1"),
    "unknown top-level key": _set("rulez", []),
    "reserved top-level key": _set("deny", []),
    "rules not a list": _set("rules", {"name": "a"}),
    "rule without allow": _delete("rules.0.allow"),
    "rule without route": _delete("rules.0.route"),
    "rule without name": _delete("rules.0.name"),
    "empty rule name": _set("rules.0.name", ""),
    "unknown rule key": _set("rules.0.alow", True),
    "allow is a number": _set("rules.0.allow", 5),
    "route is a number": _set("rules.0.route", 5),
    "empty route list": _set("rules.1.route", []),
    "bad auth": _set("rules.0.auth", "sometimes"),
    "auth and token": _set("rules.2.token", "optional"),
    "rule token not optional": _set("rules.1.token", "required"),
    "bad rule mode": _set("rules.3.mode", "dry"),
    "bad cache mode": _set("cache.mode", "sometimes"),
    "unknown cache key": _set("cache.ttl", 300),
    "unknown source key": _set("cache.sources.cookies", ["a"]),
    "token in two places": _set("token.query", "t"),
    "token nowhere": _set("token", {"scheme": "Bearer"}),
    "unknown token key": _set("token.prefix", "Bearer"),
    "scheme with a space": _set("token.scheme", "Bearer token"),
    "provider without issuer": _delete("jwt.0.issuer"),
    "provider unknown key": _set("jwt.0.secret", "x"),
    "provider without audience": _delete("jwt.0.audience"),
    "leeway as text": _set("jwt.0.leeway", "10"),
    "leeway too large": _set("jwt.0.leeway", 301),
    "symmetric algorithm": _set("jwt.0.algorithms", ["HS256"]),
    "bad response": _set("response", "xml"),
    "bad engine": _set("engine", "cel-go"),
    "reserved context key": _set("context.principalId", "claims.sub"),
    "context key with a dash": _set("context.a-b", "claims.sub"),
    "context value not text": _set("context.n", 5),
    "define name with a dash": _set("define.is-admin", "true"),
    "principal not text": _set("principal", ["claims.sub"]),
    "test without expect": _delete("tests.0.expect"),
    "test without name": _delete("tests.0.name"),
    "bad expect": _set("tests.0.expect", "maybe"),
    "expect without decision": _set("tests.0.expect", {"rule": "health"}),
    "expect status as text": _set("tests.1.expect.status", "200"),
    "unknown expect key": _set("tests.1.expect.code", 200),
    "unknown request key": _set("tests.0.request.body", "x"),
    "request headers not a mapping": _set("tests.0.request.headers", ["a"]),
    "bad event type": _set("tests.1.event_type", "lambda"),
    "unknown test key": _set("tests.0.skip", True),
    "claims not a mapping": _set("tests.1.claims", ["sub"]),
}


def _loader_accepts(tmp_path, document) -> tuple[bool, str]:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    try:
        rules_loader.load(path)
    except RulesError as exc:
        return False, str(exc)
    return True, ""


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_files_pass_both(name, tmp_path, validator):
    document = VALID[name]
    accepted, why = _loader_accepts(tmp_path, document)
    assert accepted, why
    assert list(validator.iter_errors(document)) == []


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_files_fail_both(name, tmp_path, validator):
    document = _mutate(INVALID[name])
    accepted, _ = _loader_accepts(tmp_path, document)
    assert not accepted, f"the loader accepted {name!r}"
    assert list(validator.iter_errors(document)), f"the schema accepted {name!r}"


def test_bundled_demo_matches_the_schema(validator):
    document = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    assert list(validator.iter_errors(document)) == []
    assert DEMO.read_text().startswith("# yaml-language-server: $schema=")


def test_the_schema_id_is_a_versioned_url_naming_this_release(schema):
    """One `$id` per release: a schema saved from one release is never taken for another's."""
    import tomllib

    release = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert schema["$id"] == f"https://ruleauth.dev/schema/{release}/rules.schema.json"
    assert release in schema["description"]


def test_the_editor_setup_the_readme_documents_names_the_schema_and_its_id(schema):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert schema["$id"] in readme
    assert "ruleauth schema > .vscode/ruleauth.schema.json" in readme
    assert "# yaml-language-server: $schema=" in readme and '"yaml.schemas"' in readme
