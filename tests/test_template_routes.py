"""ruleauth.tools.template_routes: routes and authorizer settings from SAM, CloudFormation and OpenAPI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ruleauth.tools.template_routes import (
    ApiRoute,
    AuthorizerSettings,
    TemplateError,
    load_document,
    read_api_template,
)

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "sam"


def by_name(settings: tuple[AuthorizerSettings, ...]) -> dict[str, AuthorizerSettings]:
    return {s.name: s for s in settings}


def authorizers_of(routes: tuple[ApiRoute, ...]) -> dict[str, str | None]:
    return {str(r): r.authorizer for r in routes}


# --- the project's own templates -----------------------------------------------------


def test_root_template() -> None:
    template = read_api_template(str(REPO / "template.yaml"))
    assert template.routes == (ApiRoute("GET", "/hello"),)
    assert template.routes[0].authorizer == "RuleauthAuthorizer"
    assert template.routes[0].api == "RuleauthApi"
    assert template.authorizers == (
        AuthorizerSettings(
            name="RuleauthAuthorizer",
            api_type="rest",
            payload="REQUEST",
            headers=("Authorization",),
            query=(),
            stage_variables=(),
            context=(),
            ttl=300,  # the AuthorizerTtl parameter's Default
            simple_responses=False,
        ),
    )
    assert template.source == str(REPO / "template.yaml")


def test_http_api_example() -> None:
    template = read_api_template(str(REPO / "examples/http-api/template.yaml"))
    assert template.routes == (ApiRoute("GET", "/hello"),)
    (authorizer,) = template.authorizers
    assert (authorizer.api_type, authorizer.payload, authorizer.headers, authorizer.ttl) == (
        "http",
        "2.0",
        ("Authorization",),
        300,
    )
    # EnableSimpleResponses: !If [SimpleResponses, ...] with ResponseType's default `iam`.
    assert authorizer.simple_responses is False


def test_embed_example_and_logging_template() -> None:
    embed = read_api_template(str(REPO / "examples/embed/template.yaml"))
    assert embed.routes == (ApiRoute("GET", "/hello"),)
    assert [a.headers for a in embed.authorizers] == [("Authorization",)]
    logging = read_api_template(str(REPO / "templates/apigw-logging.yaml"))
    assert logging.routes == () and logging.authorizers == ()


def test_json_template_reads_like_yaml(tmp_path: Path) -> None:
    as_json = tmp_path / "template.json"
    as_json.write_text(json.dumps(load_document(str(REPO / "template.yaml"))))
    from_yaml = read_api_template(str(REPO / "template.yaml"))
    from_json = read_api_template(str(as_json))
    assert (from_json.routes, from_json.authorizers) == (from_yaml.routes, from_yaml.authorizers)


def test_short_form_tags_become_long_form() -> None:
    document = load_document(str(REPO / "template.yaml"))
    function = document["Resources"]["RuleauthFunction"]["Properties"]
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": "RuleauthLogGroup"}
    assert function["Environment"]["Variables"]["RULEAUTH_RULES"] == {
        "Fn::If": ["HasRulesPath", {"Ref": "RulesPath"}, {"Ref": "AWS::NoValue"}]
    }
    output = document["Outputs"]["RuleauthFunctionArn"]["Value"]
    assert output == {"Fn::GetAtt": ["RuleauthFunction", "Arn"]}
    assert document["AWSTemplateFormatVersion"] == "2010-09-09"  # a string, not a date


# --- OpenAPI files ----------------------------------------------------------------------


def test_swagger2_rest_with_token_and_request_authorizers() -> None:
    template = read_api_template(str(FIXTURES / "openapi-rest.yaml"))
    assert set(template.routes) == {
        ApiRoute("GET", "/orders/{id}"),
        ApiRoute("HEAD", "/orders/{id}"),
        ApiRoute("ANY", "/admin/{proxy+}"),
        ApiRoute("GET", "/health"),
        ApiRoute("GET", "/"),
    }
    assert authorizers_of(template.routes) == {
        "GET /orders/{id}": "tokenAuth",  # top-level security
        "HEAD /orders/{id}": "tokenAuth",
        "ANY /admin/{proxy+}": "requestAuth",
        "GET /health": None,  # security: []
        "GET /": "tokenAuth",
    }
    authorizers = by_name(template.authorizers)
    assert set(authorizers) == {"tokenAuth", "requestAuth"}  # the plain API key scheme is not one
    token = authorizers["tokenAuth"]
    assert (token.api_type, token.payload, token.headers, token.ttl) == ("rest", "TOKEN", ("X-Token",), 60)
    request = authorizers["requestAuth"]
    assert request.payload == "REQUEST"
    assert request.headers == ("Authorization",)
    assert request.query == ("tenant",)
    assert request.stage_variables == ("env",)
    assert request.context == ("httpMethod", "resourcePath")
    assert request.ttl == 0


def test_openapi3_http_with_lambda_and_jwt_authorizers() -> None:
    template = read_api_template(str(FIXTURES / "openapi-http.json"))
    assert authorizers_of(template.routes) == {
        "GET /pets/{id}": "lambdaAuth",
        "DELETE /pets/{id}": None,  # a JWT authorizer is not a Lambda authorizer
        "ANY $default": "lambdaAuth",
    }
    (authorizer,) = template.authorizers
    assert authorizer == AuthorizerSettings(
        name="lambdaAuth",
        api_type="http",
        payload="2.0",
        headers=("Authorization",),
        query=("v",),
        stage_variables=(),
        context=("routeKey",),
        ttl=120,
        simple_responses=True,
    )


# --- SAM features -------------------------------------------------------------------------


def test_sam_globals_implicit_apis_events_and_definition_uri() -> None:
    template = read_api_template(str(FIXTURES / "sam-implicit.yaml"))
    routes = authorizers_of(template.routes)
    assert routes["ANY /things/{proxy+}"] == "TokenAuth"  # `any` → ANY; Globals.Api default authorizer
    assert routes["GET /status"] is None  # Auth: {Authorizer: NONE}
    assert routes["ANY $default"] == "HttpAuth"  # HttpApi event without Path/Method
    assert routes["POST /items/{id}"] == "HttpAuth"
    assert routes["POST /orders"] == "TokenAuth"
    # OrdersApi's DefinitionUri is a local OpenAPI file: its routes and authorizers count too.
    assert routes["GET /health"] is None
    assert routes["ANY /admin/{proxy+}"] == "requestAuth"
    authorizers = by_name(template.authorizers)
    token = authorizers["TokenAuth"]
    assert (token.payload, token.headers, token.ttl) == ("TOKEN", ("X-Token",), 45)  # Ref → Default
    http = authorizers["HttpAuth"]
    assert http.api_type == "http" and http.payload == "1.0"
    assert (http.headers, http.query, http.stage_variables, http.context) == (
        ("Authorization",),
        ("tenant",),
        ("env",),
        ("routeKey",),
    )
    assert http.ttl is None  # HTTP API without ReauthorizeEvery: not stated in the file
    assert http.simple_responses is False  # !If [NotSimple, ...] evaluated with defaults
    assert "requestAuth" in authorizers and "tokenAuth" in authorizers


def test_rest_token_authorizer_defaults(tmp_path: Path) -> None:
    path = tmp_path / "token.yaml"
    path.write_text(
        """
Transform: AWS::Serverless-2016-10-31
Resources:
  Api:
    Type: AWS::Serverless::Api
    Properties:
      StageName: prod
      Auth:
        DefaultAuthorizer: Tok
        Authorizers:
          Tok:
            FunctionArn: !ImportValue ruleauth-RuleauthFunctionArn
          Pool:
            UserPoolArn: arn:aws:cognito-idp:us-east-1:123456789012:userpool/x
"""
    )
    (authorizer,) = read_api_template(str(path)).authorizers
    # SAM's defaults: TOKEN, header Authorization, 300 s.
    assert (authorizer.payload, authorizer.headers, authorizer.ttl) == ("TOKEN", ("Authorization",), 300)


def test_plain_cloudformation_websocket_and_rest_methods() -> None:
    template = read_api_template(str(FIXTURES / "cfn-websocket.yaml"))
    assert authorizers_of(template.routes) == {
        "$connect": "WsAuth",
        "sendmessage": None,
        "GET /a/{b+}": "RestAuth",
        "ANY /": None,
    }
    assert ApiRoute("", "$connect") in template.routes
    authorizers = by_name(template.authorizers)
    ws = authorizers["WsAuth"]
    assert (ws.api_type, ws.payload, ws.headers, ws.query, ws.ttl) == (
        "websocket",
        "REQUEST",
        ("Auth",),
        ("token",),
        0,
    )
    rest = authorizers["RestAuth"]
    assert (rest.payload, rest.headers, rest.context, rest.ttl) == (
        "REQUEST",
        ("Authorization",),
        ("httpMethod",),
        0,
    )


def test_route_identity_ignores_informative_fields() -> None:
    assert ApiRoute("GET", "/x", api="A", authorizer="Z") == ApiRoute("GET", "/x")
    assert str(ApiRoute("", "$connect")) == "$connect"
    assert str(ApiRoute("ANY", "/a/{p+}")) == "ANY /a/{p+}"


# --- errors name the file ---------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(TemplateError, match=r"nope\.yaml: cannot read"):
        read_api_template(str(missing))


def test_broken_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("Resources:\n  A: {Type: x\n  B: 1\n")
    with pytest.raises(TemplateError, match=r"broken\.yaml:\d+:\d+: not valid YAML"):
        read_api_template(str(path))


@pytest.mark.parametrize(
    "text,message",
    [
        ("- a\n- b\n", "found list"),
        ("AWSTemplateFormatVersion: '2010-09-09'\n", "no `Resources:` mapping"),
        ("version: 1\nrules: []\n", "no `openapi:` or `swagger:` key"),
    ],
)
def test_not_a_template(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "other.yaml"
    path.write_text(text)
    with pytest.raises(TemplateError, match=message) as caught:
        read_api_template(str(path))
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, ValueError)
