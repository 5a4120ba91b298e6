"""The SAM templates: cfn-lint clean, and wired correctly once SAM has transformed them.

The transform is aws-sam-translator's own (what CloudFormation runs on deploy), run
offline in the SAM venv; assertions read the resulting CloudFormation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ruleauth.tools.template_routes import ApiRoute, load_document, read_api_template
from tests.sam.tools import REPO, SAM_TEMPLATES, TEMPLATES, run_tool, translate, venv_tool

SUPPORTED_RUNTIMES = ("python3.12", "python3.13")
FUNCTION_ARN = {"Fn::GetAtt": ["RuleauthFunction", "Arn"]}
# The key values examples/usage-plan/rules.yaml gives callers (its define: block).
USAGE_KEYS = {"GoldKeyValue": "gold-plan-0123456789abcdef", "FreeKeyValue": "free-plan-0123456789abcdef"}


@pytest.fixture(scope="module")
def cfn() -> dict[str, dict[str, Any]]:
    return translate(
        {
            "rest": ("template.yaml", {}),
            "rest_ttl0": ("template.yaml", {"AuthorizerTtl": 0}),
            "http": ("examples/http-api/template.yaml", {}),
            "http_ttl0": ("examples/http-api/template.yaml", {"AuthorizerTtl": 0}),
            "http_simple": ("examples/http-api/template.yaml", {"ResponseType": "simple"}),
            "http_simple_ttl0": ("examples/http-api/template.yaml", {"ResponseType": "simple", "AuthorizerTtl": 0}),
            "embed": ("examples/embed/template.yaml", {}),
            "nested": ("examples/nested/template.yaml", {}),
            "usage_plan": ("examples/usage-plan/template.yaml", USAGE_KEYS),
        }
    )


# --- helpers ---------------------------------------------------------------------


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def one(template: dict[str, Any], kind: str) -> dict[str, Any]:
    found = resources_of(template, kind)
    assert len(found) == 1, f"expected one {kind}, found {sorted(found)}"
    return next(iter(found.values()))["Properties"]


def contains(value: Any, needle: Any) -> bool:
    if value == needle:
        return True
    if isinstance(value, dict):
        return any(contains(v, needle) for v in value.values())
    if isinstance(value, list):
        return any(contains(v, needle) for v in value)
    return False


def pick(value: Any, truth: dict[str, bool]) -> Any:
    """Resolve Fn::If with the given condition values, as CloudFormation would."""
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            condition, yes, no = value["Fn::If"]
            return pick(yes if truth[condition] else no, truth)
        return {k: pick(v, truth) for k, v in value.items() if pick(v, truth) != {"Ref": "AWS::NoValue"}}
    if isinstance(value, list):
        return [pick(v, truth) for v in value]
    return value


def rest_authorizer(template: dict[str, Any], name: str) -> dict[str, Any]:
    body = one(template, "AWS::ApiGateway::RestApi")["Body"]
    return body["securityDefinitions"][name]["x-amazon-apigateway-authorizer"]


def lambda_permissions(template: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for resource in resources_of(template, "AWS::Lambda::Permission").values():
        properties = resource["Properties"]
        if "/authorizers/" in json.dumps(properties.get("SourceArn")):
            yield properties


def render(template: str) -> Any:
    """Fill a gateway-response template as API Gateway would and parse the JSON."""
    text = template.replace("$context.error.messageString", '"Unauthorized"')
    text = re.sub(r"\$context\.[A-Za-z.]+", "x", text)
    return json.loads(text)


# --- cfn-lint ----------------------------------------------------------------------


def test_cfn_lint_passes_on_every_template() -> None:
    cfn_lint = venv_tool("cfn-lint")
    result = run_tool([str(cfn_lint), *TEMPLATES], timeout=180, cwd=REPO)
    assert result.returncode == 0, f"cfn-lint found problems:\n{result.stdout}{result.stderr}"


# --- REST: template.yaml ---------------------------------------------------------


def test_authorizer_is_a_request_authorizer_on_the_function_with_identity_and_ttl(cfn: dict) -> None:
    authorizer = rest_authorizer(cfn["rest"], "RuleauthAuthorizer")
    assert authorizer["type"] == "request"
    assert authorizer["identitySource"] == "method.request.header.Authorization"
    assert authorizer["authorizerResultTtlInSeconds"] == 300
    assert contains(authorizer["authorizerUri"], FUNCTION_ARN)


def test_ttl_parameter_reaches_the_authorizer_and_zero_disables_caching(cfn: dict) -> None:
    assert rest_authorizer(cfn["rest_ttl0"], "RuleauthAuthorizer")["authorizerResultTtlInSeconds"] == 0


def test_api_gateway_may_invoke_the_authorizer(cfn: dict) -> None:
    permissions = list(lambda_permissions(cfn["rest"]))
    assert permissions, "no AWS::Lambda::Permission for the authorizer"
    permission = permissions[0]
    assert permission["Action"] == "lambda:InvokeFunction"
    assert permission["Principal"] == "apigateway.amazonaws.com"
    assert permission["FunctionName"] == FUNCTION_ARN


def test_hello_is_behind_the_authorizer_and_cors_preflight_is_not(cfn: dict) -> None:
    paths = pick(one(cfn["rest"], "AWS::ApiGateway::RestApi")["Body"]["paths"], {"CreateSampleApi": True})
    assert paths["/hello"]["get"]["security"] == [{"RuleauthAuthorizer": []}]
    preflight = paths["/hello"]["options"]
    assert not any("RuleauthAuthorizer" in requirement for requirement in preflight.get("security", [])), (
        "OPTIONS (CORS preflight) must not run the authorizer"
    )


def test_stage_has_the_articles_logging_and_tracing(cfn: dict) -> None:
    stage = one(cfn["rest"], "AWS::ApiGateway::Stage")
    assert stage["TracingEnabled"] is True
    # ApiExecutionLogs=full (default): every logging condition holds.
    full = {"ExecutionLogsOn": True, "FullExecutionLogs": True, "SampleApiAccessLogs": True}
    settings = pick(stage["MethodSettings"], full)
    assert settings == [
        {
            "HttpMethod": "*",
            "ResourcePath": "/*",
            "LoggingLevel": "INFO",
            "DataTraceEnabled": True,
            "MetricsEnabled": True,
        }
    ]
    access = pick(stage["AccessLogSetting"], full)
    assert "$context.authorizer.error" in access["Format"]
    json.loads(re.sub(r"\$context\.[A-Za-z.]+", "x", access["Format"]))
    # ApiExecutionLogs=off: no logging, so no account-level CloudWatch role needed.
    off = {"ExecutionLogsOn": False, "FullExecutionLogs": False, "SampleApiAccessLogs": False}
    assert pick(stage["MethodSettings"], off)[0]["LoggingLevel"] == "OFF"
    assert pick({"A": stage["AccessLogSetting"]}, off) == {}


def test_gateway_responses_explain_authorizer_outcomes(cfn: dict) -> None:
    body = one(cfn["rest"], "AWS::ApiGateway::RestApi")["Body"]
    responses = body["x-amazon-apigateway-gateway-responses"]
    expected = {
        "UNAUTHORIZED": "401",
        "ACCESS_DENIED": "403",
        "AUTHORIZER_CONFIGURATION_ERROR": "500",
        "AUTHORIZER_FAILURE": "500",
    }
    for kind, status in expected.items():
        response = responses[kind]
        assert response["statusCode"] == status
        rendered = render(response["responseTemplates"]["application/json"])
        assert rendered["message"], f"{kind}: empty message"
        assert "requestId" in rendered
        assert "gatewayresponse.header.Access-Control-Allow-Origin" in response["responseParameters"]


def test_function_settings(cfn: dict) -> None:
    functions = resources_of(cfn["rest"], "AWS::Lambda::Function")
    function = functions["RuleauthFunction"]["Properties"]
    assert function["Handler"] == "ruleauth.handler.handler"
    assert function["Runtime"] in SUPPORTED_RUNTIMES
    # Cold start plus evaluation must end well inside HTTP API's 10 s authorizer timeout.
    assert function["Timeout"] < 10
    assert function["MemorySize"] >= 512
    assert function["TracingConfig"] == {"Mode": "Active"}
    variables = function["Environment"]["Variables"]
    assert variables["RULEAUTH_LOG_LEVEL"] == {"Ref": "LogLevel"}
    assert "RULEAUTH_RULES" in variables
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": "RuleauthLogGroup"}
    log_group = cfn["rest"]["Resources"]["RuleauthLogGroup"]["Properties"]
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_outputs_are_exported_for_other_stacks(cfn: dict) -> None:
    outputs = cfn["rest"]["Outputs"]
    assert outputs["RuleauthFunctionArn"]["Value"] == FUNCTION_ARN
    assert outputs["RuleauthFunctionArn"]["Export"]["Name"] == {"Fn::Sub": "${AWS::StackName}-RuleauthFunctionArn"}
    assert "Export" in outputs["ApiUrl"]
    assert "execute-api" in json.dumps(outputs["ApiUrl"]["Value"])


def test_sample_api_is_optional_and_the_authorizer_is_not(cfn: dict) -> None:
    # SampleApi=false deploys only the authorizer, for other stacks to use.
    authorizer_parts = {"RuleauthFunction", "RuleauthFunctionRole", "RuleauthLogGroup"}
    for name, resource in cfn["rest"]["Resources"].items():
        if name in authorizer_parts:
            assert "Condition" not in resource, f"{name} must exist without the sample API"
        elif resource.get("Condition") == "MonitoringOn":  # the alarms and dashboard: tests/test_alarms.py
            assert resource["Type"].startswith("AWS::CloudWatch::"), name
        else:
            assert resource.get("Condition") in ("CreateSampleApi", "SampleApiAccessLogs"), (
                f"{name} belongs to the sample API but is created without it"
            )
    outputs = cfn["rest"]["Outputs"]
    assert "Condition" not in outputs["RuleauthFunctionArn"]
    assert outputs["ApiUrl"]["Condition"] == "CreateSampleApi"


# --- HTTP API example ---------------------------------------------------------------


def http_authorizer(template: dict[str, Any]) -> dict[str, Any]:
    body = one(template, "AWS::ApiGatewayV2::Api")["Body"]
    return body["components"]["securitySchemes"]["RuleauthAuthorizer"]["x-amazon-apigateway-authorizer"]


def test_http_api_authorizer_payload_identity_ttl(cfn: dict) -> None:
    authorizer = http_authorizer(cfn["http"])
    assert authorizer["authorizerPayloadFormatVersion"] == "2.0"
    assert authorizer["identitySource"] == ["$request.header.Authorization"]
    assert authorizer["authorizerResultTtlInSeconds"] == {"Fn::If": ["NoCaching", 0, {"Ref": "AuthorizerTtl"}]}
    assert authorizer["enableSimpleResponses"] == {"Fn::If": ["SimpleResponses", True, False]}
    assert contains(authorizer["authorizerUri"], FUNCTION_ARN)
    template = load_document(str(REPO / "examples/http-api/template.yaml"))
    assert template["Parameters"]["AuthorizerTtl"]["Default"] == 300


def test_http_api_has_an_invoke_permission(cfn: dict) -> None:
    # Without it (EnableFunctionDefaultPermissions defaults to false) every call is a 500.
    permissions = list(lambda_permissions(cfn["http"]))
    assert permissions, "HTTP API authorizer has no AWS::Lambda::Permission"
    assert permissions[0]["FunctionName"] == FUNCTION_ARN
    assert permissions[0]["Principal"] == "apigateway.amazonaws.com"


def test_http_api_routes_and_access_log(cfn: dict) -> None:
    body = one(cfn["http"], "AWS::ApiGatewayV2::Api")["Body"]
    assert body["paths"]["/hello"]["get"]["security"] == [{"RuleauthAuthorizer": []}]
    assert "x-amazon-apigateway-cors" in body  # API Gateway answers preflight itself
    stage = one(cfn["http"], "AWS::ApiGatewayV2::Stage")
    assert "$context.authorizer.error" in stage["AccessLogSettings"]["Format"]
    assert cfn["http"]["Outputs"]["RuleauthFunctionArn"]["Export"]


def condition_values(template: dict[str, Any], parameters: dict[str, Any]) -> dict[str, bool]:
    """The template's Conditions evaluated as CloudFormation would, for these parameter values."""
    values = {name: str(parameters.get(name, spec.get("Default"))) for name, spec in template["Parameters"].items()}
    found: dict[str, bool] = {}

    def value(node: Any) -> Any:
        if isinstance(node, dict):
            ((function, argument),) = node.items()
            if function == "Ref":
                return values[argument]
            if function == "Condition":
                return truth(argument)
            if function == "Fn::Equals":
                return str(value(argument[0])) == str(value(argument[1]))
            if function == "Fn::Or":
                return any(value(a) for a in argument)
            if function == "Fn::And":
                return all(value(a) for a in argument)
            if function == "Fn::Not":
                return not value(argument[0])
            raise AssertionError(f"unexpected {function} in Conditions")
        return node

    def truth(name: str) -> bool:
        if name not in found:
            found[name] = bool(value(template["Conditions"][name]))
        return found[name]

    return {name: truth(name) for name in template["Conditions"]}


HTTP_DEPLOYMENTS = {
    "http": {},
    "http_ttl0": {"AuthorizerTtl": 0},
    "http_simple": {"ResponseType": "simple"},
    "http_simple_ttl0": {"ResponseType": "simple", "AuthorizerTtl": 0},
}


@pytest.mark.parametrize("key", HTTP_DEPLOYMENTS)
def test_http_api_never_caches_simple_responses_and_its_ttl_and_cache_mode_agree(cfn: dict, key: str) -> None:
    """RULEAUTH_RESPONSE=simple with identity caching would let one route's yes open all.
    Each deployment's authorizer settings and the function's RULEAUTH_* variables, as deployed,
    load the bundled rules and agree: TTL 0 exactly when the function's cache mode is disabled."""
    from ruleauth.rules.settings import Settings
    from ruleauth.runtime.authorizer import Authorizer

    template, parameters = cfn[key], HTTP_DEPLOYMENTS[key]
    truth = condition_values(template, parameters)
    authorizer = pick(http_authorizer(template), truth)
    variables = pick(template["Resources"]["RuleauthFunction"]["Properties"]["Environment"]["Variables"], truth)
    environ = {
        name: str(parameters.get(v["Ref"], template["Parameters"][v["Ref"]].get("Default")))
        if isinstance(v, dict)
        else v
        for name, v in variables.items()
    }
    ttl = authorizer["authorizerResultTtlInSeconds"]
    ttl = (
        int(parameters.get(ttl["Ref"], template["Parameters"][ttl["Ref"]]["Default"])) if isinstance(ttl, dict) else ttl
    )
    assert authorizer["enableSimpleResponses"] == (environ["RULEAUTH_RESPONSE"] == "simple")
    ruleset = Authorizer.load(REPO / "rules", settings=Settings.from_environ(environ)).ruleset
    assert (ttl == 0) == (ruleset.cache.mode == "disabled"), (ttl, ruleset.settings.cache_mode)
    if ruleset.response == "simple":
        assert ttl == 0


# --- embedding example ---------------------------------------------------------------


def test_embed_uses_the_exported_authorizer_arn(cfn: dict) -> None:
    imported = {"Fn::ImportValue": {"Fn::Sub": "${AuthorizerStackName}-RuleauthFunctionArn"}}
    resolved = {"Fn::ImportValue": {"Fn::Sub": "ruleauth-RuleauthFunctionArn"}}
    authorizer = rest_authorizer(cfn["embed"], "Ruleauth")
    assert contains(authorizer["authorizerUri"], imported) or contains(authorizer["authorizerUri"], resolved)
    assert authorizer["identitySource"] == "method.request.header.Authorization"
    permissions = list(lambda_permissions(cfn["embed"]))
    assert permissions and permissions[0]["FunctionName"] in (imported, resolved)
    # The name the embed stack imports is the one the root stack exports.
    root = load_document(str(REPO / "template.yaml"))
    assert root["Outputs"]["RuleauthFunctionArn"]["Export"]["Name"] == {
        "Fn::Sub": "${AWS::StackName}-RuleauthFunctionArn"
    }


def test_nested_application_deploys_the_authorizer_without_the_sample_api(cfn: dict) -> None:
    application = one(cfn["nested"], "AWS::CloudFormation::Stack")
    assert application["Parameters"]["SampleApi"] == "false"
    nested_arn = {"Fn::GetAtt": ["Ruleauth", "Outputs.RuleauthFunctionArn"]}
    assert contains(rest_authorizer(cfn["nested"], "Ruleauth")["authorizerUri"], nested_arn)
    permissions = list(lambda_permissions(cfn["nested"]))
    assert permissions and permissions[0]["FunctionName"] == nested_arn
    # The parameters the nested stack is given exist in the root template.
    root = load_document(str(REPO / "template.yaml"))
    nested = load_document(str(REPO / "examples/nested/template.yaml"))
    given = nested["Resources"]["Ruleauth"]["Properties"]["Parameters"]
    assert set(given) <= set(root["Parameters"])


def test_usage_plan_takes_the_api_key_from_the_authorizer_on_every_method(cfn: dict) -> None:
    template = cfn["usage_plan"]
    api = one(template, "AWS::ApiGateway::RestApi")
    assert api["ApiKeySourceType"] == "AUTHORIZER"
    methods = [m for path in api["Body"]["paths"].values() for m in path.values()]
    assert methods and all({"api_key": []} in m["security"] and {"Ruleauth": []} in m["security"] for m in methods)
    stage = {"Ref": next(iter(resources_of(template, "AWS::ApiGateway::Stage")))}
    plans = resources_of(template, "AWS::ApiGateway::UsagePlan")
    assert len(plans) == 2
    for plan in plans.values():
        assert plan["Properties"]["ApiStages"] == [{"ApiId": {"Ref": "MeteredApi"}, "Stage": stage}]
    # Each plan holds one of the two keys, whose values are the template's parameters.
    links = resources_of(template, "AWS::ApiGateway::UsagePlanKey").values()
    assert {(link["Properties"]["UsagePlanId"]["Ref"], link["Properties"]["KeyId"]["Ref"]) for link in links} == {
        ("GoldPlan", "GoldKey"),
        ("FreePlan", "FreeKey"),
    }
    keys = resources_of(template, "AWS::ApiGateway::ApiKey")
    assert {name: key["Properties"]["Value"] for name, key in keys.items()} == {
        "GoldKey": {"Ref": "GoldKeyValue"},
        "FreeKey": {"Ref": "FreeKeyValue"},
    }


# --- the account-level logging role ---------------------------------------------------


def test_logging_role_template_sets_the_account_cloudwatch_role() -> None:
    template = load_document(str(REPO / "templates/apigw-logging.yaml"))
    kinds = {r["Type"]: r for r in template["Resources"].values()}
    account = kinds["AWS::ApiGateway::Account"]["Properties"]
    assert account["CloudWatchRoleArn"] == {"Fn::GetAtt": ["ApiGatewayCloudWatchRole", "Arn"]}
    role = kinds["AWS::IAM::Role"]["Properties"]
    assert "AmazonAPIGatewayPushToCloudWatchLogs" in json.dumps(role["ManagedPolicyArns"])
    assert "Transform" not in template  # plain CloudFormation: `aws cloudformation deploy` works


# --- the reader agrees with SAM, and the template with the rules --------------------


@pytest.mark.parametrize("key,path", [("rest", "template.yaml"), ("http", "examples/http-api/template.yaml")])
def test_reader_sees_the_same_api_before_and_after_the_transform(
    cfn: dict, key: str, path: str, tmp_path: Path
) -> None:
    transformed = tmp_path / "transformed.json"
    transformed.write_text(json.dumps(cfn[key]))
    before = read_api_template(str(REPO / path))
    after = read_api_template(str(transformed))
    assert before.authorizers == after.authorizers
    protected = lambda routes: {r for r in routes if r.authorizer}  # noqa: E731
    assert protected(before.routes) == protected(after.routes) == {ApiRoute("GET", "/hello")}


def bundled_cache_block() -> dict[str, Any]:
    files = sorted(p for p in (REPO / "rules").glob("*.y*ml") if not p.name.startswith("."))
    assert files, "rules/ holds no rules file: the template's demo needs the bundled demo rules"
    for path in files:
        document = yaml.safe_load(path.read_text())
        if isinstance(document, dict) and "cache" in document:
            return document["cache"]
    return {"mode": "identity"}


@pytest.mark.parametrize("path", SAM_TEMPLATES)
def test_template_identity_and_ttl_agree_with_the_bundled_rules(path: str) -> None:
    cache = bundled_cache_block()
    mode = cache.get("mode", "identity")
    declared = cache.get("sources") or {}
    for authorizer in read_api_template(str(REPO / path)).authorizers:
        assert [h.lower() for h in authorizer.headers] == [h.lower() for h in declared.get("headers", [])]
        assert list(authorizer.query) == list(declared.get("query", []))
        assert list(authorizer.stage_variables) == list(declared.get("stage_variables", []))
        assert list(authorizer.context) == list(declared.get("context", []))
        assert authorizer.ttl is not None
        assert (authorizer.ttl == 0) == (mode == "disabled"), (
            f"{path}: TTL {authorizer.ttl} but rules say cache.mode {mode}"
        )
