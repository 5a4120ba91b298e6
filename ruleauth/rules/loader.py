"""Rules files → RuleSet: the schema, the merge of a directory, and every load-time check.

All problems are collected (not just the first) and reported together as
`file:line:col: error: message`, so one `ruleauth validate` run shows them all.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode

from ruleauth.cel import fast_engine
from ruleauth.cel.compiler import ENGINES, Compiled, Compiler, ExpressionError, Read
from ruleauth.errors import ERROR, Problem, RulesError
from ruleauth.model import ANY, EVENT_TYPES, METHODS, Introspection, JwtProvider, SourcePos
from ruleauth.reasons import Outcome
from ruleauth.rules import strict_yaml as sy
from ruleauth.rules.files import rule_files
from ruleauth.rules.routes import Route, Router, RouteSyntaxError, Shape, parse_route
from ruleauth.rules.ruleset import (
    AUTH_JWT,
    AUTH_MODES,
    AUTH_NONE,
    AUTH_OPTIONAL,
    AUTH_TOKEN,
    CACHE_DISABLED,
    CACHE_MODES,
    CACHE_ROUTE,
    CERT_PEM_SOURCE,
    CERT_SOURCES,
    MODE_ENFORCE,
    MODE_SHADOW,
    RESPONSE_IAM,
    RESPONSE_SIMPLE,
    CacheConfig,
    Expectation,
    Rule,
    RuleSet,
    TestCase,
    TokenConfig,
    routers,
)
from ruleauth.rules.settings import Settings

TOP_KEYS = (
    "version",
    "token",
    "cache",
    "jwt",
    "define",
    "principal",
    "context",
    "usage_identifier_key",
    "response",
    "engine",
    "rules",
    "tests",
)
RESERVED_TOP_KEYS = ("deny", "include", "imports")
RULE_KEYS = ("name", "route", "auth", "token", "allow", "mode", "description")
TOKEN_KEYS = ("header", "query", "cookie", "scheme")
CACHE_KEYS = ("mode", "sources")
SOURCE_KEYS = ("headers", "query", "stage_variables", "context")
PROVIDER_KEYS = (
    "name",
    "issuer",
    "audience",
    "client_ids",
    "algorithms",
    "typ",
    "token_use",
    "leeway",
    "jwks_uri",
    "jwks_file",
    "certificate_bound",
    "introspection",
)
INTROSPECTION_KEYS = ("url", "client_id", "client_secret_env", "cache_ttl")
# What only a JWT provider reads: an introspection provider verifies no signature.
_JWT_ONLY_KEYS = ("algorithms", "typ", "jwks_uri", "jwks_file")
TEST_KEYS = ("name", "request", "claims", "now", "event_type", "event", "expect")
REQUEST_KEYS = ("method", "path", "headers", "query", "cookies", "stage_variables", "source_ip", "token")
EXPECT_KEYS = ("decision", "rule", "reason", "status", "principal", "context")
DECISIONS = tuple(Outcome)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTEXT_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
RESERVED_CONTEXT_KEYS = ("principalId", "integrationLatency", "claims")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

# What a rule may read when API Gateway caches the response (SPEC "Caching").
_ROUTE_LEVEL = (
    "request.method",
    "request.route",
    "request.stage",
    "request.api_id",
    "request.account_id",
    "request.region",
)
_ALWAYS_CACHE_SAFE = ("token", "claims", "scopes", "auth.provider", "now", "now_unix")


@dataclass
class _Merged:
    """Top-level entries from every file, with the file each came from."""

    single: dict[str, tuple[sy.Source, ScalarNode, Node]] = field(default_factory=dict)
    rules: list[tuple[sy.Source, Node]] = field(default_factory=list)
    defines: list[tuple[sy.Source, ScalarNode, Node]] = field(default_factory=list)
    tests: list[tuple[sy.Source, Node]] = field(default_factory=list)


def load(path: str | os.PathLike[str], engine_override: str | None = None, settings: Settings | None = None) -> RuleSet:
    """Load, check and compile every rule under `path`. Raises RulesError listing every problem.

    `settings` are the environment's and flags' (rules/settings.py; default: this process's
    environment); the file's keys fill the rest, and every check runs on the result.
    `engine_override` is an `--engine` flag.
    """
    if settings is None:
        settings = Settings.from_environ(os.environ, {"engine": engine_override})
    elif engine_override:
        settings = dataclasses.replace(settings, engine=Settings.from_environ({}, {"engine": engine_override}).engine)
    sources: list[sy.Source] = []
    merged = _Merged()
    for file in rule_files(path):
        source = _read(file)
        sources.append(source)
        if source.problems:
            continue
        root = sy.parse(source)
        if root is not None:
            _collect(source, root, merged)
    problems = [p for s in sources for p in s.problems]
    if problems:
        raise RulesError(problems)
    builder = _Builder(merged, sources, settings)
    ruleset = builder.build()
    problems = [p for s in sources for p in s.problems]
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise RulesError(problems)
    ruleset.warnings = [p for p in problems if p.severity == "warning"]
    return ruleset


def _read(file: Path) -> sy.Source:
    name = str(file)
    try:
        data = file.read_bytes()
    except OSError as exc:
        source = sy.Source(name, "")
        source.error(None, f"cannot read the file: {exc.strerror}")
        return source
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        source = sy.Source(name, "")
        source.error(None, f"the file is not UTF-8 (byte {exc.start})")
        return source
    return sy.Source(name, text)


def _collect(source: sy.Source, root: Node, merged: _Merged) -> None:
    entries = sy.as_mapping(source, root, "the rules file")
    if entries is None:
        return
    keys = {k for k, _, _ in entries}
    for key, key_node, _ in entries:
        if key in RESERVED_TOP_KEYS:
            source.error(key_node, f"top-level key {key!r} is reserved for a later version of the rules format")
    sy.check_keys(source, [e for e in entries if e[0] not in RESERVED_TOP_KEYS], TOP_KEYS, "the rules file")
    if "version" not in keys:
        source.error(root, "missing `version: 1` at the top of the file")
    for key, key_node, value in entries:
        if key == "version":
            if not (isinstance(value, ScalarNode) and value.tag == sy.INT and value.value == "1"):
                given = value.value if isinstance(value, ScalarNode) else sy.describe(value)
                source.error(value, f"version must be the integer 1, not {given!r}")
        elif key == "rules":
            for item in sy.as_list(source, value, "rules") or []:
                merged.rules.append((source, item))
        elif key == "tests":
            for item in sy.as_list(source, value, "tests") or []:
                merged.tests.append((source, item))
        elif key == "define":
            for _, name_node, expr in sy.as_mapping(source, value, "define") or []:
                merged.defines.append((source, name_node, expr))
        elif key in TOP_KEYS:
            if key in merged.single:
                first = merged.single[key][0]
                source.error(key_node, f"{key!r} is already set in {first.file}: only one file may set it")
            else:
                merged.single[key] = (source, key_node, value)


class _Builder:
    def __init__(self, merged: _Merged, sources: list[sy.Source], settings: Settings):
        self.merged = merged
        self.sources = sources
        self.first = sources[0]
        self.settings = settings  # gains the file's keys as they are read
        self._define_nodes: dict[str, tuple[sy.Source, Node, str]] = {}
        self._broken_defines: set[str] = set()

    # -- top level ---------------------------------------------------------

    def build(self) -> RuleSet:
        token = self._token_config = self._token()
        cache = self._cache()
        if token.query and cache.cached and not cache.query and not cache.headers:
            cache = CacheConfig(mode=cache.mode, query=(token.query,))
        providers = self._providers()
        self._check_bound_providers(cache, providers)
        defines = self._defines()
        engine = self._engine()
        self.compiler = Compiler(
            defines,
            jwt_configured=bool(providers),
            engine=engine,
            interpreter_only=self.settings.interpreter_only.value,
        )
        self._check_defines()
        self.provider_names = {p.name for p in providers}
        response = self._setting("response", self._choice("response", (RESPONSE_IAM, RESPONSE_SIMPLE), None))
        principal = self._top_expression("principal")
        usage_key = self._top_expression("usage_identifier_key")
        context = self._context()
        rules = self._rules(default_auth=AUTH_JWT if providers else AUTH_TOKEN)
        self._check_cache_safety(cache, rules, principal, context, usage_key)
        self._check_simple_response(cache, rules, context)
        router, shadow_router = routers(rules)
        tests = self._tests()
        ruleset = RuleSet(
            files=tuple(s.file for s in self.sources),
            token=token,
            cache=cache,
            providers=tuple(providers),
            rules=rules,
            router=router,
            shadow_router=shadow_router,
            principal=principal,
            context=context,
            usage_identifier_key=usage_key,
            response=response,
            tests=tests,
            engine=engine,
            settings=self.settings,
        )
        if not any(p.severity == "error" for s in self.sources for p in s.problems):
            # The table analysis assumes well-formed, unique routes.
            from ruleauth.policy.synthesis import table_for

            ruleset.table = table_for(ruleset)
            self._check_policy(ruleset)
        return ruleset

    def _check_policy(self, ruleset: RuleSet) -> None:
        """What a cached policy can say (`ruleset.table`, built just before): exactness, size
        (8 KB) and ARN length (512)."""
        from ruleauth.policy import synthesis as ps
        from ruleauth.policy.response_check import MAX_RESOURCE_CHARS, MAX_RESPONSE_BYTES

        for rule in ruleset.rules:
            for route in rule.routes:
                longest = ps.PREFIX_ESTIMATE + len(ps.route_pattern("OPTIONS", route))
                if longest > MAX_RESOURCE_CHARS:
                    self._source_of(rule).error(
                        _pos_node(rule),
                        f"route {route} makes resource ARNs of about {longest} characters; "
                        f"API Gateway allows {MAX_RESOURCE_CHARS}",
                        rule.name,
                    )
        table = ruleset.table
        if table is None:
            return
        for conflict in table.conflicts:
            self._source_of(conflict.denied.rule).error(
                _pos_node(conflict.denied.rule),
                f"under cache.mode: identity, denying {conflict.denied.label} needs a Deny on "
                f"{conflict.denied.pattern}, which also covers {conflict.example} of rule "
                f"{conflict.allowed.rule.name!r}: a cached policy cannot express these rules exactly. "
                "Use cache.mode: route (route in the cache key) or disabled (TTL 0), or give the two "
                "rules the same condition",
                conflict.denied.rule.name,
            )
        for entry, gap in table.uncovered_gaps:
            self._source_of(entry.rule).warning(
                _pos_node(entry.rule),
                f"the cached Allow for {entry.label} ({entry.pattern}) also covers deeper paths like "
                f"{_example_path(gap)} that no rule lists; if your API has such routes, "
                "list them in a rule (run validate --template to check)",
                entry.rule.name,
            )
        report = ps.size_report(table)
        budget = MAX_RESPONSE_BYTES - 1024  # room for principal and context
        if report.all_allowed > budget:
            self.first.error(
                None,
                f"the cached policy for a caller allowed everywhere would be about {report.all_allowed} "
                f"bytes; API Gateway's limit is {MAX_RESPONSE_BYTES} (with room for principal and context): "
                "use cache.mode: route, or group routes under {proxy+} parameters",
            )
        elif report.worst_case > budget:
            self.first.warning(
                None,
                f"worst-case cached policy is about {report.worst_case} bytes (over the "
                f"{MAX_RESPONSE_BYTES}-byte limit); callers whose policy does not fit get a policy "
                "for the asked route only (correct, but the cache then saves fewer calls)",
            )

    def _engine(self) -> str:
        """`engine:` (or RULEAUTH_ENGINE); the fast engine must be installed, else a load error."""
        engine: str = self._setting("engine", self._choice("engine", ENGINES, None))
        if engine == fast_engine.NAME and not fast_engine.available():
            entry = self._single("engine")
            source, node = (entry[0], entry[2]) if entry and not self.settings.engine.overridden else (self.first, None)
            source.error(node, f"{self.settings.engine}: {engine} is not installed: {fast_engine.INSTALL_HINT}")
            return ENGINES[0]  # go on checking the rest with the default engine
        return engine

    def _single(self, key: str) -> tuple[sy.Source, ScalarNode, Node] | None:
        return self.merged.single.get(key)

    def _setting(self, name: str, file_value: str | None, where: tuple[sy.Source, Node] | None = None) -> Any:
        """The effective value of a setting the file may give (rules/settings.py): the file's value
        (at `where`, else at its top-level key) unless the environment or a flag overrides it."""
        if file_value is not None:
            if where is None:
                source, _, node = self.merged.single[getattr(self.settings, name).key]
            else:
                source, node = where
            self.settings = self.settings.with_file(name, file_value, source.pos(node))
        return getattr(self.settings, name).value

    def _choice(self, key: str, allowed: tuple[str, ...], default: str | None) -> str | None:
        entry = self._single(key)
        if entry is None:
            return default
        source, _, node = entry
        value = sy.as_string(source, node, key)
        if value is None:
            return default
        if value not in allowed:
            source.error(node, f"{key} must be one of {', '.join(allowed)}, not {value!r}")
            return default
        return value

    def _token(self) -> TokenConfig:
        entry = self._single("token")
        if entry is None:
            return TokenConfig()
        source, _, node = entry
        entries = sy.as_mapping(source, node, "token")
        if entries is None:
            return TokenConfig()
        sy.check_keys(source, entries, TOKEN_KEYS, "token")
        values = {k: sy.as_string(source, v, f"token.{k}") for k, _, v in entries}
        where = [k for k in ("header", "query", "cookie") if values.get(k)]
        if len(where) != 1:
            source.error(node, "token needs exactly one of header, query or cookie")
            return TokenConfig()
        header = values.get("header")
        if header and not _HEADER_NAME.match(header):
            source.error(node, f"token.header {header!r} is not a valid header name")
        scheme = values.get("scheme")
        if scheme is not None and (not scheme or any(c.isspace() for c in scheme)):
            source.error(node, "token.scheme must be one word, e.g. Bearer")
        return TokenConfig(header=header, query=values.get("query"), cookie=values.get("cookie"), scheme=scheme)

    def _cache(self) -> CacheConfig:
        entry = self._single("cache")
        if entry is None:
            mode = self._setting("cache_mode", None)  # RULEAUTH_CACHE_MODE, else identity
            return CacheConfig(mode=mode, headers=self._default_sources() if mode != CACHE_DISABLED else ())
        source, _, node = entry
        entries = sy.as_mapping(source, node, "cache")
        if entries is None:
            return CacheConfig()
        sy.check_keys(source, entries, CACHE_KEYS, "cache")
        file_mode, where = None, None
        lists: dict[str, tuple[str, ...]] = {}
        sources_given = False
        for key, _, value in entries:
            if key == "mode":
                text = sy.as_string(source, value, "cache.mode")
                if text is not None and text not in CACHE_MODES:
                    source.error(value, f"cache.mode must be one of {', '.join(CACHE_MODES)}, not {text!r}")
                elif text is not None:
                    file_mode, where = text, (source, value)
            elif key == "sources":
                sources_given = True
                for skey, _, svalue in _mapping_checked(source, value, "cache.sources", SOURCE_KEYS):
                    lists[skey] = tuple(sy.string_list(source, svalue, f"cache.sources.{skey}"))
        mode = self._setting("cache_mode", file_mode, where)
        if mode != CACHE_DISABLED and not sources_given:
            lists["headers"] = self._default_sources()
        return CacheConfig(mode=mode, **lists)

    def _default_sources(self) -> tuple[str, ...]:
        """Without `cache.sources`, the identity source is where the token is read."""
        token = self._token_config
        if token.header:
            return (token.header,)
        return ("Cookie",) if token.cookie else ()

    def _providers(self) -> list[JwtProvider]:
        entry = self._single("jwt")
        if entry is None:
            return []
        source, _, node = entry
        items = [node] if isinstance(node, MappingNode) else (sy.as_list(source, node, "jwt") or [])
        providers: list[JwtProvider] = []
        names: dict[str, Node] = {}
        introspected: list[tuple[JwtProvider, Node]] = []
        for item in items:
            provider = self._provider(source, item, several=len(items) > 1)
            if provider is None:
                continue
            if provider.name in names:
                source.error(item, f"two jwt providers are named {provider.name!r}")
            names[provider.name] = item
            providers.append(provider)
            if provider.introspection is not None:
                introspected.append((provider, item))
        for provider, item in introspected[1:]:
            source.error(
                item,
                f"jwt provider {provider.name!r}: only one provider may use introspection "
                f"({introspected[0][0].name!r} does): an opaque token names no issuer to choose by, "
                "and sending it to several endpoints would show one issuer's tokens to another",
            )
        self._provider_nodes = {name: (source, node) for name, node in names.items()}
        return providers

    def _check_bound_providers(self, cache: CacheConfig, providers: list[JwtProvider]) -> None:
        """A certificate-bound token's response cached under a key without the certificate would
        be replayed, without calling the authorizer, to anyone holding the token."""
        if not cache.cached or CERT_PEM_SOURCE in cache.context:
            return
        for provider in providers:
            if provider.certificate_bound:
                source, node = self._provider_nodes[provider.name]
                source.error(
                    node,
                    f"jwt provider {provider.name!r} is certificate_bound, but the client certificate is not part "
                    f"of the authorizer's cache key (cache.mode: {cache.mode}): API Gateway would replay a cached "
                    f"answer to a client presenting the token with another certificate, or none; {_CERT_ADVICE}",
                )

    def _provider(self, source: sy.Source, node: Node, several: bool) -> JwtProvider | None:
        entries = _mapping_checked(source, node, "a jwt provider", PROVIDER_KEYS)
        if not entries and not isinstance(node, MappingNode):
            return None
        raw: dict[str, Any] = {}
        for key, _, value in entries:
            if key in ("audience", "client_ids", "algorithms"):
                raw[key] = tuple(sy.string_list(source, value, f"jwt.{key}"))
            elif key == "certificate_bound":
                if isinstance(value, ScalarNode) and value.tag == sy.BOOL and value.value in ("true", "false"):
                    raw[key] = value.value == "true"
                else:
                    source.error(value, "jwt.certificate_bound must be true or false")
            elif key == "leeway":
                if isinstance(value, ScalarNode) and value.tag == sy.INT:
                    raw[key] = int(value.value, 10) if value.value.lstrip("-").isdigit() else None
                    if raw[key] is None:
                        source.error(value, "jwt.leeway must be a whole number of seconds")
                else:
                    source.error(value, "jwt.leeway must be a whole number of seconds")
            elif key == "introspection":
                raw[key] = self._introspection(source, value)
            else:
                raw[key] = sy.as_string(source, value, f"jwt.{key}")
        if "issuer" not in raw:
            source.error(node, "a jwt provider needs an issuer")
            return None
        if "introspection" in raw:
            for key, key_node, _ in entries:
                if key in _JWT_ONLY_KEYS:
                    source.error(
                        key_node,
                        f"jwt.{key} is not used by an introspection provider: its endpoint vouches for "
                        "the token, no signature is verified",
                    )
        if several and not raw.get("name"):
            source.error(node, "with several jwt providers, each needs a name")
        if raw.get("jwks_file"):
            raw["jwks_file"] = str((Path(source.file).parent / raw["jwks_file"]).resolve())
        provider = JwtProvider(
            name=raw.get("name") or "default",
            issuer=raw.get("issuer") or "",
            audience=raw.get("audience", ()),
            client_ids=raw.get("client_ids", ()),
            algorithms=raw.get("algorithms", ("RS256",)),
            typ=raw.get("typ"),
            token_use=raw.get("token_use"),
            leeway=raw.get("leeway") or 0,
            jwks_uri=raw.get("jwks_uri"),
            jwks_file=raw.get("jwks_file"),
            certificate_bound=raw.get("certificate_bound", False),
            introspection=raw.get("introspection"),
        )
        from ruleauth.jwt.verifier import provider_problems  # the verifier owns what a safe provider is

        for message in provider_problems(provider):
            source.error(node, f"jwt provider {provider.name!r}: {message}")
        return provider

    def _introspection(self, source: sy.Source, node: Node) -> Introspection | None:
        """`introspection: {url, client_id, client_secret_env, cache_ttl}`; provider_problems
        checks the values."""
        entries = _mapping_checked(source, node, "jwt.introspection", INTROSPECTION_KEYS)
        values: dict[str, Any] = {}
        pos = None
        for key, _, value in entries:
            if key == "cache_ttl":
                if isinstance(value, ScalarNode) and value.tag == sy.INT and value.value.isdigit():
                    values[key] = int(value.value, 10)
                else:
                    source.error(value, "jwt.introspection.cache_ttl must be a whole number of seconds")
            else:
                values[key] = sy.as_string(source, value, f"jwt.introspection.{key}")
                if key == "client_secret_env":
                    pos = source.pos(value)
        missing = [key for key in ("url", "client_id", "client_secret_env") if key not in values]
        if missing:
            source.error(node, f"jwt.introspection needs {', '.join(missing)}")
            return None
        if any(values.get(key) is None for key in ("url", "client_id", "client_secret_env")):
            return None  # each is already reported
        return Introspection(
            url=values["url"],
            client_id=values["client_id"],
            client_secret_env=values["client_secret_env"],
            cache_ttl=values.get("cache_ttl", Introspection.cache_ttl),
            pos=pos,
        )

    def _defines(self) -> dict[str, str]:
        defines: dict[str, str] = {}
        seen: dict[str, sy.Source] = {}
        for source, name_node, expr in self.merged.defines:
            name = name_node.value
            if not _NAME.match(name):
                source.error(name_node, f"define name {name!r} must be an identifier (letters, digits, _)")
                continue
            from ruleauth.cel.compiler import FUNCTIONS, VARIABLES

            if name in VARIABLES or name in FUNCTIONS:
                source.error(name_node, f"define name {name!r} hides a built-in name: choose another")
                continue
            if name in seen:
                source.error(name_node, f"define {name!r} is already defined in {seen[name].file}")
                continue
            text = self._expression_text(source, expr, f"define {name}")
            if text is not None:
                defines[name] = text
                seen[name] = source
                self._define_nodes[name] = (source, expr, text)
        return defines

    def _check_defines(self) -> None:
        """Each definition on its own, so a mistake in one is reported once, at its own line,
        and not again at every rule that uses it (see `_compile`)."""
        for name, (source, node, text) in self._define_nodes.items():
            try:
                self.compiler.define_tree(name, positions=False)  # the tree rules will share
            except ExpressionError as exc:
                if exc.define != name:
                    continue  # a mistake in another definition, reported at that one
                pos = _position_in(source, node, text, exc.where) if exc.where else source.pos(node)
                source.problems.append(Problem(f"define {name}: {exc}", pos, ERROR))
                self._broken_defines.add(name)

    def _expression_text(
        self, source: sy.Source, node: Node, what: str, rule: str | None = None, allow_bool: bool = False
    ) -> str | None:
        if allow_bool and isinstance(node, ScalarNode) and node.tag == sy.BOOL:
            if node.value in ("true", "false"):
                return str(node.value)
            source.error(node, f"{what}: write true or false, not {node.value!r}", rule)
            return None
        text = sy.as_string(source, node, what, rule, cel=True)
        if text is None:
            return None
        if isinstance(node, ScalarNode) and sy.trailing_comment(source, node):
            source.error(
                node,
                f"{what}: this unquoted expression is followed by a # comment on the same line; "
                "YAML cut the expression there. Quote the expression or use a block scalar (|)",
                rule,
            )
            return None
        if not text.strip():
            source.error(node, f"{what} is empty", rule)
            return None
        return text

    def _compile(
        self, source: sy.Source, node: Node, what: str, rule: str | None = None, allow_bool: bool = False
    ) -> Compiled | None:
        text = self._expression_text(source, node, what, rule, allow_bool)
        if text is None:
            return None
        try:
            return self.compiler.compile(text)
        except ExpressionError as exc:
            if exc.define in self._broken_defines:
                return None  # reported once, at the definition
            if exc.define is not None:  # `where` is inside the definition's text, not this one
                source.problems.append(
                    Problem(f"{what}: {exc} (in define {exc.define!r})", source.pos(node), ERROR, rule)
                )
                return None
            pos = _position_in(source, node, text, exc.where) if exc.where else source.pos(node)
            source.problems.append(Problem(f"{what}: {exc}", pos, ERROR, rule))
            return None

    def _top_expression(self, key: str) -> Compiled | None:
        entry = self._single(key)
        if entry is None:
            return None
        source, _, node = entry
        compiled = self._compile(source, node, key)
        if compiled is not None and any(r.input == "token" for r in compiled.reads):
            source.error(node, f"{key} may not read `token`: the raw credential never leaves the authorizer")
        return compiled

    def _context(self) -> dict[str, Compiled]:
        entry = self._single("context")
        if entry is None:
            return {}
        source, _, node = entry
        context: dict[str, Compiled] = {}
        for key, key_node, value in sy.as_mapping(source, node, "context") or []:
            if not _CONTEXT_KEY.match(key):
                source.error(key_node, f"context key {key!r} must match ^[A-Za-z_][A-Za-z0-9_]{{0,63}}$")
                continue
            if key in RESERVED_CONTEXT_KEYS:
                source.error(key_node, f"context key {key!r} is reserved by API Gateway: choose another name")
                continue
            compiled = self._compile(source, value, f"context.{key}")
            if compiled is None:
                continue
            if any(r.input == "token" for r in compiled.reads):
                source.error(
                    value, f"context.{key} may not read `token`: the raw credential never leaves the authorizer"
                )
                continue
            context[key] = compiled
        return context

    # -- rules -------------------------------------------------------------

    def _rules(self, default_auth: str) -> list[Rule]:
        rules: list[Rule] = []
        names: dict[str, sy.Source] = {}
        shapes: dict[tuple[Shape, bool], tuple[str, sy.Source, Route]] = {}
        for source, node in self.merged.rules:
            rule = self._rule(source, node, default_auth)
            if rule is None:
                continue
            if rule.name in names:
                other = names[rule.name]
                where = "this file" if other is source else other.file
                source.error(node, f"rule name {rule.name!r} is already used in {where}", rule.name)
                continue
            names[rule.name] = source
            for route in rule.routes:
                key = (route.shape, rule.shadow)
                if key in shapes:
                    other_name, other_source, other_route = shapes[key]
                    source.error(
                        node,
                        f"route {route} is the same as {other_route} of rule {other_name!r} "
                        f"in {other_source.file}: the winner would be ambiguous",
                        rule.name,
                    )
                else:
                    shapes[key] = (rule.name, source, route)
            rules.append(rule)
        if not rules and not any(s.problems for s in self.sources):
            self.first.warning(None, "no rules: every request is denied")
        self._warn_shadowed(rules, shapes)
        return rules

    def _warn_shadowed(self, rules: list[Rule], shapes: dict[tuple[Shape, bool], tuple[str, sy.Source, Route]]) -> None:
        """An ANY route whose every method has a route of its own never decides anything."""
        from ruleauth.model import METHODS

        for rule in rules:
            for route in rule.routes:
                if route.method != "ANY" or rule.shadow:
                    continue
                explicit = [shapes.get(((m, *route.shape[1:]), False)) for m in METHODS]
                if all(explicit):
                    self._source_of(rule).warning(
                        _pos_node(rule),
                        f"route {route} is shadowed: every method has a more specific route "
                        f"({', '.join(sorted({e[0] for e in explicit if e}))}), so this rule never decides",
                        rule.name,
                    )

    def _rule(self, source: sy.Source, node: Node, default_auth: str) -> Rule | None:
        entries = sy.as_mapping(source, node, "a rule")
        if entries is None:
            return None
        values = {k: (kn, v) for k, kn, v in entries}
        name = None
        if "name" in values:
            name = sy.as_string(source, values["name"][1], "rule name")
        if not name:
            source.error(node, "every rule needs a non-empty `name`")
            name = None
        sy.check_keys(source, entries, RULE_KEYS, "this rule" if name else "a rule", name)
        if "route" not in values:
            source.error(node, "rule needs a `route`, e.g. route: GET /orders/{id}", name)
        if "allow" not in values:
            source.error(node, "rule needs an `allow` expression (true to allow everyone)", name)
        if name is None or "route" not in values or "allow" not in values:
            return None
        routes = self._routes(source, values["route"][1], name)
        auth, providers = self._auth(source, values, default_auth, name)
        allow = self._compile(source, values["allow"][1], "allow", name, allow_bool=True)
        mode = MODE_ENFORCE
        if "mode" in values:
            text = sy.as_string(source, values["mode"][1], "mode", name)
            if text not in (MODE_ENFORCE, MODE_SHADOW):
                source.error(values["mode"][1], "mode must be enforce or shadow", name)
            else:
                mode = text
        description = ""
        if "description" in values:
            description = sy.as_string(source, values["description"][1], "description", name) or ""
        if allow is None or routes is None or auth is None:
            return None
        if any(r.input == "claims" or r.input == "auth.provider" for r in allow.reads) and auth in (
            AUTH_TOKEN,
            AUTH_NONE,
        ):
            source.warning(values["allow"][1], f"reads claims but auth is {auth}: claims are always empty here", name)
        if auth == AUTH_NONE and any(r.input == "token" for r in allow.reads):
            source.error(values["allow"][1], "auth: none never reads the credential, so `token` is always empty", name)
        if auth in (AUTH_OPTIONAL, AUTH_NONE):
            source.warning(
                values["route"][1],
                f"auth: {auth}: API Gateway answers 401 itself, without calling the authorizer, "
                "when a configured identity source is missing",
                name,
            )
        return Rule(
            name=name,
            routes=routes,
            auth=auth,
            allow=allow,
            pos=source.pos(node),
            providers=providers,
            mode=mode,
            description=description,
        )

    def _routes(self, source: sy.Source, node: Node, rule: str) -> tuple[Route, ...] | None:
        texts: list[tuple[str, Node]] = []
        if isinstance(node, ScalarNode):
            text = sy.as_string(source, node, "route", rule)
            if text is None:
                return None
            texts.append((text, node))
        else:
            if isinstance(node, MappingNode):
                source.error(
                    node,
                    "route must be a string like 'GET /orders/{id}' "
                    "(an unquoted {id} is a YAML mapping: quote the route)",
                    rule,
                )
                return None
            items = sy.as_list(source, node, "route", rule)
            if items is None:
                return None
            for item in items:
                if isinstance(item, MappingNode):
                    source.error(
                        item,
                        "route must be a string like 'GET /orders/{id}' "
                        "(an unquoted {id} is a YAML mapping: quote the route)",
                        rule,
                    )
                    continue
                text = sy.as_string(source, item, "route", rule)
                if text is not None:
                    texts.append((text, item))
            if not items:
                source.error(node, "route list is empty", rule)
                return None
            if len(texts) != len(items):  # each bad item is already reported
                return None
        routes = []
        for text, item in texts:
            try:
                routes.append(parse_route(text))
            except RouteSyntaxError as exc:
                source.error(item, str(exc), rule)
        return tuple(routes) if len(routes) == len(texts) else None

    def _auth(
        self, source: sy.Source, values: Mapping[str, tuple[Node, Node]], default: str, rule: str
    ) -> tuple[str | None, tuple[str, ...] | None]:
        if "auth" in values and "token" in values:
            source.error(values["token"][0], "use either auth: or token: optional, not both", rule)
            return None, None
        if "token" in values:
            node = values["token"][1]
            if sy.as_string(source, node, "token", rule) != "optional":
                source.error(node, "in a rule, `token:` can only be `optional` (same as auth: optional)", rule)
                return None, None
            return AUTH_OPTIONAL, None
        if "auth" not in values:
            return default, None
        node = values["auth"][1]
        if isinstance(node, MappingNode):
            entries = _mapping_checked(source, node, "auth", ("jwt",), rule)
            names = tuple(sy.string_list(source, entries[0][2], "auth.jwt", rule)) if entries else ()
            if not names:
                source.error(node, "auth: {jwt: [...]} needs at least one provider name", rule)
                return None, None
            for provider in names:
                if provider not in self.provider_names:
                    source.error(node, f"auth names jwt provider {provider!r}, which is not configured", rule)
                    return None, None
            return AUTH_JWT, names
        text = sy.as_string(source, node, "auth", rule)
        if text is None:
            return None, None
        if text not in AUTH_MODES:
            source.error(node, f"auth must be one of {', '.join(AUTH_MODES)}, not {text!r}", rule)
            return None, None
        if text == AUTH_JWT and not self.provider_names:
            source.error(node, "auth: jwt needs a `jwt:` provider; this rules file configures none", rule)
            return None, None
        return text, None

    # -- whole-set checks -------------------------------------------------

    def _check_cache_safety(
        self,
        cache: CacheConfig,
        rules: list[Rule],
        principal: Compiled | None,
        context: dict[str, Compiled],
        usage_key: Compiled | None,
    ) -> None:
        if not cache.cached:
            return
        per_caller = (
            [("principal", principal)]
            + [(f"context.{k}", v) for k, v in context.items()]
            + [("usage_identifier_key", usage_key)]
        )
        for what, compiled in per_caller:
            if compiled is None:
                continue
            entry = self._single(what.split(".")[0])
            node = entry[2] if entry else None
            source = entry[0] if entry else self.first
            if what.startswith("context.") and isinstance(node, MappingNode):
                # Point at this key's own expression, not at the whole `context:` mapping.
                node = next((v for k, v in node.value if k.value == what[len("context.") :]), node)
            # One principal and context is cached per caller, across routes: only route-level
            # values in `route` mode, nothing about the route in `identity` mode.
            bad = _unsafe_reads(compiled.reads, cache, route_level=cache.mode == CACHE_ROUTE)
            if bad:
                source.error(
                    node,
                    f"{what} reads {', '.join(sorted(map(str, bad)))}, which is not part of "
                    f"the authorizer's cache key (cache.mode: {cache.mode}); {_cache_advice(cache, bad)}",
                )
            if compiled.uses_now:
                source.warning(
                    node, f"{what} reads `now` but cache.mode is {cache.mode}: the value is replayed for the cache TTL"
                )
        for rule in rules:
            source = self._source_of(rule)
            bad = _unsafe_reads(rule.allow.reads, cache, route_level=True)
            if bad:
                source.error(
                    _pos_node(rule),
                    f"allow reads {', '.join(sorted(map(str, bad)))}, which is not part of "
                    f"the authorizer's cache key (cache.mode: {cache.mode}); {_cache_advice(cache, bad)}",
                    rule.name,
                )
            if rule.allow.uses_now:
                source.warning(
                    _pos_node(rule),
                    f"allow reads `now` but cache.mode is {cache.mode}: the decision is replayed for the cache TTL",
                    rule.name,
                )

    def _check_simple_response(self, cache: CacheConfig, rules: list[Rule], context: dict[str, Compiled]) -> None:
        """A cached simple yes/no has no resource to limit it: API Gateway replays it for every
        request with the same cache key, so it must be the rules' answer for all of them."""
        response, mode = self.settings.response, self.settings.cache_mode
        if response.value != RESPONSE_SIMPLE or mode.value == CACHE_DISABLED:
            return
        enforced = [r for r in rules if not r.shadow]
        if mode.value == CACHE_ROUTE:
            why = _method_blind_reads(enforced, context)
        else:
            why = _identity_difference(enforced)
        if why:
            self._simple_error(why)

    def _simple_error(self, why: str) -> None:
        """A simple response the cache would replay where the rules answer otherwise."""
        response, mode = self.settings.response, self.settings.cache_mode
        at = next((s for s in (response, mode) if s.pos is not None), None)
        source = next(
            (s for s in self.sources if at is not None and at.pos is not None and s.file == at.pos.file), self.first
        )
        entry = self._single("response") if at is response else None
        node = entry[2] if entry else (self._cache_mode_node() if at is mode else None)
        source.error(
            node,
            f"{response} with {mode}: {why}: use iam responses"
            + (
                ", or cache.mode route (add $context.routeKey to the identity sources)"
                if mode.value != CACHE_ROUTE
                else ""
            )
            + ", or cache.mode disabled (TTL 0)",
        )

    def _cache_mode_node(self) -> Node | None:
        entry = self._single("cache")
        if entry is None or not isinstance(entry[2], MappingNode):
            return None
        return next((v for k, v in entry[2].value if isinstance(k, ScalarNode) and k.value == "mode"), None)

    def _source_of(self, rule: Rule) -> sy.Source:
        return next(s for s in self.sources if s.file == rule.pos.file)

    # -- tests ---------------------------------------------------------------

    def _tests(self) -> list[TestCase]:
        cases: list[TestCase] = []
        names: set[str] = set()
        for source, node in self.merged.tests:
            case = self._test(source, node)
            if case is None:
                continue
            if case.name in names:
                source.error(node, f"two tests are named {case.name!r}")
            names.add(case.name)
            cases.append(case)
        return cases

    def _test(self, source: sy.Source, node: Node) -> TestCase | None:
        entries = _mapping_checked(source, node, "a test", TEST_KEYS)
        values = {k: v for k, _, v in entries}
        name = sy.as_string(source, values["name"], "test name") if "name" in values else None
        if not name:
            source.error(node, "every test needs a `name`")
            return None
        if "expect" not in values:
            source.error(node, f"test {name!r} needs `expect:` (allow, deny or unauthorized)")
            return None
        expect = self._expectation(source, values["expect"], name)
        request: dict[str, Any] = {}
        if "request" in values:
            for key, _, value in _mapping_checked(source, values["request"], "request", REQUEST_KEYS):
                if key in ("method", "path", "source_ip", "token"):
                    request[key] = sy.as_string(source, value, f"request.{key}")
                else:
                    request[key] = {
                        k: _request_text(source, v, f"request.{key}.{k}")
                        for k, _, v in sy.as_mapping(source, value, f"request.{key}") or []
                    }
        claims = None
        if "claims" in values:
            if not isinstance(values["claims"], MappingNode):
                source.error(values["claims"], "claims must be a mapping")
            else:
                claims = _plain_data(values["claims"])
        now = sy.as_string(source, values["now"], "now") if "now" in values else None
        if now is not None and _parse_time(now) is None:
            source.error(values["now"], f"now must be an RFC 3339 time like 2026-01-01T00:00:00Z, not {now!r}")
        event_type = None
        if "event_type" in values:
            event_type = sy.as_string(source, values["event_type"], "event_type")
            if event_type not in EVENT_TYPES:
                source.error(values["event_type"], f"event_type must be one of {', '.join(EVENT_TYPES)}")
        event = None
        if "event" in values:
            relative = sy.as_string(source, values["event"], "event")
            if relative:
                path = (Path(source.file).parent / relative).resolve()
                if not path.is_file():
                    source.error(values["event"], f"event file {relative!r} not found (relative to the rules file)")
                event = str(path)
        if expect is None:
            return None
        return TestCase(
            name=name,
            pos=source.pos(node),
            expect=expect,
            request=request,
            claims=claims,
            now=now,
            event_type=event_type,
            event=event,
        )

    def _expectation(self, source: sy.Source, node: Node, name: str) -> Expectation | None:
        if isinstance(node, ScalarNode):
            text = sy.as_string(source, node, "expect")
            if text not in DECISIONS:
                source.error(node, f"expect must be one of {', '.join(DECISIONS)} (test {name!r})")
                return None
            return Expectation(decision=text)
        entries = _mapping_checked(source, node, "expect", EXPECT_KEYS)
        values = {k: v for k, _, v in entries}
        decision = sy.as_string(source, values["decision"], "expect.decision") if "decision" in values else None
        if decision not in DECISIONS:
            source.error(node, f"expect.decision must be one of {', '.join(DECISIONS)} (test {name!r})")
            return None
        status = None
        if "status" in values:
            status_node = values["status"]
            if isinstance(status_node, ScalarNode) and status_node.tag == sy.INT:
                status = int(status_node.value)
            else:
                source.error(status_node, "expect.status must be a number like 403")
        context = None
        if "context" in values:
            if isinstance(values["context"], MappingNode):
                context = _plain_data(values["context"])
            else:
                source.error(values["context"], f"expect.context must be a mapping (test {name!r})")
        return Expectation(
            decision=decision,
            rule=sy.as_string(source, values["rule"], "expect.rule") if "rule" in values else None,
            reason=sy.as_string(source, values["reason"], "expect.reason") if "reason" in values else None,
            status=status,
            principal=sy.as_string(source, values["principal"], "expect.principal") if "principal" in values else None,
            context=context,
        )


def _mapping_checked(
    source: sy.Source, node: Node, what: str, allowed: tuple[str, ...], rule: str | None = None
) -> list[tuple[str, ScalarNode, Node]]:
    entries = sy.as_mapping(source, node, what, rule) or []
    sy.check_keys(source, entries, allowed, what, rule)
    return [e for e in entries if e[0] in allowed]


def _unsafe_reads(reads: frozenset[Read], cache: CacheConfig, route_level: bool) -> set[Read]:
    """Reads whose value is not fixed by the cache key (identity sources, plus the route when allowed)."""
    headers = {h.lower() for h in cache.headers}
    bad = set()
    for read in reads:
        if read.input in _ALWAYS_CACHE_SAFE:
            continue
        if route_level and read.input in _ROUTE_LEVEL:
            continue
        if read.input == "request.headers" and read.key is not None and read.key.lower() in headers:
            continue
        if read.input == "request.query" and read.key is not None and read.key in cache.query:
            continue
        if read.input == "request.stage_variables" and read.key is not None and read.key in cache.stage_variables:
            continue
        if read.input == "request.source_ip" and "identity.sourceIp" in cache.context:
            continue
        if read.input == "request.client_cert" and _cert_read_in_key(read.key, cache.context):
            continue
        bad.add(read)
    return bad


def _position_in(source: sy.Source, node: Node, text: str, where: tuple[int, int]) -> SourcePos:
    """The file position of (line, column) inside an expression, where the scalar's text
    appears verbatim in the file (plain or quoted one-line scalars, literal blocks);
    otherwise the scalar's own position, which is never wrong, only less precise."""
    fallback = source.pos(node)
    line, column = where
    lines = text.split("\n")
    if not isinstance(node, ScalarNode) or not 0 < line <= len(lines):
        return fallback
    wanted = lines[line - 1]
    start = node.start_mark
    if node.style in (None, "'", '"') and len(lines) == 1:
        first = start.column + (1 if node.style else 0)
        if source.line(start.line + 1)[first : first + len(wanted)] == wanted:
            return SourcePos(source.file, start.line + 1, first + column)
    elif node.style == "|" and wanted:
        # Content starts on the line after the `|` indicator, one file line per text line.
        candidate = source.line(start.line + 1 + line)
        at = candidate.find(wanted)
        if at >= 0 and not candidate[:at].strip():
            return SourcePos(source.file, start.line + 1 + line, at + column)
    return fallback


def _example_path(pattern: str) -> str:
    """'GET/orders/*/*' → 'GET /orders/a/b': a concrete request a pattern covers."""
    method, _, path = pattern.partition("/")
    names = iter("abcdefghijklmnopqrstuvwxyz")
    return f"{method} /" + re.sub(r"\*", lambda _: next(names, "z"), path)


# The certificate fields an identity source fixes, besides the PEM (which fixes them all).
_CERT_FIELD_SOURCES = {
    "subject_dn": "identity.clientCert.subjectDN",
    "issuer_dn": "identity.clientCert.issuerDN",
    "serial_number": "identity.clientCert.serialNumber",
    "not_before": "identity.clientCert.validity.notBefore",
    "not_after": "identity.clientCert.validity.notAfter",
}
assert set(_CERT_FIELD_SOURCES.values()) | {CERT_PEM_SOURCE} == set(CERT_SOURCES)
_CERT_ADVICE = (
    f"add {CERT_PEM_SOURCE} to cache.sources.context (and to the authorizer's identity sources: "
    f"SAM Identity.Context, HTTP API $context.{CERT_PEM_SOURCE}, REST context.{CERT_PEM_SOURCE}), "
    "or set cache.mode: disabled (TTL 0)"
)


def _cert_read_in_key(key: str | None, context: tuple[str, ...]) -> bool:
    if CERT_PEM_SOURCE in context:
        return True
    return key is not None and _CERT_FIELD_SOURCES.get(key) in context


def _cache_advice(cache: CacheConfig, bad: set[Read] | None = None) -> str:
    if bad and any(read.input == "request.client_cert" for read in bad):
        return "the client certificate is in API Gateway's cache key only where an identity source names it: " + (
            _CERT_ADVICE
        )
    return (
        "add it to cache.sources (and to the authorizer's identity sources in API Gateway), "
        "or set cache.mode: disabled (TTL 0)"
    )


def _identity_difference(rules: list[Rule]) -> str | None:
    """Why one answer per caller cannot serve every route (cache.mode identity), or None:
    rules that decide differently, or a request that no rule reaches (no_route, a deny)."""
    sources = {(r.allow.source.strip(), r.auth, r.providers) for r in rules}
    route_reads = any(read.input in ("request.method", "request.route") for r in rules for read in r.allow.reads)
    if len(sources) > 1 or route_reads:
        return (
            "API Gateway caches one yes/no per caller and replays it on every route, "
            "but these rules decide differently per route"
        )
    gap = _request_without_rule(rules)
    if gap is None:
        return None
    return (
        f"API Gateway caches one yes/no per caller and replays it on every route, but {gap} reaches no "
        "rule and is denied (no_route), so a yes cached on a rule's route would allow it; no rule table "
        "reaches every request path (`ANY /` and `ANY /{proxy+}` do not reach a path with an empty "
        "segment such as /x/)"
    )


def _method_blind_reads(rules: list[Rule], context: dict[str, Compiled]) -> str | None:
    """Under cache.mode route an HTTP API keys the cache on the route key, which for an `ANY`
    route holds no method: what decides or is answered there (a simple response holds the
    context) must not read request.method."""
    if not any(route.method == ANY for r in rules for route in r.routes):
        return None
    reading = [(f"rule {r.name!r}'s allow", r.allow) for r in rules if any(route.method == ANY for route in r.routes)]
    reading += [(f"context.{key}", c) for key, c in context.items()]
    for what, compiled in reading:
        if any(read.input == "request.method" for read in compiled.reads):
            return (
                f"{what} reads request.method, but an HTTP API's route key for an ANY route (the "
                "cache key) holds no method, so one method's cached yes/no is replayed for the others"
            )
    return None


# Request paths of every shape a route can be asked for: the root, one and two segments,
# a trailing slash and an empty segment (HTTP API's $default route passes any path on).
_WITNESS_PATHS = ("/", "/x", "/x/y", "/x/", "//x")


def _request_without_rule(rules: list[Rule]) -> str | None:
    """A request (`METHOD /path`) that no rule's route reaches, or None when every one does."""
    router = Router([(route, rule) for rule in rules for route in rule.routes if not route.websocket])
    for method in METHODS:
        for path in _WITNESS_PATHS:
            if router.find(method, path) is None:
                return f"{method} {path}"
    return None


def _pos_node(rule: Rule) -> Node:
    """A stand-in node carrying a rule's position, for problems about the whole rule."""
    mark = yaml.Mark("", 0, rule.pos.line - 1, rule.pos.col - 1, None, 0)  # no buffer: no snippet
    return ScalarNode(sy.STR, "", mark, mark)


def _request_text(source: sy.Source, node: Node, what: str) -> str:
    """A header, query, cookie or stage-variable value of a test request: a string, refused
    like every other string the rules mean (`X-Debug: on` is YAML 1.1's boolean); an empty
    value (`X-Empty:`) is the empty string."""
    if not isinstance(node, ScalarNode):
        source.error(node, f"{what} must be a single value")
        return ""
    if node.tag == sy.NULL and node.value == "":
        return ""
    return sy.as_string(source, node, what) or ""


def _plain_data(node: Node) -> Any:
    """Test data (claims) as plain Python; aliases were refused earlier, so this is bounded."""
    constructor = yaml.constructor.SafeConstructor()
    return constructor.construct_object(node, deep=True)


def _parse_time(text: str) -> datetime.datetime | None:
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else None
