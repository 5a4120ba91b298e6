"""The CEL parser: cel-python's grammar, prebuilt, without importing cel-python.

cel-python builds its lark LALR parser from the grammar on the first
`celpy.Environment()`, in every process (~100 ms). lark can save the built parser
to a cache file and load it in a few milliseconds. A Lambda bundle is read-only,
so the file is made at build time (`python -m ruleauth.cel_parser`, run by the
Makefile) and only read at run time. Its name carries lark's version and a hash
of the grammar: a file made for another lark or grammar is simply not found,
and the parser is built as usual.

Rules are parsed here (`parse`), so a rule set whose expressions all compile to
closures never imports cel-python (~30 ms and several MB of a cold start); when
one needs the interpreter, `install` hands it this same parser.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path

import lark

# Found without importing celpy: the build step runs on the build host's Python against a
# bundle whose compiled dependencies are for Lambda's.
_CELPY = importlib.util.find_spec("celpy")
GRAMMAR = Path(next(iter(_CELPY.submodule_search_locations))) / "cel.lark" if _CELPY else Path("cel.lark")
PREBUILT_DIR = Path(__file__).parent / "_prebuilt"


def ambiguous_literals(token: lark.Token) -> lark.Token:
    """cel-python's lexer callback (CELParser.ambiguous_literals): `true`/`false` are literals."""
    if token.value in ("true", "false"):
        return lark.Token("BOOL_LIT", token.value)
    return token


def cache_path() -> Path:
    digest = hashlib.sha256(GRAMMAR.read_bytes()).hexdigest()[:16]
    return PREBUILT_DIR / f"cel-parser-lark{lark.__version__}-{digest}.cache"


def _build(cache: Path | None) -> lark.Lark:
    # The same options cel-python uses (celpy.celparser.CELParser.__init__), plus the cache.
    return lark.Lark(
        GRAMMAR.read_text(),
        parser="lalr",
        start="expr",
        debug=True,
        g_regex_flags=re.M,
        lexer_callbacks={"IDENT": ambiguous_literals},
        propagate_positions=True,
        maybe_placeholders=False,
        priority="invert",
        tree_class=lark.Tree,
        **({"cache": str(cache)} if cache is not None else {}),
    )


class CELSyntaxError(ValueError):
    """The text is not CEL; the message is the first line of lark's own description."""


# The process's one parser and whether it was prebuilt, made on first use (cold-start cache).
_PARSER: list[tuple[lark.Lark, bool]] = []


def parser() -> lark.Lark:
    if not _PARSER:
        path = cache_path()
        built = None
        if path.is_file():
            try:
                built = _build(path)
            except Exception:  # a damaged cache file must never stop the cold start
                built = None
        _PARSER.append((built, True) if built is not None else (_build(None), False))
    return _PARSER[0][0]


def prebuilt() -> bool:
    """Whether this process's parser came from a matching prebuilt file."""
    parser()
    return _PARSER[0][1]


def parse(text: str) -> lark.Tree:
    """The parse tree cel-python's `Environment.compile` would give, or CELSyntaxError."""
    try:
        return parser().parse(text)
    except (lark.exceptions.UnexpectedToken, lark.exceptions.UnexpectedCharacters) as exc:
        message = exc.get_context(text)  # as cel-python reports it: the source line, a caret
    except (lark.exceptions.LexError, lark.exceptions.ParseError) as exc:
        message = str(exc.args[0]) if exc.args else ""
    first = message.strip().splitlines()[0] if message.strip() else "syntax error"
    raise CELSyntaxError(first) from None


def install() -> bool:
    """Give cel-python this parser (before its first Environment); True if it was prebuilt."""
    from celpy.celparser import CELParser

    if CELParser.CEL_PARSER is None:
        CELParser.CEL_PARSER = parser()
    return prebuilt()


def build() -> Path:
    """Write the cache file for this lark and grammar (at build time, where files are writable)."""
    path = cache_path()
    PREBUILT_DIR.mkdir(parents=True, exist_ok=True)
    for stale in PREBUILT_DIR.glob("cel-parser-*.cache"):
        if stale != path:
            stale.unlink()
    _build(path)
    return path


if __name__ == "__main__":
    print(build())
