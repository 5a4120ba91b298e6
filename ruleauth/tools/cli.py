"""The `ruleauth` command line: validate, dry-run, test, serve, schema, snapshot, diff.

Exit status, every command: 0 success; 1 the checked thing failed (validate
problems, test failures, --expect mismatch, diff --exit-code changes,
--min-coverage not met); 2 usage or input error (bad flag,
unreadable path, malformed event); 3 the rules failed to load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ruleauth import model
from ruleauth.reasons import Outcome

OK, FAILED, USAGE, LOAD_FAILED = 0, 1, 2, 3
EVENT_TYPES = model.EVENT_TYPES
DECISIONS = tuple(Outcome)


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


# -- output helpers -------------------------------------------------------------------


class Style:
    """ANSI colour, only on a terminal and only without NO_COLOR."""

    def __init__(self, stream: TextIO):
        isatty = getattr(stream, "isatty", lambda: False)
        self.enabled = bool(isatty()) and "NO_COLOR" not in os.environ

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def red(self, text: str) -> str:
        return self._wrap("1;31", text)

    def yellow(self, text: str) -> str:
        return self._wrap("1;33", text)

    def green(self, text: str) -> str:
        return self._wrap("1;32", text)

    def outcome(self, outcome: str) -> str:
        colour: dict[str, Callable[[str], str]] = {
            Outcome.ALLOW: self.green,
            Outcome.DENY: self.red,
            Outcome.UNAUTHORIZED: self.yellow,
        }
        return colour.get(outcome, str)(outcome)


class _Lines:
    """Source lines of rules files, for the line-and-caret display."""

    def __init__(self, names: Mapping[str, str] | None = None) -> None:
        self._files: dict[str, list[str]] = {}
        self._real = {shown: real for real, shown in (names or {}).items()}

    def line(self, file: str, number: int) -> str | None:
        if file in self._real:  # shown by another name (a copy of a pipe or a git revision)
            file = self._real[file]
        if file not in self._files:
            try:
                self._files[file] = Path(file).read_text(encoding="utf-8-sig").splitlines()
            except (OSError, UnicodeDecodeError):
                self._files[file] = []
        lines = self._files[file]
        return lines[number - 1] if 0 < number <= len(lines) else None


def format_problem(problem: Any, style: Style, lines: _Lines, severity: str | None = None) -> list[str]:
    """`file:line:col: error: message`, then the line and a caret under the column."""
    severity = severity or problem.severity
    where = f"{problem.pos}: " if problem.pos else ""
    label = style.red("error:") if severity == "error" else style.yellow("warning:")
    named = f"rule {problem.rule!r}: " if problem.rule else ""
    out = [f"{style.bold(where)}{label} {named}{problem.message}"]
    if problem.pos is not None:
        text = lines.line(problem.pos.file, problem.pos.line)
        if text is not None and text.strip():
            prefix = "".join(c if c == "\t" else " " for c in text[: max(problem.pos.col - 1, 0)])
            out.append(f"    {text}")
            out.append(f"    {prefix}{style.green('^')}")
    return out


def problem_json(problem: Any, severity: str | None = None) -> dict[str, Any]:
    pos = problem.pos
    return {
        "file": pos.file if pos else None,
        "line": pos.line if pos else None,
        "col": pos.col if pos else None,
        "severity": severity or problem.severity,
        "message": problem.message,
        "rule": problem.rule,
    }


def print_json(value: Any, out: TextIO) -> None:
    out.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


# -- argument parsing ---------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors that say what to do next, and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\nRun `{self.prog} --help` for the options.\n")
        raise SystemExit(USAGE)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("ruleauth")
    except Exception:  # not installed as a distribution (e.g. run from a source tree)
        return "0+unknown"


def build_parser() -> Parser:
    parser = Parser(
        prog="ruleauth",
        description="ruleauth: an API Gateway Lambda authorizer driven by YAML rules and CEL. "
        "Check, try and test rules before `sam deploy`.",
        epilog="Exit status: 0 success; 1 the check failed; 2 usage or input error; 3 the rules failed to load. "
        "RULES is a rules file or directory; it defaults to $RULEAUTH_RULES, then ./rules.",
    )
    parser.add_argument("--version", action="version", version=f"ruleauth {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    parser.commands = commands.choices  # type: ignore[attr-defined]

    def rules_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "rules", nargs="?", metavar="RULES", help="rules file or directory (default: $RULEAUTH_RULES, then ./rules)"
        )

    def settings_args(p: argparse.ArgumentParser) -> None:
        """A deployment's settings, to preview: each overrides its RULEAUTH_* variable and the file."""
        group = p.add_argument_group(
            "settings (as a deployment's RULEAUTH_* variables give them; the environment's are read too)"
        )
        group.add_argument(
            "--response",
            choices=("iam", "simple"),
            help="the response type, as RULEAUTH_RESPONSE (overrides the file's response:)",
        )
        group.add_argument(
            "--engine",
            choices=("cel-python", "cel-expr-python"),
            help="the CEL engine, as RULEAUTH_ENGINE (overrides the file's engine:)",
        )
        group.add_argument(
            "--cache-mode",
            choices=("identity", "route", "disabled"),
            help="how API Gateway caches responses, as RULEAUTH_CACHE_MODE (overrides cache.mode)",
        )

    validate = commands.add_parser(
        "validate",
        help="load the rules exactly as the Lambda's cold start does and report problems",
        description="Load and check the rules as the Lambda's cold start does. Problems print as "
        "`file:line:col: error|warning: message` with the line and a caret. "
        "Exit 1 on errors (or on warnings with --strict).",
    )
    rules_arg(validate)
    validate.add_argument(
        "--template",
        metavar="FILE",
        help="compare with a SAM, CloudFormation or OpenAPI file: uncovered API routes, "
        "rules no route reaches, identity sources and TTL against cache:",
    )
    validate.add_argument("--strict", action="store_true", help="fail (exit 1) on warnings too")
    validate.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    settings_args(validate)

    dry = commands.add_parser(
        "dry-run",
        help="decide one request on the Lambda's own code path and explain why",
        description="Decide one request: from flags (--method and --path) or from an API Gateway event "
        "file (--event FILE, - for standard input). Shows the decision, the status and body "
        "API Gateway would return, the deciding rule, why, principal, context and the response.",
    )
    rules_arg(dry)
    request = dry.add_argument_group("the request (or use --event)")
    request.add_argument("--method", metavar="M", help="HTTP method, e.g. GET")
    request.add_argument("--path", metavar="P", help="request path, e.g. /orders/7 (or $connect)")
    request.add_argument(
        "-H", "--header", action="append", default=[], metavar="'Name: value'", help="a request header; repeat for more"
    )
    request.add_argument("--query", action="append", default=[], metavar="k=v", help="a query parameter; repeatable")
    request.add_argument("--cookie", action="append", default=[], metavar="k=v", help="a cookie; repeatable")
    request.add_argument(
        "--stage-variable", action="append", default=[], metavar="k=v", help="a stage variable; repeatable"
    )
    request.add_argument(
        "--token", metavar="T", help="the credential, placed where the rules' token: says (scheme added); never echoed"
    )
    request.add_argument("--source-ip", metavar="IP", help="caller IP (default 192.0.2.10)")
    request.add_argument(
        "--event-type",
        choices=EVENT_TYPES,
        metavar="TYPE",
        help=f"event shape: {', '.join(EVENT_TYPES)} (default rest-request)",
    )
    dry.add_argument("--event", metavar="FILE", help="an authorizer event JSON file; - reads standard input")
    dry.add_argument(
        "--client-cert",
        metavar="FILE.pem",
        help="a PEM client certificate the request presents by mutual TLS: the event gets the clientCert "
        "fields API Gateway sends (REST and HTTP API events; also added to an --event file)",
    )
    dry.add_argument(
        "--claims",
        metavar="JSON",
        help="JWT claims as a JSON object (or @file.json), used instead of verifying a token: "
        "signature, audience and expiry checks are skipped; an iss in them picks the provider "
        "as a real token's does",
    )
    dry.add_argument("--now", metavar="RFC3339", help="the decision time, e.g. 2026-01-01T00:00:00Z")
    dry.add_argument("--expect", choices=DECISIONS, help="exit 1 unless the decision is this")
    dry.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    settings_args(dry)

    test = commands.add_parser(
        "test",
        help="run the rules file's tests: cases",
        description="Run every `tests:` case through the Lambda's code path; one line per failure with the "
        "explanation; ends with `N passed, N failed`. Exit 1 when any case fails.",
    )
    rules_arg(test)
    test.add_argument("-v", "--verbose", action="store_true", help="also list the cases that pass")
    test.add_argument(
        "--coverage",
        action="store_true",
        help="report what the cases reach: each rule's routes, its outcomes (allow, deny; errors shown) "
        "and which operands of its && and || decided; list what no case reaches",
    )
    test.add_argument(
        "--min-coverage",
        type=float,
        metavar="N",
        help="exit 1 when the coverage (covered items / all items) is under N percent; implies --coverage",
    )
    settings_args(test)

    serve = commands.add_parser(
        "serve",
        help="a local stand-in for API Gateway in front of the authorizer",
        description="Serve HTTP on HOST:PORT, authorize every request as API Gateway would (identity sources, "
        "caching, 401/403/500 bodies), then proxy to --upstream with the context as x-ruleauth-* "
        "headers, or echo principal and context as JSON. Ctrl-C stops it.",
    )
    rules_arg(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=3000, help="port (default 3000; 0 picks a free one)")
    serve.add_argument(
        "--upstream", metavar="URL", help="backend to proxy allowed requests to, e.g. http://127.0.0.1:8080"
    )
    serve.add_argument(
        "--cache-ttl",
        type=int,
        metavar="S",
        help="authorizer cache TTL in seconds, 0 disables (default 300; 0 with cache.mode: disabled)",
    )
    serve.add_argument(
        "--event-type",
        choices=EVENT_TYPES,
        default="rest-request",
        metavar="TYPE",
        help=f"event shape sent to the authorizer: {', '.join(EVENT_TYPES)} (default rest-request)",
    )
    serve.add_argument(
        "--client-cert",
        metavar="FILE.pem",
        help="a PEM client certificate every request presents, as if by mutual TLS on a custom domain",
    )
    settings_args(serve)

    commands.add_parser(
        "schema",
        help="print the JSON Schema of the rules file",
        description="Print the JSON Schema (draft 2020-12) of the rules file, for editors: save it "
        "(`ruleauth schema > .vscode/ruleauth.schema.json`), then put "
        "`# yaml-language-server: $schema=<path to the saved file>` on a rules file's first line, "
        "or map it in VS Code's `yaml.schemas` setting.",
    )

    snapshot = commands.add_parser(
        "snapshot",
        help="load the rules and save them for fast cold starts (run by `sam build`)",
        description="Load and check the rules as `validate` does, then save the loaded rules beside them "
        "(RULES/.ruleauth-snapshot, or .NAME.ruleauth-snapshot beside a file), as JSON data that any "
        "Python 3.11+ on any platform reads alike. A cold start "
        "whose rules files, ruleauth code, CEL grammar and RULEAUTH_RESPONSE, "
        "RULEAUTH_CACHE_MODE, RULEAUTH_ENGINE and RULEAUTH_CEL_INTERPRETER settings match "
        "reads it instead of parsing and checking again; anything else loads the rules in "
        "full. Exit 3 if the rules fail to load.",
    )
    rules_arg(snapshot)

    diff = commands.add_parser(
        "diff",
        help="what a rules change grants and revokes, per route, method and caller class",
        description="Decide the same requests with the OLD and the NEW rules on the Lambda's code path and "
        "list every change: + grant, - revoke, ~ principal or context (and ~ refusal, 403 ↔ 401). "
        "Requests: every route × method of both versions, asked by every caller class the rules "
        "tell apart (each variable they read at each value they compare it with, another value "
        "and missing; no credential, a non-JWT credential, each trusted issuer, an untrusted one), "
        "and the `tests:` requests of both. OLD and NEW are rules files or directories; "
        "`<(git show main:rules/api.yaml)` works. With --git REV, OLD is RULES at that revision.",
    )
    diff.add_argument("paths", nargs="*", metavar="OLD NEW", help="the rules before and after")
    diff.add_argument(
        "--git", metavar="REV", help="compare RULES (one path, default as for the other commands) at REV with now"
    )
    diff.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    diff.add_argument(
        "--exit-code", action="store_true", help="exit 1 when any access changes (grant, revoke, principal, context)"
    )
    diff.add_argument(
        "--max-classes",
        type=int,
        metavar="N",
        help="caller classes per route and method before sampling (default 4096)",
    )
    settings_args(diff)
    return parser


# -- shared steps --------------------------------------------------------------------------


def rules_path(arg: str | None) -> Path:
    text = arg or os.environ.get("RULEAUTH_RULES") or "rules"
    path = Path(text)
    if not path.exists():
        origin = "RULES" if arg else ("$RULEAUTH_RULES" if os.environ.get("RULEAUTH_RULES") else "the default ./rules")
        raise UsageError(
            f"rules path {text} ({origin}) does not exist: pass a rules file or directory, or set RULEAUTH_RULES"
        )
    if path.is_file() and not os.access(path, os.R_OK):
        raise UsageError(f"cannot read rules file {text}: check its permissions")
    if path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
        raise UsageError(f"cannot read rules directory {text}: check its permissions")
    return path


def settings_of(args: argparse.Namespace) -> Any:
    """The effective settings' environment and flag part (rules/settings.py); RulesError if one is bad."""
    from ruleauth.rules.settings import Settings

    flags = {name: getattr(args, name, None) for name in ("response", "engine", "cache_mode")}
    return Settings.from_environ(os.environ, flags)


def load_or_report(
    path: Path, err: TextIO, args: argparse.Namespace | None = None, names: Mapping[str, str] | None = None
) -> Any:
    """The cold start's load; on failure print the problems and return None (exit 3).
    `names` shows copied files (file name → name to show) by their own names."""
    from ruleauth.errors import RulesError
    from ruleauth.runtime.authorizer import Authorizer

    try:
        return Authorizer.load(path, settings=settings_of(args) if args is not None else None)
    except RulesError as exc:
        names = names or {}
        style, lines = Style(err), _Lines(names)
        for problem in exc.problems:
            err.write("\n".join(format_problem(_renamed(problem, names), style, lines)) + "\n")
        shown = names.get(str(path), str(path))
        err.write(
            f"ruleauth: the rules in {shown} failed to load ({plural(len(exc.problems), 'problem')}); "
            f"fix them (`ruleauth validate {shown}`) and try again\n"
        )
        return None


def _renamed(problem: Any, names: Mapping[str, str]) -> Any:
    import dataclasses

    if not names:
        return problem
    message = problem.message
    for real, shown in names.items():
        message = message.replace(real, shown)
    pos = problem.pos
    if pos is not None and pos.file in names:
        pos = dataclasses.replace(pos, file=names[pos.file])
    return dataclasses.replace(problem, message=message, pos=pos)


def note_warnings(authorizer: Any, path: Path, err: TextIO) -> None:
    from ruleauth.tools.coverage import warnings_of

    count = len(warnings_of(authorizer.ruleset))
    if count:
        err.write(f"note: the rules have {plural(count, 'warning')}; run `ruleauth validate {path}` to see them\n")


# -- validate ---------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ruleauth.errors import RulesError
    from ruleauth.runtime.authorizer import Authorizer

    path = rules_path(args.rules)
    template = None
    if args.template:
        from ruleauth.tools.template_routes import TemplateError, read_api_template

        if not Path(args.template).is_file():
            raise UsageError(f"template {args.template} does not exist: pass a SAM, CloudFormation or OpenAPI file")
        try:
            template = read_api_template(args.template)
        except TemplateError as exc:
            raise UsageError(f"cannot read the template: {exc}") from None
    ruleset = None
    try:
        ruleset = Authorizer.load(path, settings=settings_of(args)).ruleset
        from ruleauth.tools.coverage import warnings_of

        problems = warnings_of(ruleset)
    except RulesError as exc:
        problems = list(exc.problems)
    if ruleset is not None and template is not None:
        from ruleauth.tools.template_check import compare

        problems.extend(compare(ruleset, template))
    problems.sort(key=lambda p: (p.pos.file, p.pos.line, p.pos.col) if p.pos else ("", 0, 0))
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity != "error"]
    failed = bool(errors) or (args.strict and bool(warnings))
    policy_size = _policy_size(ruleset)
    if args.json:
        print_json(
            {
                "ok": not failed,
                "rules_path": str(path),
                "files": list(ruleset.files) if ruleset else None,
                "rules": len(ruleset.rules) if ruleset else None,
                "tests": len(ruleset.tests) if ruleset else None,
                "template": args.template,
                "strict": args.strict,
                "errors": len(errors),
                "warnings": len(warnings),
                "problems": [problem_json(p) for p in problems],
                "policy_size": policy_size,
                "settings": _settings_json(ruleset),
            },
            out,
        )
        return FAILED if failed else OK
    style, lines = Style(out), _Lines()
    for problem in problems:
        out.write("\n".join(format_problem(problem, style, lines)) + "\n")
    counts = f"{plural(len(errors), 'error')}, {plural(len(warnings), 'warning')}"
    if errors:
        out.write(
            f"{style.red('invalid')}: {path}: {counts}. The Lambda would fail its cold start; "
            "fix the errors above and run `ruleauth validate` again.\n"
        )
    elif failed:
        out.write(
            f"{style.red('failed')} (--strict): {path}: {counts}. Fix the warnings above, "
            "or drop --strict to accept them.\n"
        )
    else:
        assert ruleset is not None
        what = f"{plural(len(ruleset.rules), 'rule')}, {plural(len(ruleset.tests), 'test')}"
        checked = f", checked against {args.template}" if template is not None else ""
        hint = "; run `ruleauth test` to run the tests" if ruleset.tests else ""
        given = ruleset.settings.overrides()
        if given:
            out.write("checked under " + ", ".join(map(str, given)) + "\n")
        out.write(f"{style.green('ok')}: {path}: {what}, {plural(len(warnings), 'warning')}{checked}{hint}\n")
        if policy_size is not None:
            out.write(
                f"cached policy (cache.mode {ruleset.cache.mode}): about {policy_size['all_allowed']} bytes "
                f"for a caller allowed on every route, at most {policy_size['worst_case']} bytes "
                f"before compression; API Gateway's limit is {policy_size['limit']}\n"
            )
    return FAILED if failed else OK


def _settings_json(ruleset: Any) -> dict[str, Any] | None:
    """Each effective setting: value, origin (file, environment, flag, default) and where."""
    if ruleset is None:
        return None
    from ruleauth.rules.settings import SOURCES

    found = {}
    for name in SOURCES:
        setting = getattr(ruleset.settings, name)
        where = str(setting.pos) if setting.pos else setting.variable
        found[name] = {"value": setting.value, "origin": setting.origin, "where": where}
    return found


def _policy_size(ruleset: Any) -> dict[str, int] | None:
    """The worst-case size of the cached policy (cache.mode identity), estimated with a long ARN prefix."""
    if ruleset is None or ruleset.table is None:
        return None
    from ruleauth.policy.response_check import MAX_RESPONSE_BYTES
    from ruleauth.policy.synthesis import size_report

    report = size_report(ruleset.table)
    return {"all_allowed": report.all_allowed, "worst_case": report.worst_case, "limit": MAX_RESPONSE_BYTES}


# -- dry-run ------------------------------------------------------------------------------


def _pairs(values: Sequence[str], what: str, flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"{flag} {item!r}: write {what} as name=value")
        out[name] = value
    return out


def _headers(values: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        name, sep, value = item.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            raise UsageError(f"-H {item.split(':', 1)[0]!r}...: write headers as 'Name: value'")
        out[name.strip()] = value.strip()
    return out


def _claims(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    source = "--claims"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read claims file {source}: {exc.strerror}") from None
    try:
        claims = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{source} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
            'pass a JSON object, e.g. --claims \'{"sub": "u1"}\''
        ) from None
    if not isinstance(claims, dict):
        raise UsageError(f'{source} must be a JSON object like {{"sub": "u1"}}, not {type(claims).__name__}')
    return claims


def _read_event(name: str) -> Any:
    from ruleauth.errors import BadEvent
    from ruleauth.runtime.events import parse_event

    label = "standard input" if name == "-" else name
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read event {label}: {why}") from None
    try:
        event = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"event {label} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
            "pass an API Gateway authorizer event"
        ) from None
    try:
        parse_event(event)
    except BadEvent as exc:
        raise UsageError(
            f"event {label} is not an API Gateway authorizer event we understand: {exc}. "
            "Pass a REST TOKEN/REQUEST, HTTP API 1.0/2.0 or WebSocket $connect event"
        ) from None
    return event


def request_event(args: argparse.Namespace, ruleset: Any, claims: dict[str, Any] | None) -> Any:
    """The event to decide: from --event, or built from the request flags."""
    from ruleauth.model import METHODS, WEBSOCKET_CONNECT
    from ruleauth.tools.rule_tests import PLACEHOLDER_TOKEN, has_credential
    from ruleauth.tools.synthetic_events import build_event, with_client_cert

    flags = [
        f
        for f, v in (
            ("--method", args.method),
            ("--path", args.path),
            ("-H", args.header),
            ("--query", args.query),
            ("--cookie", args.cookie),
            ("--token", args.token),
            ("--stage-variable", args.stage_variable),
            ("--source-ip", args.source_ip),
            ("--event-type", args.event_type),
        )
        if v
    ]
    cert = client_cert_option(args.client_cert)
    if args.event is not None:
        if flags:
            raise UsageError(f"--event cannot be combined with {', '.join(flags)}: the event file is the whole request")
        event = _read_event(args.event)
        if cert is not None and not with_client_cert(event, cert):
            raise UsageError("--client-cert: TOKEN and WebSocket events carry no client certificate")
        return event
    event_type = args.event_type or "rest-request"
    if event_type == "websocket" and not args.path:
        args.path = WEBSOCKET_CONNECT
    if not args.path or (not args.method and args.path != WEBSOCKET_CONNECT):
        raise UsageError(
            "give the request: --method and --path (e.g. --method GET --path /hello), "
            "or an event file with --event FILE"
        )
    method = (args.method or "GET").upper()
    if method not in METHODS:
        raise UsageError(f"--method {args.method!r} is not one of {', '.join(METHODS)}")
    if not (args.path.startswith("/") or args.path == WEBSOCKET_CONNECT):
        raise UsageError(f"--path {args.path!r} must start with / (or be $connect)")
    headers = _headers(args.header)
    query = _pairs(args.query, "query parameters", "--query")
    cookies = _pairs(args.cookie, "cookies", "--cookie")
    stage_variables = _pairs(args.stage_variable, "stage variables", "--stage-variable")
    token = args.token
    if claims is not None and ruleset.providers and not has_credential(ruleset, headers, query, cookies, token):
        token = PLACEHOLDER_TOKEN
    if cert is not None and event_type in ("rest-token", "websocket"):
        raise UsageError(f"--client-cert: {event_type} events carry no client certificate (use rest-request or http-*)")
    return build_event(
        event_type,
        method,
        args.path,
        headers=headers,
        query=query,
        cookies=cookies,
        stage_variables=stage_variables,
        source_ip=args.source_ip or "192.0.2.10",
        token=token,
        token_config=ruleset.token,
        client_cert=cert,
    )


def client_cert_option(name: str | None) -> dict[str, Any] | None:
    """--client-cert FILE.pem: the clientCert fields API Gateway would send for it."""
    from ruleauth.tools.synthetic_events import client_cert_fields

    if name is None:
        return None
    try:
        text = Path(name).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a PEM text file"
        raise UsageError(f"cannot read --client-cert {name}: {why}") from None
    begin = text.find("-----BEGIN CERTIFICATE-----")
    end = text.find("-----END CERTIFICATE-----", begin)
    if begin < 0 or end < 0:
        raise UsageError(f"--client-cert {name} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
    pem = text[begin : end + len("-----END CERTIFICATE-----")] + "\n"
    try:
        return client_cert_fields(pem)
    except ValueError as exc:
        raise UsageError(f"--client-cert {name} is not a readable certificate: {exc}") from None


def policy_grants(ruleset: Any, authorization: Any) -> list[str]:
    """The rule routes a cached copy of this response would allow (sample ARN per route and method)."""
    from ruleauth.policy.arn import resource_arn
    from ruleauth.policy.iam import ALLOW, evaluate_response
    from ruleauth.tools.template_check import methods_of, sample_path

    response, decision = authorization.response, authorization.decision
    if response is None or decision.request is None:
        return []
    arn = decision.request.arn
    grants: list[str] = []
    for route, _rule in ruleset.router.entries:
        methods = ("",) if route.websocket else methods_of(route.method)
        for method in methods:
            sample = resource_arn(arn, method, sample_path(route))
            if "isAuthorized" in response:
                # A simple response names no resource: its cached copy answers whatever shares its
                # cache key under the effective cache mode (the same route key under route).
                granted = response["isAuthorized"] is True and _replayed(ruleset, decision, route, method)
            else:
                granted = evaluate_response(response, sample) == ALLOW
            if granted:
                grant = route.path if route.websocket else f"{method} {route.path}"
                if grant not in grants:
                    grants.append(grant)
    return grants


def _replayed(ruleset: Any, decision: Any, route: Any, method: str) -> bool:
    """Whether API Gateway answers `method route` from this request's cached response."""
    mode = ruleset.cache.mode
    if mode == "identity":
        return True
    same_route = decision.matched is not None and route == decision.matched
    if mode == "route":
        return same_route  # an HTTP API route key: one for all methods of an ANY route
    return same_route and method == decision.request.method  # disabled: the asked request alone


def _identity_text(
    decision: Any, claims_given: bool, providers: bool, introspected: str | None = None
) -> tuple[bool, str]:
    identity = decision.identity
    if identity.verified and identity.provider == introspected:
        return True, f"opaque token, active by provider {identity.provider!r}'s introspection endpoint"
    if identity.verified:
        return True, f"verified JWT from provider {identity.provider!r}"
    if claims_given and providers:
        return False, ("claims from --claims, NOT verified: signature, audience and expiry checks were skipped")
    if providers:
        return False, "no verified JWT"
    return False, "no JWT configured (the rules read the credential itself)"


def cmd_dry_run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ruleauth.tools.explain import explain
    from ruleauth.tools.rule_tests import parse_time

    path = rules_path(args.rules)
    claims = _claims(args.claims)
    now = None
    if args.now is not None:
        try:
            now = parse_time(args.now)
        except ValueError as exc:
            raise UsageError(f"--now {args.now!r} is not an RFC 3339 time like 2026-01-01T00:00:00Z ({exc})") from None
    if args.event is not None and args.event != "-" and not Path(args.event).is_file():
        raise UsageError(f"event file {args.event} does not exist: pass an API Gateway event JSON file, or - for stdin")
    authorizer = load_or_report(path, err, args)
    if authorizer is None:
        return LOAD_FAILED
    ruleset = authorizer.ruleset
    event = request_event(args, ruleset, claims)
    if claims is not None and not ruleset.providers:
        err.write("note: --claims has no effect: the rules configure no `jwt:` provider\n")
    from ruleauth.tools.local_gateway import decide_event

    decided = decide_event(authorizer, event, now=now, claims=claims)
    authorization = decided.authorization
    if authorization is None:
        return _dry_run_refused(args, decided, authorizer, path, out, err)
    decision = authorization.decision
    explanation = explain(authorizer, authorization)
    introspected = next((p.name for p in ruleset.providers if p.introspection is not None), None)
    verified, identity_text = _identity_text(decision, claims is not None, bool(ruleset.providers), introspected)
    grants = policy_grants(ruleset, authorization)
    shadows = [{"rule": s.rule, "route": s.route, "decision": s.decision, "reason": s.reason} for s in decision.shadows]
    report = {
        "decision": decision.outcome,
        "reason": decision.reason,
        "status": authorization.status,
        "body": authorization.body,
        "gateway_outcome": authorization.gateway_outcome,
        "rule": decision.rule,
        "route": decision.route,
        "principal": decision.principal,
        "context": decision.context,
        "context_omitted": [{"key": k, "why": why} for k, why in decision.omitted_context],
        "response": authorization.response,
        "raises": "Unauthorized" if authorization.response is None else None,
        "verified": verified,
        "provider": decision.identity.provider or None,
        "claims_source": "--claims (unverified)"
        if claims is not None and ruleset.providers
        else ("jwt" if verified else None),
        "policy_grants": grants,
        "cache_mode": ruleset.cache.mode,
        "explanation": explanation.as_dict(),
        "shadow": shadows,
        "warnings": list(decision.warnings),
        "detail": decision.detail or None,
        "event_type": decision.request.event_type if decision.request else None,
        "internal_error": authorization.internal_error,
        "authorizer_called": True,
    }
    if args.json:
        print_json(report, out)
    else:
        _print_dry_run(report, explanation, identity_text, out)
    note_warnings(authorizer, path, err)
    if args.expect and args.expect != decision.outcome:
        err.write(f"ruleauth dry-run: expected {args.expect}, got {decision.outcome} (reason {decision.reason})\n")
        return FAILED
    return OK


def _dry_run_refused(
    args: argparse.Namespace, decided: Any, authorizer: Any, path: Path, out: TextIO, err: TextIO
) -> int:
    """API Gateway answers 401 itself: the authorizer is not called, so no rule decides."""
    ruleset = authorizer.ruleset
    # The keys of a decided report, so tools read both alike; nothing of the rules ran.
    report = {
        "decision": decided.outcome,
        "reason": decided.reason,
        "status": decided.status,
        "body": decided.body,
        "gateway_outcome": decided.outcome,
        "rule": decided.rule,
        "route": decided.route,
        "principal": decided.principal,
        "context": dict(decided.context),
        "context_omitted": [],
        "response": None,
        "raises": None,
        "verified": False,
        "provider": None,
        "claims_source": None,
        "policy_grants": [],
        "cache_mode": ruleset.cache.mode,
        "explanation": None,
        "shadow": [],
        "warnings": [],
        "detail": decided.refusal,
        "event_type": None,
        "internal_error": None,
        "authorizer_called": False,
    }
    if args.json:
        print_json(report, out)
    else:
        style = Style(out)
        rows = [
            ("decision", f"{style.outcome(decided.outcome)} (reason {decided.reason})"),
            ("gateway", f"HTTP {decided.status} {json.dumps(decided.body)}"),
            ("why", decided.refusal),
            ("response", "none: API Gateway answered without calling the authorizer, so no rule ran"),
        ]
        for label, value in rows:
            out.write(f"{style.bold(label.ljust(10))} {value}\n")
    note_warnings(authorizer, path, err)
    if args.expect and args.expect != decided.outcome:
        err.write(f"ruleauth dry-run: expected {args.expect}, got {decided.outcome} (reason {decided.reason})\n")
        return FAILED
    return OK


def _print_dry_run(report: dict[str, Any], explanation: Any, identity_text: str, out: TextIO) -> None:
    style = Style(out)

    def row(label: str, value: str) -> None:
        out.write(f"{style.bold(label.ljust(10))} {value}".rstrip() + "\n")

    row("decision", f"{style.outcome(report['decision'])} (reason {report['reason']})")
    body = json.dumps(report["body"]) if report["body"] is not None else "(the request goes to the backend)"
    row("gateway", f"HTTP {report['status']} {body}")
    if report["rule"]:
        row("rule", f"{report['rule']}  (route {report['route']})")
    lines = explanation.lines()
    row("why", lines[0])
    for line in lines[1:]:
        out.write(" " * 11 + line + "\n")
    if report["response"] is not None:
        row("principal", str(report["principal"]))
        row("context", json.dumps(report["context"], ensure_ascii=False))
        for omitted in report["context_omitted"]:
            row("", f"context.{omitted['key']} left out ({omitted['why']})")
    row("identity", identity_text)
    grants = report["policy_grants"]
    if report["response"] is not None:
        row(
            "cached",
            ("a cached copy of this response allows: " + ", ".join(grants))
            if grants
            else "a cached copy of this response allows no route",
        )
    for shadow in report["shadow"]:
        row(
            "shadow",
            f"rule {shadow['rule']!r} ({shadow['route']}) would {shadow['decision']} "
            f"(reason {shadow['reason']}); shadow rules are never enforced",
        )
    for warning in report["warnings"]:
        row("warning", warning)
    if report["response"] is None:
        row("response", "the Lambda raises Exception('Unauthorized') → API Gateway answers 401")
    else:
        row("response", "")
        out.write("\n".join("  " + line for line in json.dumps(report["response"], indent=2).splitlines()) + "\n")


# -- test ---------------------------------------------------------------------------------


def cmd_test(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ruleauth.tools.rule_tests import run_case

    path = rules_path(args.rules)
    authorizer = load_or_report(path, err, args)
    if authorizer is None:
        return LOAD_FAILED
    if args.min_coverage is not None and not 0 <= args.min_coverage <= 100:
        raise UsageError("--min-coverage must be a percentage between 0 and 100")
    style = Style(out)
    cases = authorizer.ruleset.tests
    passed = failed = 0
    results = []
    for case in cases:
        result = run_case(authorizer, case)
        results.append(result)
        if result.passed:
            passed += 1
            if args.verbose:
                out.write(f"{style.green('PASS')} {case.pos}: {case.name}\n")
            continue
        failed += 1
        out.write(f"{style.red('FAIL')} {case.pos}: {case.name}: {'; '.join(result.failures)}\n")
        if result.explanation is not None:
            for line in result.explanation.lines():
                out.write(f"       {line}\n")
    if not cases:
        err.write(f"note: {path} has no `tests:` cases; add some (see `ruleauth schema`)\n")
    note_warnings(authorizer, path, err)
    out.write(f"{passed} passed, {failed} failed\n")
    wanted = args.coverage or args.min_coverage is not None
    if wanted and not _report_coverage(authorizer, results, args.min_coverage, out, err):
        return FAILED
    return FAILED if failed else OK


def _report_coverage(authorizer: Any, results: list[Any], minimum: float | None, out: TextIO, err: TextIO) -> bool:
    """Print the coverage of the cases' results; False when it is under `minimum` percent."""
    from ruleauth.tools.coverage import coverage, coverage_lines

    report = coverage(authorizer, results)
    lines, missing = coverage_lines(report)
    out.write("\n".join(lines) + "\n")
    if missing:
        out.write(f"not reached by any test ({len(missing)}):\n" + "".join(f"  {line}\n" for line in missing))
    if minimum is not None and report.percent < minimum:
        err.write(f"ruleauth test: coverage {report.percent:.1f}% is under --min-coverage {minimum:g}%\n")
        return False
    return True


# -- serve --------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from urllib.parse import urlsplit

    from ruleauth.tools.local_gateway import MAX_TTL, LocalGateway, serve

    path = rules_path(args.rules)
    if args.upstream:
        parts = urlsplit(args.upstream)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(
                f"--upstream {args.upstream!r} must be an http:// or https:// URL, e.g. http://127.0.0.1:8080"
            )
    if args.cache_ttl is not None and not 0 <= args.cache_ttl <= MAX_TTL:
        raise UsageError(f"--cache-ttl must be between 0 and {MAX_TTL} seconds (API Gateway's range)")
    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    authorizer = load_or_report(path, err, args)
    if authorizer is None:
        return LOAD_FAILED
    note_warnings(authorizer, path, err)
    cert = client_cert_option(args.client_cert)
    if cert is not None and args.event_type in ("rest-token", "websocket"):
        raise UsageError(f"--client-cert: {args.event_type} events carry no client certificate")
    gateway = LocalGateway(
        authorizer, event_type=args.event_type, ttl=args.cache_ttl, upstream=args.upstream, client_cert=cert
    )
    cache = authorizer.ruleset.cache
    if args.cache_ttl and cache.mode == "disabled":
        err.write(
            f"warning: --cache-ttl {args.cache_ttl} but the rules say cache.mode: disabled; "
            "cached responses will be replayed for other routes, as API Gateway would\n"
        )
    headers, query = gateway.identity_sources()
    sources = ", ".join([f"header {h}" for h in headers] + [f"query {q}" for q in query]) or "none"
    banner = (
        f"rules {path}; {args.event_type} events; cache TTL {gateway.ttl} s (cache.mode {cache.mode}); "
        f"identity sources: {sources}; "
        + (f"every request presents the client certificate {cert['subjectDN']}; " if cert else "")
        + (
            f"allowed requests go to {args.upstream}"
            if args.upstream
            else "allowed requests echo principal and context"
        )
    )
    try:
        return serve(gateway, args.host, args.port, out=out, log=err, banner=banner)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; "
            "choose another --port (0 picks a free one) or --host"
        ) from None


# -- schema -------------------------------------------------------------------------------


SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema" / "rules.schema.json"


def schema_text() -> str:
    return SCHEMA_PATH.read_text(encoding="utf-8")


def cmd_schema(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    text = schema_text()
    out.write(text if text.endswith("\n") else text + "\n")
    return OK


# -- snapshot -----------------------------------------------------------------------------


def cmd_snapshot(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from ruleauth.rules import snapshot as rules_snapshot

    path = rules_path(args.rules)
    authorizer = load_or_report(path, err, args)
    if authorizer is None:
        return LOAD_FAILED
    note_warnings(authorizer, path, err)
    try:
        saved = rules_snapshot.save(authorizer.ruleset, path)
    except OSError as exc:
        raise UsageError(f"cannot write the snapshot beside {path}: {exc.strerror or exc}") from None
    ruleset = authorizer.ruleset
    out.write(
        f"saved {saved} ({saved.stat().st_size:,} bytes): {plural(len(ruleset.rules), 'rule')} "
        f"from {plural(len(ruleset.files), 'file')}\n"
    )
    return OK


# -- diff ---------------------------------------------------------------------------------


def cmd_diff(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    import tempfile

    from ruleauth.tools import diff as rules_diff

    if args.max_classes is not None and args.max_classes < 1:
        raise UsageError("--max-classes must be at least 1")
    if args.git is not None and len(args.paths) > 1:
        raise UsageError("with --git REV give at most one RULES path (the working tree's)")
    if args.git is None and len(args.paths) != 2:
        raise UsageError(
            "give OLD and NEW rules paths (e.g. <(git show main:rules/api.yaml) rules/api.yaml), or --git REV"
        )
    with tempfile.TemporaryDirectory(prefix="ruleauth-diff-") as workdir:
        inputs = rules_diff.Inputs(Path(workdir))
        try:
            if args.git is not None:
                new_path = rules_path(args.paths[0] if args.paths else None)
                old_path = inputs.from_git(args.git, new_path)
                new_path = inputs.readable(new_path, "new")
            else:
                old_path = inputs.readable(rules_path(args.paths[0]), "old")
                new_path = inputs.readable(rules_path(args.paths[1]), "new")
        except rules_diff.InputError as exc:
            raise UsageError(str(exc)) from None
        old = load_or_report(old_path, err, args, inputs.names)
        new = load_or_report(new_path, err, args, inputs.names) if old is not None else None
        if old is None or new is None:
            return LOAD_FAILED
        old_name = inputs.names.get(str(old_path), str(old_path))
        new_name = inputs.names.get(str(new_path), str(new_path))
        cap = args.max_classes or rules_diff.MAX_CLASSES
        report = rules_diff.diff(old, new, old_name, new_name, cap, inputs.names)
    if args.json:
        print_json(report.as_dict(), out)
    else:
        out.write(f"ruleauth diff {old_name} → {new_name}\n\n")
        out.write("\n".join(rules_diff.text_lines(report)) + "\n")
    return FAILED if args.exit_code and report.access_changed else OK


COMMANDS = {
    "validate": cmd_validate,
    "dry-run": cmd_dry_run,
    "test": cmd_test,
    "serve": cmd_serve,
    "schema": cmd_schema,
    "snapshot": cmd_snapshot,
    "diff": cmd_diff,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extras = parser.parse_known_args(argv)
        if extras:
            # Reported by the command's own parser, so the hint names `ruleauth COMMAND --help`.
            owner = parser.commands.get(args.command, parser)  # type: ignore[attr-defined]
            owner.error(f"unrecognized arguments: {' '.join(extras)}")
    except SystemExit as exc:
        return int(exc.code or 0) if isinstance(exc.code, int) else USAGE
    if not args.command:
        parser.print_help(sys.stderr)
        sys.stderr.write("\nruleauth: error: name a command, e.g. `ruleauth validate`\n")
        return USAGE
    out, err = sys.stdout, sys.stderr
    try:
        return COMMANDS[args.command](args, out, err)
    except UsageError as exc:
        err.write(f"ruleauth {args.command}: error: {exc}\n")
        return USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        except OSError:
            pass
        return OK
    except Exception as exc:  # a bug in ruleauth: one line, never a traceback for users
        if os.environ.get("RULEAUTH_DEBUG"):
            raise
        err.write(
            f"ruleauth {args.command}: unexpected {type(exc).__name__}: {exc}. "
            "This is a bug in ruleauth; please report it with the command you ran.\n"
        )
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
