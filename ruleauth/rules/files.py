"""Which files make a rule set: shared by the loader and rules snapshots."""

from __future__ import annotations

import os
from pathlib import Path

from ruleauth.errors import Problem, RulesError


def directory_rule_files(directory: Path) -> list[Path]:
    """A directory's rules files: its *.yaml/*.yml (not hidden) in byte order; [] if none."""
    return sorted(
        (
            p
            for p in directory.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix in (".yaml", ".yml")
        ),
        key=lambda p: os.fsencode(p.name),
    )


def rule_files(path: str | os.PathLike[str]) -> list[Path]:
    """The files a rules path names: the file itself, or a directory's *.yaml/*.yml in byte order."""
    target = Path(path)
    if target.is_dir():
        names = directory_rule_files(target)
        if not names:
            raise RulesError([Problem(f"no *.yaml or *.yml files in directory {target}")])
        return names
    if target.is_file():
        return [target]
    raise RulesError([Problem(f"rules path {target} does not exist")])
