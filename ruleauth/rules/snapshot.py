"""Rules snapshots: the loaded rule set saved at build time, read at cold start.

A full load parses the YAML, parses and checks every CEL expression and analyses
the route table: about 55 ms for 100 rules, on top of about 25 ms importing
PyYAML and lark. `sam build` (the Makefile, `ruleauth snapshot`) saves the
loaded RuleSet beside the rules. A cold start whose rules files, ruleauth code,
Python version and load settings (settings.LOAD_SETTINGS: RULEAUTH_RESPONSE,
RULEAUTH_ENGINE, RULEAUTH_CACHE_MODE, RULEAUTH_CEL_INTERPRETER) are those the
snapshot was made under reads it instead, in a few milliseconds, and imports neither.
The loaded rules were checked under those settings (a simple response against the
cache mode, the engine's availability): a snapshot is never used under others.

Anything else is a full load with every check: no snapshot, one changed byte, a
damaged file. A snapshot exists only for rules that loaded without error, so a
broken rules file still stops the cold start with its file and line.

Expressions compiled to closures are stored as their checked parse tree
(cel_closures.PlainTree) and built again; those that run on cel-python's
interpreter or on cel-cpp are compiled again from their text. A snapshot is a
pickle, so it is code: as trusted as the bundle it ships in, read only from
beside the rules, and never from anywhere a request can write.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import sys
from collections.abc import Mapping
from pathlib import Path

from ruleauth.rules.files import rule_files
from ruleauth.rules.ruleset import RuleSet
from ruleauth.rules.settings import LOAD_SETTINGS, SOURCES, Settings

FORMAT = 2  # 2: keyed on the effective settings, RuleSet.settings
# RULEAUTH_SNAPSHOT=0 ignores snapshots: the way back should one ever misbehave.
SNAPSHOT_ENV = SOURCES["snapshot"][1]
_PACKAGE = Path(__file__).parent.parent


class SnapshotUnusable(Exception):
    """A snapshot that is there but cannot stand in for the rules; the message says why."""


def snapshot_path(rules: str | os.PathLike[str]) -> Path:
    """`rules/.ruleauth-snapshot` for a directory, `.NAME.ruleauth-snapshot` beside a file."""
    target = Path(rules)
    if target.is_dir():
        return target / ".ruleauth-snapshot"
    return target.with_name(f".{target.name}.ruleauth-snapshot")


def inputs(rules: str | os.PathLike[str], settings: Settings) -> dict[str, str]:
    """What a load of `rules` depends on, by name: each rules file, this code, Python, settings."""
    code = hashlib.sha256()
    for file in sorted(_PACKAGE.rglob("*.py")):
        data = file.read_bytes()
        code.update(f"{file.relative_to(_PACKAGE).as_posix()} {len(data)}\n".encode())
        code.update(data)
    found = {"Python": "{}.{}".format(*sys.version_info[:2]), "ruleauth's code": code.hexdigest()}
    for file in rule_files(rules):
        found[f"rules file {file.name}"] = hashlib.sha256(file.read_bytes()).hexdigest()
    for name, value in settings.load_key().items():
        found[f"setting {name}"] = value
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


def save(ruleset: RuleSet, rules: str | os.PathLike[str]) -> Path:
    """Write the snapshot of `ruleset`, which was loaded from `rules` under `ruleset.settings`."""
    path = snapshot_path(rules)
    header = (FORMAT, inputs(rules, ruleset.settings), str(_base(rules)))
    temporary = path.with_name(path.name + ".tmp")
    try:
        with temporary.open("wb") as handle:
            pickle.dump(header, handle, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.dump(ruleset, handle, protocol=pickle.HIGHEST_PROTOCOL)
        temporary.replace(path)  # a cold start never sees half a snapshot
    finally:
        temporary.unlink(missing_ok=True)
    return path


def read(
    rules: str | os.PathLike[str], environ: Mapping[str, str] | None = None, settings: Settings | None = None
) -> RuleSet | None:
    """The snapshot's rule set; None when there is none. Raises SnapshotUnusable when stale.

    `settings` (default: `environ`'s) are today's; a snapshot made under other load settings
    is stale, and its rule set carries today's settings for what the file does not say."""
    if settings is None:
        settings = Settings.from_environ(os.environ if environ is None else environ)
    path = snapshot_path(rules)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SnapshotUnusable(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        try:
            header = pickle.load(handle)
        except Exception:
            raise SnapshotUnusable(f"{path} is damaged") from None
        if not (isinstance(header, tuple) and len(header) == 3 and header[0] == FORMAT):
            raise SnapshotUnusable(f"{path} was made by another version of ruleauth")
        made, now = header[1], inputs(rules, settings)
        if made != now:
            raise SnapshotUnusable(f"{path} is stale: {_differences(made, now)} changed since it was made")
        try:
            ruleset = pickle.load(handle)
        except Exception as exc:
            raise SnapshotUnusable(f"{path} could not be read: {type(exc).__name__}: {exc}") from None
    if not isinstance(ruleset, RuleSet) or not isinstance(ruleset.settings, Settings):
        raise SnapshotUnusable(f"{path} holds no rule set")
    ruleset.settings = _today(ruleset.settings, settings)
    _moved(ruleset, Path(header[2]), _base(rules))
    return ruleset
