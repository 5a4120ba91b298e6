"""README's "Layout" lists every module of the package, each with its docstring's first paragraph,
so that a module added, removed or re-described shows up in review."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ruleauth"


def _summary(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return " ".join(doc.strip().split("\n\n")[0].split()).rstrip(".")


def _listed() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("\n## Layout\n") : readme.index("<!-- end of the generated layout -->")]
    tree = section.split("```text\n", 1)[1].split("```", 1)[0]
    listed: dict[str, str] = {}
    stage = ""
    for line in tree.splitlines()[1:]:
        found = re.match(r"^( +)(\S+) +(.*)$", line)
        assert found, f"README Layout: a row without a description: {line!r}"
        indent, name, what = found.groups()
        if len(indent) == 2 and name.endswith("/"):
            stage = name
        elif len(indent) == 2:
            listed[name] = what
        else:
            listed[stage + name] = what
    return listed


def test_the_readme_layout_lists_each_module_once_with_its_docstring_summary():
    modules = {
        path.relative_to(PACKAGE).as_posix(): _summary(path)
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "__init__.py" or path.parent == PACKAGE
    }
    assert _listed() == modules
