"""Rules snapshots: the loaded rule set saved at build time as data, read at cold start.

A full load parses the YAML, parses and checks every CEL expression and analyses
the route table: about 55 ms for 100 rules, on top of about 25 ms importing
PyYAML and lark. `sam build` (the Makefile, `ruleauth snapshot`) saves the
loaded RuleSet beside the rules. A cold start whose rules files, ruleauth code,
CEL grammar and load settings (settings.LOAD_SETTINGS: RULEAUTH_RESPONSE,
RULEAUTH_ENGINE, RULEAUTH_CACHE_MODE, RULEAUTH_CEL_INTERPRETER) are those the
snapshot was made under reads it instead, in a few milliseconds, and imports neither.
The loaded rules were checked under those settings (a simple response against the
cache mode, the engine's availability): a snapshot is never used under others.

Anything else is a full load with every check: no snapshot, one changed byte, a
damaged or foreign file. A snapshot exists only for rules that loaded without error,
so a broken rules file still stops the cold start with its file and line.

The file is JSON and nothing else (docs/spec.md "Rules snapshots"): a header line (format,
the inputs above, the rules' directory, the body's SHA-256) and the body, the rule set as
plain data. Reading it is `json.loads` and building the dataclasses it names from a fixed
list, each field checked against the type its class declares; nothing in it is ever run or
imported, so it depends on no Python version or platform, and any 3.11+ makes the one
Lambda reads. Expressions compiled to closures are stored as their checked parse tree
(cel_closures.tree_data) and built again; those that run on cel-cpp are compiled again
from their inlined text, those on cel-python's interpreter from their own text.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib.util
import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ruleauth.cel.compiler import Compiled, Recompiler
from ruleauth.errors import Problem
from ruleauth.model import JwtProvider, SourcePos
from ruleauth.policy.synthesis import Conflict, Entry, RouteTable
from ruleauth.rules.files import rule_files
from ruleauth.rules.routes import Route, Segment
from ruleauth.rules.ruleset import CacheConfig, Expectation, Rule, RuleSet, TestCase, TokenConfig, routers
from ruleauth.rules.settings import LOAD_SETTINGS, SOURCES, Setting, Settings

FORMAT = "ruleauth rules snapshot 3"  # 3: JSON (1 and 2 were pickles)
# RULEAUTH_SNAPSHOT=0 ignores snapshots: the way back should one ever misbehave.
SNAPSHOT_ENV = SOURCES["snapshot"][1]
_PACKAGE = Path(__file__).parent.parent
# The dataclasses a snapshot holds; a field may also declare another of ruleauth's own plain
# dataclasses (model.py's, say). Which class is built is always the declared type's, never the
# data's choice, and each is built with exactly its fields, each of its declared type.
_CLASSES: tuple[type, ...] = (
    TokenConfig,
    CacheConfig,
    JwtProvider,
    Rule,
    Route,
    Segment,
    TestCase,
    Expectation,
    Problem,
    SourcePos,
    Settings,
    Setting,
)


class SnapshotUnusable(Exception):
    """A snapshot that is there but cannot stand in for the rules; the message says why."""


class _Bad(Exception):
    """Data no snapshot of ours holds: the file is damaged or foreign."""


def snapshot_path(rules: str | os.PathLike[str]) -> Path:
    """`rules/.ruleauth-snapshot` for a directory, `.NAME.ruleauth-snapshot` beside a file."""
    target = Path(rules)
    if target.is_dir():
        return target / ".ruleauth-snapshot"
    return target.with_name(f".{target.name}.ruleauth-snapshot")


def _grammar_digest() -> str:
    """The CEL grammar the stored trees were parsed with (cel-python's; found, not imported)."""
    spec = importlib.util.find_spec("celpy")
    for folder in (spec.submodule_search_locations or ()) if spec else ():
        grammar = Path(folder) / "cel.lark"
        if grammar.is_file():
            return hashlib.sha256(grammar.read_bytes()).hexdigest()
    return "none"


def inputs(rules: str | os.PathLike[str], settings: Settings) -> dict[str, str]:
    """What a load of `rules` depends on, by name: each rules file, this code, the grammar, settings.

    Line ends are hashed as LF: a checkout with CRLF holds the same code."""
    code = hashlib.sha256()
    for parts, path in sorted(_code_files(str(_PACKAGE), ())):
        with open(path, "rb") as source:
            data = source.read()
        if b"\r\n" in data:
            data = data.replace(b"\r\n", b"\n")
        code.update(f"{'/'.join(parts)} {len(data)}\n".encode())
        code.update(data)
    found = {"ruleauth's code": code.hexdigest(), "CEL grammar": _grammar_digest()}
    for file in rule_files(rules):
        found[f"rules file {file.name}"] = hashlib.sha256(file.read_bytes()).hexdigest()
    for name, value in settings.load_key().items():
        found[f"setting {name}"] = value
    return found


def _code_files(directory: str, parts: tuple[str, ...]) -> list[tuple[tuple[str, ...], str]]:
    """Every `*.py` under `directory` at any depth, as (its path's parts below the package, path):
    sorted by parts, the order `sorted(Path.rglob("*.py"))` gives, without pathlib's globbing,
    which costs a cold start more than reading the files."""
    found: list[tuple[tuple[str, ...], str]] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir():
                found += _code_files(entry.path, (*parts, entry.name))
            elif entry.name.endswith(".py"):
                found.append(((*parts, entry.name), entry.path))
    return found


def _differences(made: dict[str, str], now: dict[str, str]) -> str:
    changed = [name for name in now if made.get(name) != now[name]]
    changed += [name for name in made if name not in now]
    return ", ".join(changed)


def _base(rules: str | os.PathLike[str]) -> Path:
    """The directory the rules files are in: paths they name resolve against it."""
    target = Path(rules).resolve()
    return target if target.is_dir() else target.parent


def _rebased(path: str | None, made_in: Path, now_in: Path) -> str | None:
    """A path the loader resolved under the rules' directory at build time, under today's."""
    if path is None or made_in == now_in or not Path(path).is_relative_to(made_in):
        return path
    return str(now_in / Path(path).relative_to(made_in))


def _moved(ruleset: RuleSet, made_in: Path, now_in: Path) -> None:
    """The loader resolves `jwks_file` and test `event` files to absolute paths; a bundle
    built in one directory runs from another (`/var/task`), so those follow the rules."""
    ruleset.providers = tuple(
        dataclasses.replace(p, jwks_file=_rebased(p.jwks_file, made_in, now_in)) for p in ruleset.providers
    )
    ruleset.tests = [dataclasses.replace(t, event=_rebased(t.event, made_in, now_in)) for t in ruleset.tests]


def _today(made: Settings, now: Settings) -> Settings:
    """The snapshot's settings with today's for everything the rules file does not give.

    Re-checked, not trusted: the header matched, so each load setting is the snapshot's."""
    mixed = dataclasses.replace(
        now, **{name: getattr(made, name) for name in LOAD_SETTINGS if not getattr(now, name).overridden}
    )
    for name in LOAD_SETTINGS:
        if getattr(mixed, name).value != getattr(made, name).value:
            raise SnapshotUnusable(f"it was made under {getattr(made, name)}, not {getattr(now, name)}")
    return mixed


def _json(value: Any) -> bytes:
    # Sorted keys, no set or hash order anywhere (sets are stored sorted): the same rules give
    # the same bytes on every host and under every PYTHONHASHSEED.
    return json.dumps(value, sort_keys=True, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def encode(ruleset: RuleSet) -> bytes:
    """The body of a snapshot of `ruleset`: JSON. Raises TypeError for a value it cannot store."""
    return _json(_Writer().ruleset(ruleset))


def decode(body: bytes) -> RuleSet:
    """The rule set `encode` gave; ValueError (or another Exception) for anything else."""
    return _Reader().ruleset(json.loads(body))


def save(ruleset: RuleSet, rules: str | os.PathLike[str]) -> Path:
    """Write the snapshot of `ruleset`, which was loaded from `rules` under `ruleset.settings`."""
    path = snapshot_path(rules)
    body = encode(ruleset)
    header = {
        "format": FORMAT,
        "inputs": inputs(rules, ruleset.settings),
        "base": str(_base(rules)),
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.write_bytes(_json(header) + b"\n" + body + b"\n")
        temporary.replace(path)  # a cold start never sees half a snapshot
    finally:
        temporary.unlink(missing_ok=True)
    return path


def read(
    rules: str | os.PathLike[str], environ: Mapping[str, str] | None = None, settings: Settings | None = None
) -> RuleSet | None:
    """The snapshot's rule set; None when there is none. Raises SnapshotUnusable when stale,
    damaged or foreign.

    `settings` (default: `environ`'s) are today's; a snapshot made under other load settings
    is stale, and its rule set carries today's settings for what the file does not say."""
    if settings is None:
        settings = Settings.from_environ(os.environ if environ is None else environ)
    path = snapshot_path(rules)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SnapshotUnusable(f"cannot read {path}: {exc.strerror}") from None
    first, newline, rest = data.partition(b"\n")
    try:
        header = json.loads(first)
    except ValueError:
        raise SnapshotUnusable(f"{path} is damaged, or not a rules snapshot") from None
    if not (isinstance(header, dict) and header.get("format") == FORMAT):
        raise SnapshotUnusable(f"{path} was made by another version of ruleauth")
    made, now = header.get("inputs"), inputs(rules, settings)
    if made != now:
        changed = _differences(made, now) if isinstance(made, dict) else "everything"
        raise SnapshotUnusable(f"{path} is stale: {changed} changed since it was made")
    body = rest.removesuffix(b"\n")
    if not newline or header.get("sha256") != hashlib.sha256(body).hexdigest():
        raise SnapshotUnusable(f"{path} is damaged (its body is not the one it was saved with)")
    base = header.get("base")
    try:
        if not isinstance(base, str):
            raise _Bad("no rules directory")
        ruleset = decode(body)
    except Exception as exc:  # whatever the data, it is refused, never half used
        raise SnapshotUnusable(f"{path} is damaged: {type(exc).__name__}: {str(exc)[:200]}") from None
    ruleset.settings = _today(ruleset.settings, settings)
    _moved(ruleset, Path(base), _base(rules))
    return ruleset


# -- the codec: each dataclass field stored as its declared type says ---------------------
#
# A class's field types are read from its annotations (strings: `from __future__ import
# annotations`) by the small parser below, never evaluated. A field that holds something its
# type does not describe stops `save` (TypeError); data that is not what its field declares
# stops `read` (_Bad). Types: str, int, float, bool, None, Any (plain data: YAML values),
# `A | B`, tuple[X, ...], list[X], dict/Mapping[K, V] (stored as [key, value] pairs, in
# order), frozenset[X] (sorted), and ruleauth's plain dataclasses.

Spec = tuple[Any, ...]
_ANY: Spec = ("any",)
_SCALARS = {"str": str, "int": int, "float": float, "bool": bool}
_CONTAINERS = {"tuple": "tuple", "list": "list", "dict": "map", "Mapping": "map", "frozenset": "frozenset"}
# Fields whose declared type says too little (Any), or that are made again from others.
_OVERRIDES: dict[tuple[type, str], Spec] = {
    (RuleSet, "settings"): ("class", Settings),
    (RuleSet, "table"): ("table",),
    (RuleSet, "router"): ("rebuilt",),
    (RuleSet, "shadow_router"): ("rebuilt",),
}
_FIELD_SPECS: dict[type, list[tuple[str, Spec]]] = {}
_CLASS_NAMES = {cls.__name__: cls for cls in _CLASSES}  # for names imported only for type checkers
# Dataclasses stored their own way (or made again), never field by field.
_SPECIAL = (RuleSet, Compiled, RouteTable, Entry, Conflict)


def _parse_annotation(text: str, names: Mapping[str, Any]) -> Spec:
    tokens = text.replace("[", " [ ").replace("]", " ] ").replace(",", " , ").replace("|", " | ").split()
    position = 0

    def union() -> Spec:
        nonlocal position
        alternatives = [atom()]
        while position < len(tokens) and tokens[position] == "|":
            position += 1
            alternatives.append(atom())
        return alternatives[0] if len(alternatives) == 1 else ("union", tuple(alternatives))

    def atom() -> Spec:
        nonlocal position
        name = tokens[position]
        position += 1
        arguments: list[Spec] = []
        if position < len(tokens) and tokens[position] == "[":
            position += 1
            while tokens[position] != "]":
                if tokens[position] == ",":
                    position += 1
                elif tokens[position] == "...":
                    position += 1
                    arguments.append(("...",))
                else:
                    arguments.append(union())
            position += 1
        return resolve(name, arguments)

    def resolve(name: str, arguments: list[Spec]) -> Spec:
        if name in _SCALARS:
            return ("scalar", _SCALARS[name])
        if name == "None":
            return ("none",)
        if name == "Any":
            return _ANY
        if name == "Compiled":
            return ("compiled",)
        if name in _CONTAINERS:
            kind = _CONTAINERS[name]
            if kind == "tuple" and not (len(arguments) == 2 and arguments[1] == ("...",)):
                raise TypeError(f"a snapshot stores tuple[X, ...] only, not {text}")
            return (kind, *[a for a in arguments if a != ("...",)])
        # A class the annotation names (never the data): one of ruleauth's own plain dataclasses.
        found = names.get(name, _CLASS_NAMES.get(name))
        if found in _CLASSES or (
            isinstance(found, type)
            and dataclasses.is_dataclass(found)
            and found.__module__.startswith("ruleauth.")
            and found not in _SPECIAL
        ):
            return ("class", found)
        raise TypeError(f"a snapshot cannot store a {name} (in {text})")

    spec = union()
    if position != len(tokens):
        raise TypeError(f"cannot read the type {text}")
    return spec


def _fields(cls: type) -> list[tuple[str, Spec]]:
    if cls not in _FIELD_SPECS:
        _FIELD_SPECS[cls] = [
            (f.name, _OVERRIDES.get((cls, f.name)) or _parse_annotation(str(f.type), vars(sys.modules[cls.__module__])))
            for f in dataclasses.fields(cls)
            if f.init
        ]
    return _FIELD_SPECS[cls]


class _Writer:
    def __init__(self) -> None:
        self.recompilers: list[Recompiler] = []
        self.rules: dict[int, int] = {}  # id(rule) → its index

    def ruleset(self, ruleset: RuleSet) -> dict[str, Any]:
        self.rules = {id(rule): number for number, rule in enumerate(ruleset.rules)}
        stored = self.record(ruleset, RuleSet)
        stored["compilers"] = [self.compiler_settings(r) for r in self.recompilers]
        return stored

    def compiler_settings(self, recompiler: Recompiler) -> dict[str, Any]:
        settings = dict(recompiler.settings)
        settings["defines"] = [[name, text] for name, text in settings["defines"].items()]
        return settings

    def record(self, value: Any, cls: type) -> dict[str, Any]:
        if type(value) is not cls:
            raise TypeError(f"a snapshot stores a {cls.__name__} here, not a {type(value).__name__}")
        return {name: self.value(getattr(value, name), spec) for name, spec in _fields(cls) if spec[0] != "rebuilt"}

    def value(self, value: Any, spec: Spec) -> Any:
        kind = spec[0]
        if kind == "scalar":
            if spec[1] is float and type(value) is int:
                return float(value)
            if not isinstance(value, spec[1]) or (spec[1] is int and isinstance(value, bool)):
                raise TypeError(f"a snapshot stores a {spec[1].__name__} here, not {type(value).__name__}")
            return spec[1](value)  # a StrEnum as its text
        if kind == "none":
            if value is not None:
                raise TypeError(f"a snapshot stores None here, not {type(value).__name__}")
            return None
        if kind == "union":
            for alternative in spec[1]:
                try:
                    return self.value(value, alternative)
                except TypeError:
                    continue
            raise TypeError(f"a snapshot cannot store a {type(value).__name__} here")
        if kind == "tuple" or kind == "list":
            if not isinstance(value, tuple if kind == "tuple" else list):
                raise TypeError(f"a snapshot stores a {kind} here, not {type(value).__name__}")
            return [self.value(item, spec[1]) for item in value]
        if kind == "map":
            if not isinstance(value, Mapping):
                raise TypeError(f"a snapshot stores a mapping here, not {type(value).__name__}")
            return [[self.value(k, spec[1]), self.value(v, spec[2])] for k, v in value.items()]
        if kind == "frozenset":
            if not isinstance(value, (set, frozenset)):
                raise TypeError(f"a snapshot stores a set here, not {type(value).__name__}")
            return sorted((self.value(item, spec[1]) for item in value), key=_json)
        if kind == "class":
            return self.record(value, spec[1])
        if kind == "compiled":
            return self.compiled(value)
        if kind == "table":
            return None if value is None else self.table(value)
        return _plain_data(value)

    def compiled(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, Compiled) or value.origin is None:
            raise TypeError("a snapshot stores a compiled expression here")
        recompiler = value.origin.recompiler
        if not any(r is recompiler for r in self.recompilers):
            self.recompilers.append(recompiler)
        number = next(n for n, r in enumerate(self.recompilers) if r is recompiler)
        return {**value.stored(), "compiler": number}

    def table(self, table: RouteTable) -> dict[str, Any]:
        """The policy table (7 ms of analysis for 100 rules): its entries by rule and route index."""
        entries = {id(entry): entry.index for entry in table.entries}

        def cell(entry: Entry) -> list[Any]:
            rule = self.rules[id(entry.rule)]
            route = next(n for n, r in enumerate(entry.rule.routes) if r is entry.route)
            return [entry.index, entry.method, rule, route, entry.pattern]

        return {
            "entries": [cell(e) for e in table.entries],
            "deny_if_allowed": [sorted(s) for s in table.deny_if_allowed],
            "gaps": [[[[text, sorted(blockers)] for text, blockers in gap] for gap in gaps] for gaps in table.gaps],
            "conflicts": [[entries[id(c.denied)], entries[id(c.allowed)], c.example] for c in table.conflicts],
            "uncovered_gaps": [[entries[id(entry)], text] for entry, text in table.uncovered_gaps],
            "asked_blockers": [sorted(s) for s in table.asked_blockers],
        }


def _plain_data(value: Any) -> Any:
    """A YAML value (test requests and claims, a setting's value) as JSON; tagged where JSON
    has no such type, so that it reads back equal."""
    if value is None or type(value) in (str, bool, int) or (type(value) is float and math.isfinite(value)):
        return value
    if type(value) is list:
        return [_plain_data(item) for item in value]
    if type(value) is tuple:
        return {"tuple": [_plain_data(item) for item in value]}
    if type(value) is dict:
        return {"map": [[_plain_data(k), _plain_data(v)] for k, v in value.items()]}
    if type(value) in (datetime.datetime, datetime.date):
        return {type(value).__name__: value.isoformat()}
    if type(value) is bytes:
        return {"bytes": value.hex()}
    if type(value) is float:  # NaN and infinities: JSON has none
        return {"float": repr(value)}
    raise TypeError(f"a snapshot cannot store a {type(value).__name__}")


_PLAIN_TAGS: dict[str, Callable[[Any], Any]] = {
    "tuple": lambda items: tuple(_plain_value(item) for item in _list(items)),
    "map": lambda pairs: {_plain_value(k): _plain_value(v) for k, v in _pairs(pairs)},
    "datetime": lambda text: datetime.datetime.fromisoformat(_str(text)),
    "date": lambda text: datetime.date.fromisoformat(_str(text)),
    "bytes": lambda text: bytes.fromhex(_str(text)),
    "float": lambda text: float(_str(text)),
}


def _plain_value(data: Any) -> Any:
    if data is None or type(data) in (str, bool, int, float):
        return data
    if type(data) is list:
        return [_plain_value(item) for item in data]
    if type(data) is dict and len(data) == 1:
        ((tag, inner),) = data.items()
        if tag in _PLAIN_TAGS:
            return _PLAIN_TAGS[tag](inner)
    raise _Bad("not plain data")


def _list(data: Any) -> list[Any]:
    if type(data) is not list:
        raise _Bad(f"a list where there is a {type(data).__name__}")
    return data


def _str(data: Any) -> str:
    if type(data) is not str:
        raise _Bad(f"a string where there is a {type(data).__name__}")
    return data


def _int(data: Any) -> int:
    if type(data) is not int:
        raise _Bad(f"an integer where there is a {type(data).__name__}")
    return data


def _pairs(data: Any) -> list[tuple[Any, Any]]:
    pairs = _list(data)
    if not all(type(p) is list and len(p) == 2 for p in pairs):
        raise _Bad("not a list of pairs")
    return [(p[0], p[1]) for p in pairs]


def _at(items: Any, data: Any) -> Any:
    """items[data], for a stored index (never a negative one, which Python would also take)."""
    if type(data) is not int or not 0 <= data < len(items):
        raise _Bad(f"an index {data!r} out of range")
    return items[data]


def _ints(data: Any) -> frozenset[int]:
    return frozenset(_int(item) for item in _list(data))


class _Reader:
    def __init__(self) -> None:
        self.recompilers: list[Recompiler] = []
        self.rules: list[Rule] = []

    def ruleset(self, data: Any) -> RuleSet:
        if type(data) is not dict:
            raise _Bad("no rule set")
        self.recompilers = [self.recompiler(settings) for settings in _list(data.get("compilers"))]
        fields = {name: spec for name, spec in _fields(RuleSet) if spec[0] != "rebuilt"}
        if set(data) != {*fields, "compilers"}:
            raise _Bad(f"a rule set with the fields {sorted(data)}")
        values = {name: self.value(data[name], spec) for name, spec in fields.items() if spec[0] != "table"}
        self.rules = values["rules"]
        router, shadow_router = routers(self.rules)
        ruleset = RuleSet(**values, router=router, shadow_router=shadow_router)
        ruleset.table = None if data["table"] is None else self.table(data["table"])
        if not isinstance(ruleset.settings, Settings):
            raise _Bad("a rule set without its settings")
        return ruleset

    def recompiler(self, data: Any) -> Recompiler:
        if type(data) is not dict or set(data) != {"defines", "jwt_configured", "engine", "interpreter_only"}:
            raise _Bad("not the settings of a compiler")
        if not (type(data["jwt_configured"]) is bool and type(data["interpreter_only"]) is bool):
            raise _Bad("not the settings of a compiler")
        defines = {_str(name): _str(text) for name, text in _pairs(data["defines"])}
        return Recompiler({**data, "defines": defines, "engine": _str(data["engine"])})

    def record(self, data: Any, cls: type) -> Any:
        fields = _fields(cls)
        if type(data) is not dict or set(data) != {name for name, _ in fields}:
            raise _Bad(f"not a {cls.__name__}")
        return cls(**{name: self.value(data[name], spec) for name, spec in fields})

    def value(self, data: Any, spec: Spec) -> Any:
        kind = spec[0]
        if kind == "scalar":
            if spec[1] is float and type(data) is int:
                return float(data)
            if type(data) is not spec[1]:
                raise _Bad(f"a {type(data).__name__} where a {spec[1].__name__} belongs")
            return data
        if kind == "none":
            if data is not None:
                raise _Bad(f"a {type(data).__name__} where nothing belongs")
            return None
        if kind == "union":
            for alternative in spec[1]:
                try:
                    return self.value(data, alternative)
                except _Bad:
                    continue
            raise _Bad(f"a {type(data).__name__} that fits no type there")
        if kind == "tuple":
            return tuple(self.value(item, spec[1]) for item in _list(data))
        if kind == "list":
            return [self.value(item, spec[1]) for item in _list(data)]
        if kind == "map":
            return {self.value(k, spec[1]): self.value(v, spec[2]) for k, v in _pairs(data)}
        if kind == "frozenset":
            return frozenset(self.value(item, spec[1]) for item in _list(data))
        if kind == "class":
            return self.record(data, spec[1])
        if kind == "compiled":
            return self.compiled(data)
        return _plain_value(data)

    def compiled(self, data: Any) -> Compiled:
        if type(data) is not dict:
            raise _Bad("not a compiled expression")
        return Compiled.restored(data, _at(self.recompilers, data.pop("compiler", None)))

    def table(self, data: Any) -> RouteTable:
        if type(data) is not dict:
            raise _Bad("not a policy table")
        entries: list[Entry] = []
        for index, method, rule_number, route_number, pattern in (_list(e) for e in _list(data["entries"])):
            rule = _at(self.rules, rule_number)
            if _int(index) != len(entries):
                raise _Bad("policy table entries out of order")
            entries.append(Entry(index, _str(method), _at(rule.routes, route_number), rule, _str(pattern)))
        gaps = [
            [[(_str(text), _ints(blockers)) for text, blockers in _pairs(gap)] for gap in _list(per_entry)]
            for per_entry in _list(data["gaps"])
        ]
        conflicts = [
            Conflict(_at(entries, denied), _at(entries, allowed), _str(example))
            for denied, allowed, example in (_list(c) for c in _list(data["conflicts"]))
        ]
        return RouteTable(
            entries,
            [_ints(s) for s in _list(data["deny_if_allowed"])],
            gaps,
            conflicts,
            [(_at(entries, entry), _str(text)) for entry, text in _pairs(data["uncovered_gaps"])],
            [_ints(s) for s in _list(data["asked_blockers"])],
        )
