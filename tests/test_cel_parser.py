"""The prebuilt CEL parser: used when its cache file matches, never a reason for a failed cold start."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(code: str, cache_home: Path, **environ: str) -> str:
    """Run `code` in a fresh interpreter whose user cache directory is `cache_home`."""
    env = {k: v for k, v in os.environ.items() if k not in ("LOCALAPPDATA", "LAMBDA_TASK_ROOT")}
    env.update(XDG_CACHE_HOME=str(cache_home), **environ)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT, check=True, env=env
    )
    return done.stdout.strip()


def test_the_prebuilt_parser_parses_exactly_like_cel_pythons_own(tmp_path):
    out = run(
        f"""
        from pathlib import Path
        from ruleauth.cel import parser as cel_parser
        cel_parser.PREBUILT_DIR = Path({str(tmp_path)!r})
        built = cel_parser.build()
        assert all(path.is_file() for path in built) and cel_parser.install()
        import celpy
        from celpy.celparser import CELParser
        prebuilt = celpy.Environment()
        sources = ["int(token) % 2 == 1", "claims.groups.exists(g, g.startsWith('a')) || true", "[1, 2][0] + 3u == 4u"]
        trees = [prebuilt.compile(s) for s in sources]
        CELParser.CEL_PARSER = None
        own = celpy.Environment()
        assert trees == [own.compile(s) for s in sources]
        # The parser without positions (for compiling rules) gives the same trees, spans aside.
        assert cel_parser.prebuilt(positions=False)
        assert trees == [cel_parser.parse(s, positions=False) for s in sources]
        print("same")
    """,
        tmp_path / "cache",
    )
    assert out == "same"


@pytest.mark.parametrize("damaged", [False, True])
def test_a_missing_or_damaged_cache_falls_back_to_analysing_the_grammar(tmp_path, damaged):
    out = run(
        f"""
        from pathlib import Path
        from ruleauth.cel import parser as cel_parser
        cel_parser.PREBUILT_DIR = Path({str(tmp_path)!r})
        if {damaged}:  # lark ignores a damaged file and analyses the grammar as usual
            cel_parser.PREBUILT_DIR.mkdir(exist_ok=True)
            for positions in (True, False):
                cel_parser.cache_path(positions).write_bytes(b"not a lark cache")
        else:
            assert not cel_parser.prebuilt(positions=False) and not cel_parser.install()
        from ruleauth.cel.compiler import Compiler
        print(Compiler().compile("1 + 1 == 2").evaluate({{}}))
    """,
        tmp_path / "cache",
    )
    assert out == "True"


NOT_SHIPPED = """
    from pathlib import Path
    from ruleauth.cel import parser as cel_parser
    cel_parser.PREBUILT_DIR = Path({prebuilt!r})  # an install that ships no parser file
    trees = [cel_parser.parse("int(token) % 2 == 1", positions=p) for p in (True, False)]
    assert trees[0] == cel_parser.parse("int(token) % 2 == 1")
    print(cel_parser.prebuilt(True), cel_parser.prebuilt(False))
"""


def test_an_install_without_a_shipped_parser_saves_it_in_the_user_cache_for_the_next_process(tmp_path):
    code = NOT_SHIPPED.format(prebuilt=str(tmp_path / "none"))
    assert run(code, tmp_path / "cache") == "False False"  # built from the grammar, then saved
    saved = sorted(p.name for p in (tmp_path / "cache" / "ruleauth").iterdir())
    assert len(saved) == 2 and all(name.startswith("cel-parser") and name.endswith(".cache") for name in saved)
    assert run(code, tmp_path / "cache") == "True True"  # the next process loads what was saved
    assert not (tmp_path / "none").exists()


def test_an_unwritable_or_damaged_user_cache_never_stops_the_parser(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache directory would be")
    code = NOT_SHIPPED.format(prebuilt=str(tmp_path / "none"))
    assert run(code, blocked) == "False False"
    run(code, tmp_path / "cache")
    for saved in (tmp_path / "cache" / "ruleauth").iterdir():
        saved.write_bytes(b"not a lark cache")
    run(code, tmp_path / "cache")  # parses all the same (the script asserts the trees)
    # lark analysed the grammar again and wrote the files anew: the next process loads them.
    assert all(p.read_bytes() != b"not a lark cache" for p in (tmp_path / "cache" / "ruleauth").iterdir())
    assert run(code, tmp_path / "cache") == "True True"


def test_in_lambda_a_parser_not_shipped_is_built_and_nothing_is_written(tmp_path):
    code = NOT_SHIPPED.format(prebuilt=str(tmp_path / "none"))
    assert run(code, tmp_path / "cache", LAMBDA_TASK_ROOT=str(tmp_path)) == "False False"
    assert not (tmp_path / "cache").exists()
