"""The prebuilt CEL parser: used when its cache file matches, never a reason for a failed cold start."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT, check=True
    )
    return done.stdout.strip()


def test_the_prebuilt_parser_parses_exactly_like_cel_pythons_own(tmp_path):
    out = run(f"""
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
    """)
    assert out == "same"


@pytest.mark.parametrize("damaged", [False, True])
def test_a_missing_or_damaged_cache_falls_back_to_analysing_the_grammar(tmp_path, damaged):
    out = run(f"""
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
    """)
    assert out == "True"
