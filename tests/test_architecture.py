"""Data flows one way through ruleauth's stages: no import cycle among its modules,
and every import runs in an allowed direction between stages.

The graph is read from the source with the AST, so it counts every import: at module level,
inside functions, and under TYPE_CHECKING (a type-only import is still a dependency a reader
must follow, and the next edit turns it into a runtime one).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ruleauth"

# The stages, in the order a request's data flows, and which stages each may import. A module's
# stage is its subpackage, with two exceptions: cache, errors, model and reasons ("shared", imported by every
# stage, importing nothing of ruleauth), and the rules loader and snapshot reader ("load"): they
# assemble a RuleSet from the rule definitions (rules/) and the policy table (policy/), which
# itself reads the rule definitions. The entry points (handler, __main__) are their own stages.
SHARED = {"ruleauth.cache", "ruleauth.errors", "ruleauth.model", "ruleauth.reasons"}
LOAD = {"ruleauth.rules.loader", "ruleauth.rules.snapshot"}
ALLOWED: dict[str, set[str]] = {
    "shared": set(),
    "cel": {"shared"},
    "jwt": {"shared"},
    "rules": {"shared", "cel"},
    "policy": {"shared", "cel", "rules"},
    "load": {"shared", "cel", "jwt", "rules", "policy"},
    "runtime": {"shared", "cel", "jwt", "rules", "policy", "load"},
    "tools": {"shared", "cel", "jwt", "rules", "policy", "load", "runtime"},
    "handler": {"shared", "rules", "runtime"},
    "__main__": {"tools"},
    # ruleauth/__init__.py, the public API: it names what it re-exports only for type checkers,
    # and imports each by name on first use, so importing the package imports no stage.
    "package": {"shared", "jwt", "rules", "load", "runtime"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The ruleauth module an imported name lives in (`ruleauth.a.b.C` → `ruleauth.a.b`)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported ruleauth module, line) for every import statement anywhere in the file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from ruleauth.cel import evaluation` imports the submodule, not the package.
            names = [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            if not name.startswith("ruleauth"):
                continue
            target = _resolve(name, modules)
            if target is not None and target != module:
                found.append((target, node.lineno))
    return found


def _graph() -> dict[str, dict[str, int]]:
    modules = _modules()
    graph: dict[str, dict[str, int]] = {m: {} for m in modules}
    for module, path in modules.items():
        for target, line in _imports(module, path, modules):
            graph[module].setdefault(target, line)
    # A subpackage's __init__ runs before any of its modules, but the __init__ files are empty
    # (cold start), so they add no edge; assert it rather than assume it.
    return graph


def _stage(module: str) -> str:
    if module in SHARED:
        return "shared"
    if module in LOAD:
        return "load"
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    if len(parts) == 2 and parts[1] in ("handler", "__main__"):
        return parts[1]
    return parts[1]


def _cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def _where(graph: dict[str, dict[str, int]], source: str, target: str) -> str:
    return f"{_modules()[source].relative_to(PACKAGE.parent)}:{graph[source][target]} imports {target}"


def test_the_graph_sees_imports_inside_functions_and_under_type_checking(tmp_path):
    graph = _graph()
    assert len(graph) > 40
    assert "ruleauth.runtime.authorizer" in graph["ruleauth.runtime.lambda_handler"]  # at module level
    assert "ruleauth.tools.coverage" in graph["ruleauth.tools.cli"]  # inside a function only
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "def f():\n    from ruleauth.model import Request\n"
        "if TYPE_CHECKING:\n    import ruleauth.errors\n"
        "from ruleauth.cel import evaluation\n"
    )
    modules = _modules()
    assert sorted(_imports("ruleauth.sample", sample, modules), key=lambda found: found[1]) == [
        ("ruleauth.model", 3),
        ("ruleauth.errors", 5),
        ("ruleauth.cel.evaluation", 6),
    ]


def test_the_allowed_directions_between_stages_form_no_cycle():
    stage_graph = {stage: dict.fromkeys(allowed, 0) for stage, allowed in ALLOWED.items()}
    assert _cycles(stage_graph) == []
    assert all(stage not in allowed for stage, allowed in ALLOWED.items())


def test_every_module_is_in_a_stage_of_the_table():
    assert {_stage(m) for m in _graph()} <= set(ALLOWED)


def test_no_import_cycle_among_ruleauth_modules():
    graph = _graph()
    cycles = _cycles(graph)
    described = [[_where(graph, a, b) for a in group for b in group if b in graph[a]] for group in cycles]
    assert cycles == [], described


def test_every_import_runs_in_an_allowed_direction_between_stages():
    graph = _graph()
    wrong = []
    for source, targets in graph.items():
        for target in targets:
            a, b = _stage(source), _stage(target)
            if a != b and b not in ALLOWED[a]:
                wrong.append(f"{_where(graph, source, target)} ({a} → {b})")
    assert wrong == []


def test_nothing_imports_the_tools_but_the_command_line_entry_point():
    graph = _graph()
    users = sorted(
        f"{_where(graph, s, t)}"
        for s, targets in graph.items()
        for t in targets
        if _stage(t) == "tools" and _stage(s) != "tools"
    )
    assert users == ["ruleauth/__main__.py:5 imports ruleauth.tools.cli"]


def test_the_subpackage_init_files_import_nothing():
    graph = _graph()
    inits = [m for m, p in _modules().items() if p.name == "__init__.py" and m != "ruleauth"]
    assert inits and all(graph[m] == {} for m in inits)
