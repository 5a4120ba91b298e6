"""What the code and tests cite is in the repository: threat IDs in docs/threats.md, facts in docs/."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*ROOT.joinpath("ruleauth").rglob("*.py"), *ROOT.joinpath("tests").glob("*.py")])


def test_every_threat_id_a_test_or_comment_cites_is_a_row_of_docs_threats():
    rows = set(re.findall(r"^\| ([AEJKY]\d\d) \|", (ROOT / "docs" / "threats.md").read_text(), re.M))
    cited: dict[str, str] = {}
    for path in SOURCES:
        text = path.read_text()
        for found in re.findall(r"\btest_([AEJKY]\d\d)_", text) + re.findall(
            r"\(docs/threats\.md ([AEJKY]\d\d)\)", text
        ):
            cited.setdefault(found, path.name)
    assert len(cited) > 30
    assert {i: f for i, f in cited.items() if i not in rows} == {}


def test_no_code_or_doc_cites_a_file_outside_the_repository():
    texts = SOURCES + sorted(ROOT.joinpath("docs").glob("*.md")) + [ROOT / "README.md", ROOT / "pyproject.toml"]
    outside = re.compile(r"apigw-contract|security-catalogue|cel-engines\.md|\.\./shared/")
    assert [p.name for p in texts if p != Path(__file__) and outside.search(p.read_text())] == []


def test_no_code_comment_points_at_an_issue_the_repository_does_not_have():
    issue = re.compile(r"\bissue \d+", re.I)
    assert [p.name for p in SOURCES if p != Path(__file__) and issue.search(p.read_text())] == []


def test_every_relative_link_in_the_documentation_resolves_to_a_file_of_the_repository():
    """The documents are self-contained: a link to a page the repository does not ship is broken
    for every reader."""
    pages = [*sorted(ROOT.joinpath("docs").glob("*.md")), ROOT / "README.md", *sorted(ROOT.glob("*/README.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            path = target.split("#", 1)[0]
            if path and not re.match(r"^[a-z]+:", path) and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert broken == []
