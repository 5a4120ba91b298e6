"""Read the routes and Lambda authorizer settings of an API definition.

`ruleauth validate --template FILE` compares these with the rules file: routes
that no rule covers, and identity sources or a cache TTL that disagree with
the rules' `cache:` block. Accepted inputs:

- SAM templates (`AWS::Serverless::Api` / `HttpApi` and function events of
  type `Api` / `HttpApi`), including inline or local `DefinitionBody` /
  `DefinitionUri` OpenAPI documents;
- plain CloudFormation (`AWS::ApiGateway::RestApi` / `AWS::ApiGatewayV2::Api`
  bodies, `AWS::ApiGateway::Authorizer`, `AWS::ApiGatewayV2::Authorizer`,
  `AWS::ApiGatewayV2::Route`), which is also what `sam validate` /
  the SAM translator produce;
- OpenAPI 3 / Swagger 2 files with `x-amazon-apigateway-authorizer` schemes.

YAML or JSON. CloudFormation short-form tags (`!Ref`, `!GetAtt`, `!Sub`, ...)
become their long form (`{"Ref": ...}`), so nothing needs the AWS tooling.
Only pyyaml is imported: this runs in the CLI, not in the Lambda.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from ruleauth.errors import LoadError
from ruleauth.model import SourcePos

__all__ = [
    "ApiRoute",
    "ApiTemplate",
    "AuthorizerSettings",
    "TemplateError",
    "load_document",
    "read_api_template",
]

REST = "rest"
HTTP = "http"
WEBSOCKET = "websocket"

# API Gateway's default TTL for REST authorizers (SAM ReauthorizeEvery and
# CloudFormation AuthorizerResultTtlInSeconds both default to it). HTTP API
# documents no default for an unset TTL, so there it stays None ("unknown").
REST_DEFAULT_TTL = 300

_OPENAPI_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_ANY_METHOD_KEY = "x-amazon-apigateway-any-method"
_AUTHORIZER_KEY = "x-amazon-apigateway-authorizer"


@dataclass(frozen=True)
class ApiRoute:
    """One route API Gateway serves.

    `method` is upper case or "ANY"; `path` keeps API Gateway's template
    syntax ("/orders/{id}", "/admin/{proxy+}"). WebSocket routes have method
    "" and the route key as path ("$connect"); HTTP API's catch-all route is
    method "ANY", path "$default".

    `api` (the API's logical id, or "" for an OpenAPI file) and `authorizer`
    (the authorizer API Gateway runs first: its name, None when the route is
    open, "" when the file does not say) are informative and excluded from
    equality, so `ApiRoute("GET", "/hello") in template.routes` works.
    """

    method: str
    path: str
    api: str = field(default="", compare=False)
    authorizer: str | None = field(default="", compare=False)
    # Where the route is declared (its event's or operation's mapping), when the file says.
    pos: SourcePos | None = field(default=None, compare=False)
    # Why no authorizer runs, in the file's own words (`Auth: {Authorizer: NONE}`, `security: []`).
    open_by: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.method} {self.path}".strip()


@dataclass(frozen=True)
class AuthorizerSettings:
    """A Lambda authorizer as API Gateway will run it.

    `api_type` is "rest", "http" or "websocket". `payload` is "TOKEN" or "REQUEST"
    for REST APIs, the payload format version ("1.0" / "2.0") for HTTP APIs and
    "REQUEST" for WebSocket APIs (which never cache: ttl 0). Identity sources are the bare names
    (`Authorization`, not `method.request.header.Authorization`). `ttl` is the
    cache TTL in seconds with parameters resolved to their defaults; None when
    it cannot be told from the file.
    """

    name: str
    api_type: str
    payload: str
    headers: tuple[str, ...] = ()
    query: tuple[str, ...] = ()
    stage_variables: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    ttl: int | None = None
    simple_responses: bool = False
    api: str = field(default="", compare=False)
    pos: SourcePos | None = field(default=None, compare=False)


@dataclass(frozen=True)
class ApiTemplate:
    routes: tuple[ApiRoute, ...]
    authorizers: tuple[AuthorizerSettings, ...]
    source: str


class TemplateError(LoadError, ValueError):
    """The file cannot be read as a SAM, CloudFormation or OpenAPI document."""


# --- loading -----------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short-form tags into long form, and whose mappings
    remember where they start (for findings at the template's own line and column)."""


class _Located(dict[Any, Any]):
    """A mapping read from a file, with the 1-based (line, column) where it starts."""

    where: tuple[int, int] = (1, 1)


def _construct_located(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Iterator[_Located]:
    data = _Located()
    data.where = (node.start_mark.line + 1, node.start_mark.column + 1)
    yield data  # first, as PyYAML's own constructor does, so recursive structures resolve
    data.update(loader.construct_mapping(node))


def _pos(path: str, value: Any) -> SourcePos | None:
    return SourcePos(path, *value.where) if isinstance(value, _Located) else None


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)
_CfnLoader.add_constructor("tag:yaml.org,2002:map", _construct_located)
# CloudFormation reads timestamps such as `2010-09-09` as strings.
_CfnLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in _CfnLoader.yaml_implicit_resolvers.items()
}


def load_document(path: str) -> Any:
    """Parse a YAML or JSON template, short-form CloudFormation tags in long form."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{path}: cannot read the template: {exc}") from exc
    if text.lstrip().startswith("{"):
        # JSON is YAML too, read so for positions; what YAML 1.1 cannot read, json can.
        try:
            return yaml.load(text, Loader=_CfnLoader)
        except yaml.YAMLError:
            pass
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass  # JSON-looking YAML (flow mapping with tags): let YAML report
    try:
        return yaml.load(text, Loader=_CfnLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TemplateError(f"{path}{where}: not valid YAML or JSON: {problem}") from exc


# --- public entry point --------------------------------------------------------


def read_api_template(path: str) -> ApiTemplate:
    """Read routes and Lambda authorizers from a SAM/CloudFormation or OpenAPI file."""
    document = load_document(path)
    if not isinstance(document, dict):
        raise TemplateError(
            f"{path}: expected a SAM/CloudFormation template or an OpenAPI document "
            f"(a mapping at the top level), found {type(document).__name__}"
        )
    if "openapi" in document or "swagger" in document:
        reader = _OpenApiReader(api="", api_type=_openapi_api_type(document), source=path)
        reader.read(document)
        return ApiTemplate(_dedupe(reader.routes), _dedupe(reader.authorizers), path)
    if isinstance(document.get("Resources"), dict):
        return _CfnReader(path, document).read()
    raise TemplateError(
        f"{path}: not a SAM/CloudFormation template (no `Resources:` mapping) "
        "nor an OpenAPI document (no `openapi:` or `swagger:` key)"
    )


# --- helpers -------------------------------------------------------------------


def _dedupe(items: Iterable[Any]) -> tuple[Any, ...]:
    seen: dict[Any, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return tuple(seen)


def _normalise_method(method: Any) -> str:
    text = str(method).strip()
    if text.lower() in ("any", "*", _ANY_METHOD_KEY):
        return "ANY"
    return text.upper()


def _normalise_path(path: Any) -> str:
    text = str(path).strip()
    if text.startswith("$"):  # $default, $connect, ...
        return text
    if not text.startswith("/"):
        text = "/" + text
    return text


def _string_list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list):
        return tuple(str(item).strip() for item in value if isinstance(item, str) and item.strip())
    return ()


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


@dataclass
class _Identity:
    headers: list[str] = field(default_factory=list)
    query: list[str] = field(default_factory=list)
    stage_variables: list[str] = field(default_factory=list)
    context: list[str] = field(default_factory=list)

    def add_source(self, source: str) -> None:
        """Sort one API Gateway identity-source expression into its list."""
        text = source.strip()
        prefixes = (
            # REST (`method.request...`), HTTP (`$request...`), WebSocket (`route.request...`)
            (("method.request.header.", "$request.header.", "route.request.header."), self.headers),
            (
                ("method.request.querystring.", "$request.querystring.", "route.request.querystring."),
                self.query,
            ),
            (("stageVariables.", "$stageVariables."), self.stage_variables),
            (("context.", "$context."), self.context),
        )
        for options, target in prefixes:
            for prefix in options:
                if text.startswith(prefix):
                    name = text[len(prefix) :]
                    if name and name not in target:
                        target.append(name)
                    return

    def settings(self, **kwargs: Any) -> AuthorizerSettings:
        return AuthorizerSettings(
            headers=tuple(self.headers),
            query=tuple(self.query),
            stage_variables=tuple(self.stage_variables),
            context=tuple(self.context),
            **kwargs,
        )


def _openapi_api_type(document: Mapping[str, Any]) -> str:
    """Guess REST or HTTP for a bare OpenAPI file from its API Gateway extensions."""
    for scheme in _security_schemes(document).values():
        authorizer = scheme.get(_AUTHORIZER_KEY) if isinstance(scheme, dict) else None
        if not isinstance(authorizer, dict):
            continue
        if "authorizerPayloadFormatVersion" in authorizer:
            return HTTP
        sources = _string_list(authorizer.get("identitySource"))
        if any(source.startswith("$") for source in sources):
            return HTTP
        if any(source.startswith("method.request.") for source in sources):
            return REST
    if "x-amazon-apigateway-cors" in document:  # HTTP-API-only extension
        return HTTP
    return REST


def _security_schemes(document: Mapping[str, Any]) -> dict[str, Any]:
    components = document.get("components")
    schemes: dict[str, Any] = {}
    if isinstance(components, dict) and isinstance(components.get("securitySchemes"), dict):
        schemes.update(components["securitySchemes"])
    if isinstance(document.get("securityDefinitions"), dict):  # Swagger 2
        schemes.update(document["securityDefinitions"])
    return schemes


# --- OpenAPI ---------------------------------------------------------------------


class _OpenApiReader:
    """Routes and authorizers of one OpenAPI document (file or DefinitionBody)."""

    def __init__(
        self,
        api: str,
        api_type: str,
        resolve: Callable[[Any], Any] | None = None,
        default_authorizer: str | None = None,
        source: str = "",
    ) -> None:
        self.source = source
        self.api = api
        self.api_type = api_type
        self.resolve = resolve or (lambda value: value)
        self.routes: list[ApiRoute] = []
        self.authorizers: list[AuthorizerSettings] = []
        self._default_authorizer = default_authorizer

    def read(self, document: Mapping[str, Any]) -> None:
        schemes = _security_schemes(document)
        lambda_schemes: set[str] = set()
        for name in sorted(schemes):
            scheme = schemes[name]
            if isinstance(scheme, dict) and _AUTHORIZER_KEY in scheme:
                settings = self._authorizer(name, scheme)
                if settings is not None:
                    self.authorizers.append(settings)
                    lambda_schemes.add(name)
        top_security = document.get("security")
        paths = document.get("paths")
        if not isinstance(paths, dict):
            return
        for raw_path, item in paths.items():
            # SAM wraps the path items of conditional functions in Fn::If.
            operations = self.resolve(item)
            if not isinstance(operations, dict):
                continue
            for key, raw_operation in operations.items():
                operation = self.resolve(raw_operation)
                if key.lower() not in _OPENAPI_METHODS and key != _ANY_METHOD_KEY:
                    continue
                security = operation.get("security", top_security) if isinstance(operation, dict) else top_security
                authorizer = self._route_authorizer(security, lambda_schemes)
                self.routes.append(
                    ApiRoute(
                        method=_normalise_method(key),
                        path=_normalise_path(raw_path),
                        api=self.api,
                        authorizer=authorizer,
                        pos=_pos(self.source, operation) or _pos(self.source, operations),
                        open_by=_open_by_security(security) if authorizer is None else "",
                    )
                )

    def _route_authorizer(self, security: Any, lambda_schemes: set[str]) -> str | None:
        if not isinstance(security, list):
            # No security anywhere: open, unless SAM applies its DefaultAuthorizer.
            return self._default_authorizer
        for requirement in security:
            if isinstance(requirement, dict):
                for name in requirement:
                    if name in lambda_schemes:
                        return str(name)
        return None  # `security: []`, NONE, IAM or API keys only: no Lambda authorizer runs

    def _authorizer(self, name: str, scheme: Mapping[str, Any]) -> AuthorizerSettings | None:
        authorizer = scheme[_AUTHORIZER_KEY]
        if not isinstance(authorizer, dict):
            return None
        kind = str(self.resolve(authorizer.get("type", ""))).lower()
        if kind in ("jwt", "cognito_user_pools"):
            return None  # not a Lambda authorizer
        identity = _Identity()
        for source in _string_list(self.resolve(authorizer.get("identitySource"))):
            identity.add_source(source)
        if kind == "token" and not identity.headers and scheme.get("in") == "header" and scheme.get("name"):
            identity.headers.append(str(scheme["name"]))
        raw_ttl = self.resolve(authorizer.get("authorizerResultTtlInSeconds"))
        ttl = _as_int(raw_ttl)
        if self.api_type == HTTP:
            payload = str(self.resolve(authorizer.get("authorizerPayloadFormatVersion", "2.0")))
            simple = _as_bool(self.resolve(authorizer.get("enableSimpleResponses"))) or False
        else:
            payload = "TOKEN" if kind == "token" else "REQUEST"
            simple = False
            if raw_ttl is None:
                ttl = REST_DEFAULT_TTL
        return identity.settings(
            name=str(name),
            api_type=self.api_type,
            payload=payload,
            ttl=ttl,
            simple_responses=simple,
            api=self.api,
            pos=_pos(self.source, authorizer),
        )


def _open_by_security(security: Any) -> str:
    """How an OpenAPI operation says no Lambda authorizer runs for it."""
    if security == []:
        return "security: []"
    if isinstance(security, list):
        return "security names no Lambda authorizer"
    return "no security and no default authorizer"


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


# --- CloudFormation / SAM -------------------------------------------------------

_IMPLICIT_REST_API = "ServerlessRestApi"
_IMPLICIT_HTTP_API = "ServerlessHttpApi"


class _CfnReader:
    def __init__(self, path: str, document: Mapping[str, Any]) -> None:
        self.path = path
        self.base_dir = os.path.dirname(os.path.abspath(path))
        self.resources: dict[str, Any] = {
            name: resource for name, resource in document["Resources"].items() if isinstance(resource, dict)
        }
        parameters = document.get("Parameters")
        self.parameters: dict[str, Any] = parameters if isinstance(parameters, dict) else {}
        globals_ = document.get("Globals")
        self.globals: dict[str, Any] = globals_ if isinstance(globals_, dict) else {}
        conditions = document.get("Conditions")
        self.conditions: dict[str, Any] = conditions if isinstance(conditions, dict) else {}
        self.routes: list[ApiRoute] = []
        self.authorizers: list[AuthorizerSettings] = []
        # SAM API logical id -> (type, default authorizer name or None)
        self.api_defaults: dict[str, tuple[str, str | None]] = {}

    def read(self) -> ApiTemplate:
        for name, resource in self.resources.items():
            kind = resource.get("Type")
            if kind == "AWS::Serverless::Api":
                self._sam_api(name, self._with_globals("Api", resource), REST)
            elif kind == "AWS::Serverless::HttpApi":
                self._sam_api(name, self._with_globals("HttpApi", resource), HTTP)
        # Implicit APIs: SAM builds them from function events, configured by Globals.
        implicit = self._implicit_apis()
        if _IMPLICIT_REST_API in implicit and _IMPLICIT_REST_API not in self.api_defaults:
            self._sam_api(_IMPLICIT_REST_API, self._with_globals("Api", {}), REST, implicit=True)
        if _IMPLICIT_HTTP_API in implicit and _IMPLICIT_HTTP_API not in self.api_defaults:
            self._sam_api(_IMPLICIT_HTTP_API, self._with_globals("HttpApi", {}), HTTP, implicit=True)
        for name, resource in self.resources.items():
            kind = resource.get("Type")
            properties = resource.get("Properties")
            if not isinstance(properties, dict):
                continue
            if kind == "AWS::Serverless::Function":
                self._function_events(properties)
            elif kind == "AWS::ApiGateway::RestApi":
                self._definition(name, REST, properties.get("Body"), properties.get("BodyS3Location"))
            elif kind == "AWS::ApiGatewayV2::Api":
                self._v2_api(name, properties)
            elif kind == "AWS::ApiGateway::Authorizer":
                self._rest_authorizer(name, properties)
            elif kind == "AWS::ApiGatewayV2::Authorizer":
                self._v2_authorizer(name, properties)
            elif kind == "AWS::ApiGatewayV2::Route":
                self._v2_route(properties)
            elif kind == "AWS::ApiGateway::Method":
                self._rest_method(properties)
        return ApiTemplate(_dedupe(self.routes), _dedupe(self.authorizers), self.path)

    def _implicit_apis(self) -> set[str]:
        used: set[str] = set()
        for resource in self.resources.values():
            properties = resource.get("Properties")
            if resource.get("Type") != "AWS::Serverless::Function" or not isinstance(properties, dict):
                continue
            events = properties.get("Events")
            for event in events.values() if isinstance(events, dict) else ():
                config = event.get("Properties") if isinstance(event, dict) else None
                config = config if isinstance(config, dict) else {}
                if isinstance(event, dict) and event.get("Type") == "Api" and "RestApiId" not in config:
                    used.add(_IMPLICIT_REST_API)
                if isinstance(event, dict) and event.get("Type") == "HttpApi" and "ApiId" not in config:
                    used.add(_IMPLICIT_HTTP_API)
        return used

    # -- values ------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """Resolve `Ref` to a parameter's Default and `Fn::If` by its condition, evaluated
        with parameter defaults (what `sam deploy` uses without overrides). Anything
        else, or anything that depends on the deployment, stays as it is."""
        if not isinstance(value, dict) or len(value) != 1:
            return value
        if "Ref" in value:
            parameter = self.parameters.get(str(value["Ref"]))
            if isinstance(parameter, dict) and "Default" in parameter:
                return parameter["Default"]
        branches = value.get("Fn::If")
        if isinstance(branches, list) and len(branches) == 3:
            chosen = self._condition(branches[0], depth=0)
            if chosen is not None:
                return self.resolve(branches[1] if chosen else branches[2])
        return value

    def _condition(self, condition: Any, depth: int) -> bool | None:
        """Evaluate a named condition or condition expression; None when unknowable."""
        if depth > 32:
            return None
        if isinstance(condition, str):
            condition = self.conditions.get(condition)
        if not isinstance(condition, dict) or len(condition) != 1:
            return None
        ((function, arguments),) = condition.items()
        if function == "Condition":
            return self._condition(arguments, depth + 1)
        if not isinstance(arguments, list):
            return None
        if function == "Fn::Equals" and len(arguments) == 2:
            left, right = (self.resolve(argument) for argument in arguments)
            if isinstance(left, (dict, list)) or isinstance(right, (dict, list)):
                return None
            return str(left) == str(right)
        results = [self._condition(argument, depth + 1) for argument in arguments]
        if function == "Fn::Not" and len(results) == 1 and results[0] is not None:
            return not results[0]
        if function == "Fn::And":
            return False if False in results else (None if None in results else True)
        if function == "Fn::Or":
            return True if True in results else (None if None in results else False)
        return None

    def _ref_name(self, value: Any) -> str:
        value = self.resolve(value)
        if isinstance(value, dict):
            if "Ref" in value:
                return str(value["Ref"])
            attr = value.get("Fn::GetAtt")
            if isinstance(attr, list) and attr:
                return str(attr[0])
        return str(value) if isinstance(value, str) else ""

    def _with_globals(self, section: str, resource: Mapping[str, Any]) -> dict[str, Any]:
        merged = dict(resource.get("Properties") or {})
        defaults = self.globals.get(section)
        if isinstance(defaults, dict):
            merged = _merge(defaults, merged)
        return merged

    # -- SAM ---------------------------------------------------------------

    def _sam_api(self, name: str, properties: Mapping[str, Any], api_type: str, implicit: bool = False) -> None:
        auth = _mapping(properties.get("Auth"))
        default = auth.get("DefaultAuthorizer")
        self.api_defaults[name] = (api_type, str(default) if isinstance(default, str) else None)
        authorizers = auth.get("Authorizers")
        if isinstance(authorizers, dict):
            for auth_name, config in authorizers.items():
                if isinstance(config, dict):
                    settings = self._sam_authorizer(name, str(auth_name), config, api_type)
                    if settings is not None:
                        self.authorizers.append(settings)
        if implicit:
            return
        default_auth = default if isinstance(default, str) and default != "NONE" else None
        body, uri = properties.get("DefinitionBody"), properties.get("DefinitionUri")
        self._definition(name, api_type, body, uri, default_auth)

    def _sam_authorizer(
        self, api: str, name: str, config: Mapping[str, Any], api_type: str
    ) -> AuthorizerSettings | None:
        if "FunctionArn" not in config:
            return None  # Cognito user pool, JWT or IAM: not a Lambda authorizer
        identity_config = _mapping(config.get("Identity"))
        identity = _Identity()
        identity.headers.extend(str(h) for h in _string_list(self.resolve(identity_config.get("Headers"))))
        identity.query.extend(_string_list(self.resolve(identity_config.get("QueryStrings"))))
        identity.stage_variables.extend(_string_list(self.resolve(identity_config.get("StageVariables"))))
        identity.context.extend(_string_list(self.resolve(identity_config.get("Context"))))
        raw_ttl = self.resolve(identity_config.get("ReauthorizeEvery"))
        ttl = _as_int(raw_ttl)
        if api_type == REST:
            payload = str(self.resolve(config.get("FunctionPayloadType", "TOKEN"))).upper()
            if payload == "TOKEN":
                header = self.resolve(identity_config.get("Header", "Authorization"))
                identity.headers = [str(header)] if isinstance(header, str) else []
            if raw_ttl is None:
                ttl = REST_DEFAULT_TTL
            simple = False
        else:
            payload = str(self.resolve(config.get("AuthorizerPayloadFormatVersion", "2.0")))
            simple = _as_bool(self.resolve(config.get("EnableSimpleResponses"))) or False
        return identity.settings(
            name=name,
            api_type=api_type,
            payload=payload,
            ttl=ttl,
            simple_responses=simple,
            api=api,
            pos=_pos(self.path, config),
        )

    def _function_events(self, properties: Mapping[str, Any]) -> None:
        events = properties.get("Events")
        if not isinstance(events, dict):
            return
        for event in events.values():
            if not isinstance(event, dict):
                continue
            kind = event.get("Type")
            config = _mapping(event.get("Properties"))
            if kind == "Api":
                api = self._ref_name(config.get("RestApiId")) or _IMPLICIT_REST_API
                method = self.resolve(config.get("Method", ""))
                path = self.resolve(config.get("Path", ""))
                if isinstance(method, str) and isinstance(path, str):
                    self.routes.append(self._event_route(api, config, method, path))
            elif kind == "HttpApi":
                api = self._ref_name(config.get("ApiId")) or _IMPLICIT_HTTP_API
                method = self.resolve(config.get("Method"))
                path = self.resolve(config.get("Path"))
                if method is None and path is None:
                    route = self._event_route(api, config, "ANY", "$default")
                elif isinstance(method, str) and isinstance(path, str):
                    route = self._event_route(api, config, method, path)
                else:
                    continue
                self.routes.append(route)

    def _event_route(self, api: str, config: Mapping[str, Any], method: str, path: str) -> ApiRoute:
        authorizer, open_by = self._event_auth(api, config)
        auth = config.get("Auth")
        return ApiRoute(
            "ANY" if path == "$default" else _normalise_method(method),
            path if path == "$default" else _normalise_path(path),
            api,
            authorizer,
            pos=(_pos(self.path, auth) if open_by and isinstance(auth, dict) else None) or _pos(self.path, config),
            open_by=open_by,
        )

    def _event_auth(self, api: str, config: Mapping[str, Any]) -> tuple[str | None, str]:
        """The authorizer SAM puts in front of an event's route, or None and why none."""
        auth = config.get("Auth")
        if isinstance(auth, dict) and isinstance(auth.get("Authorizer"), str):
            chosen = auth["Authorizer"]
            if chosen in ("NONE", "AWS_IAM"):
                return None, f"Auth: {{Authorizer: {chosen}}}"
            return chosen, ""
        _, default = self.api_defaults.get(api, ("", None))
        if default is None or default == "NONE":
            return None, f"no Auth.Authorizer on the event and no DefaultAuthorizer on {api}"
        return default, ""

    def _definition(
        self,
        api: str,
        api_type: str,
        body: Any,
        uri: Any,
        default_authorizer: str | None = None,
    ) -> None:
        document: Any = None
        source = self.path
        if isinstance(body, dict) and ("paths" in body or "openapi" in body or "swagger" in body):
            document = body
        elif isinstance(uri, str) and not uri.startswith("s3://"):
            local = os.path.join(self.base_dir, uri)
            if os.path.isfile(local):
                document, source = load_document(local), local
        if not isinstance(document, dict):
            return
        reader = _OpenApiReader(api, api_type, self.resolve, default_authorizer, source)
        reader.read(document)
        self.routes.extend(reader.routes)
        self.authorizers.extend(reader.authorizers)

    # -- plain CloudFormation --------------------------------------------------

    def _v2_api(self, name: str, properties: Mapping[str, Any]) -> None:
        protocol = str(self.resolve(properties.get("ProtocolType", "HTTP"))).upper()
        if protocol == "WEBSOCKET":
            return  # routes come from AWS::ApiGatewayV2::Route
        self._definition(name, HTTP, properties.get("Body"), properties.get("BodyS3Location"))

    def _rest_authorizer(self, name: str, properties: Mapping[str, Any]) -> None:
        kind = str(self.resolve(properties.get("Type", ""))).upper()
        if kind not in ("TOKEN", "REQUEST"):
            return
        identity = _Identity()
        for source in _string_list(self.resolve(properties.get("IdentitySource"))):
            identity.add_source(source)
        raw_ttl = self.resolve(properties.get("AuthorizerResultTtlInSeconds"))
        self.authorizers.append(
            identity.settings(
                name=name,  # the logical id, as routes name it in AuthorizerId
                api_type=REST,
                payload=kind,
                ttl=REST_DEFAULT_TTL if raw_ttl is None else _as_int(raw_ttl),
                simple_responses=False,
                api=self._ref_name(properties.get("RestApiId")),
                pos=_pos(self.path, properties),
            )
        )

    def _v2_authorizer(self, name: str, properties: Mapping[str, Any]) -> None:
        if str(self.resolve(properties.get("AuthorizerType", ""))).upper() != "REQUEST":
            return
        identity = _Identity()
        for source in _string_list(self.resolve(properties.get("IdentitySource"))):
            identity.add_source(source)
        api = self._ref_name(properties.get("ApiId"))
        websocket = self._is_websocket(api)
        version = self.resolve(properties.get("AuthorizerPayloadFormatVersion"))
        self.authorizers.append(
            identity.settings(
                name=name,  # the logical id, as routes name it in AuthorizerId
                api_type=WEBSOCKET if websocket else HTTP,
                # WebSocket authorizers get REQUEST events and are never cached.
                payload="REQUEST" if websocket else str(version) if isinstance(version, str) else "2.0",
                ttl=0 if websocket else _as_int(self.resolve(properties.get("AuthorizerResultTtlInSeconds"))),
                simple_responses=_as_bool(self.resolve(properties.get("EnableSimpleResponses"))) or False,
                api=api,
                pos=_pos(self.path, properties),
            )
        )

    def _v2_route(self, properties: Mapping[str, Any]) -> None:
        key = self.resolve(properties.get("RouteKey"))
        if not isinstance(key, str):
            return
        api = self._ref_name(properties.get("ApiId"))
        auth_type = str(self.resolve(properties.get("AuthorizationType", "NONE"))).upper()
        authorizer: str | None = self._ref_name(properties.get("AuthorizerId")) if auth_type == "CUSTOM" else None
        pos, open_by = _pos(self.path, properties), "" if authorizer else f"AuthorizationType: {auth_type}"
        method, _, path = key.partition(" ")
        if key.startswith("$"):
            # `$default` on an HTTP API is a catch-all; on WebSocket it is a route key.
            method, path = ("ANY" if key == "$default" and not self._is_websocket(api) else ""), key
        elif path:
            method, path = _normalise_method(method), _normalise_path(path)
        else:
            method, path = "", key  # custom WebSocket route key
        self.routes.append(ApiRoute(method, path, api, authorizer, pos=pos, open_by=open_by))

    def _is_websocket(self, api: str) -> bool:
        resource = self.resources.get(api, {})
        properties = resource.get("Properties") if isinstance(resource, dict) else None
        if not isinstance(properties, dict):
            return False
        return str(self.resolve(properties.get("ProtocolType", ""))).upper() == "WEBSOCKET"

    def _rest_method(self, properties: Mapping[str, Any]) -> None:
        method = self.resolve(properties.get("HttpMethod"))
        path = self._resource_path(properties.get("ResourceId"))
        if not isinstance(method, str) or path is None:
            return
        auth_type = str(self.resolve(properties.get("AuthorizationType", "NONE"))).upper()
        authorizer = self._ref_name(properties.get("AuthorizerId")) if auth_type == "CUSTOM" else None
        api = self._ref_name(properties.get("RestApiId"))
        open_by = "" if authorizer else f"AuthorizationType: {auth_type}"
        pos = _pos(self.path, properties)
        self.routes.append(ApiRoute(_normalise_method(method), path, api, authorizer, pos=pos, open_by=open_by))

    def _resource_path(self, resource_id: Any, depth: int = 0) -> str | None:
        """Walk AWS::ApiGateway::Resource parents up to the API's root resource."""
        if depth > 64:
            return None
        value = self.resolve(resource_id)
        if isinstance(value, dict) and isinstance(value.get("Fn::GetAtt"), list):
            attr = value["Fn::GetAtt"]
            return "/" if len(attr) > 1 and attr[1] == "RootResourceId" else None
        name = self._ref_name(value)
        resource = self.resources.get(name)
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::ApiGateway::Resource":
            return None
        properties = resource.get("Properties") or {}
        part = self.resolve(properties.get("PathPart"))
        parent = self._resource_path(properties.get("ParentId"), depth + 1)
        if parent is None or not isinstance(part, str):
            return None
        return parent.rstrip("/") + "/" + part


def _merge(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """SAM Globals semantics: maps merge recursively, the resource's own value wins."""
    merged = dict(defaults)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
