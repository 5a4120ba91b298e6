"""The CEL parsers: cel-python's grammar, prebuilt, without importing cel-python.

cel-python builds its lark LALR parser from the grammar on the first
`celpy.Environment()`, in every process (~100 ms). lark can save the built parser
to a cache file and load it in a few milliseconds. A Lambda bundle is read-only,
so the file is made at build time (`python -m ruleauth.cel.parser`, run by the
Makefile) and only read at run time. Its name carries lark's version and a hash
of the grammar: a file made for another lark or grammar is simply not found,
and the parser is built as usual. Outside Lambda (an installed wheel, whose
lark may not be the one any shipped file was made with), the first process
that builds it saves it in the user's cache directory for the next ones.

Rules are parsed here (`parse`), so a rule set whose expressions all compile to
closures never imports cel-python (~30 ms and several MB of a cold start); when
one needs the interpreter, `install` hands it this same parser.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import re
from pathlib import Path
from typing import Any, cast

import lark

from ruleauth.errors import LoadError

# Found without importing celpy: the build step runs on the build host's Python against a
# bundle whose compiled dependencies are for Lambda's.
_CELPY = importlib.util.find_spec("celpy")
GRAMMAR = Path(next(iter(_CELPY.submodule_search_locations or ()))) / "cel.lark" if _CELPY else Path("cel.lark")
PREBUILT_DIR = Path(__file__).parent.parent / "_prebuilt"


class DefineUse(lark.Tree[lark.Token]):
    """A `define:` inlined where a rule names it: a parenthesis that remembers the name.

    Its value is computed once per request activation, however many rules use it (a
    50-service API's `is_admin` was evaluated in 100 rules for each new caller).
    """

    def __init__(self, name: str, tree: lark.ParseTree, meta: Any = None):
        super().__init__("paren_expr", [tree], meta)
        self.define = name

    def __deepcopy__(self, memo: dict[int, Any]) -> DefineUse:
        tree = cast(lark.ParseTree, self.children[0])  # made with the define's tree
        return DefineUse(self.define, copy.deepcopy(tree, memo), self._meta)


def ambiguous_literals(token: lark.Token) -> lark.Token:
    """cel-python's lexer callback (CELParser.ambiguous_literals): `true`/`false` are literals."""
    if token.value in ("true", "false"):
        return lark.Token("BOOL_LIT", token.value)
    return token


def cache_path(positions: bool = True) -> Path:
    digest = hashlib.sha256(GRAMMAR.read_bytes()).hexdigest()[:16]
    kind = "" if positions else "-bare"
    return PREBUILT_DIR / f"cel-parser{kind}-lark{lark.__version__}-{digest}.cache"


def user_cache_path(positions: bool = True) -> Path | None:
    """Where an installed ruleauth keeps the parser it built: the user's cache directory
    (XDG_CACHE_HOME, else LOCALAPPDATA on Windows, else ~/.cache). None in Lambda, whose
    bundles ship it prebuilt and whose home is not writable. lark's cache file is a pickle,
    so only the user's own directory is used, never a shared one such as the temp dir."""
    if os.environ.get("LAMBDA_TASK_ROOT"):
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.environ.get("LOCALAPPDATA")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except RuntimeError:  # no home directory to be found
            return None
    return Path(base) / "ruleauth" / cache_path(positions).name


def _load(path: Path, positions: bool) -> lark.Lark | None:
    if not path.is_file():
        return None
    try:
        return _build(path, positions)
    except Exception:  # a damaged cache file must never stop the cold start
        return None


def _build_and_save(path: Path | None, positions: bool) -> lark.Lark:
    """Analyse the grammar; save the parser at `path` (whole or not at all) if one is given."""
    if path is None:
        return _build(None, positions)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:  # an unwritable cache directory costs only the saving
        return _build(None, positions)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    built = _build(partial, positions)  # lark writes the file after building (or logs why not)
    try:
        os.replace(partial, path)  # readers see the whole file or none
    except OSError:
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass
    return built


def _build(cache: Path | None, positions: bool = True) -> lark.Lark:
    # The same options cel-python uses (celpy.celparser.CELParser.__init__), plus the cache.
    # Without positions, trees carry no source spans: half the parse time, for deciding.
    return lark.Lark(
        GRAMMAR.read_text(),
        parser="lalr",
        start="expr",
        debug=True,
        g_regex_flags=re.M,
        lexer_callbacks={"IDENT": ambiguous_literals},
        propagate_positions=positions,
        maybe_placeholders=False,
        priority="invert",
        tree_class=lark.Tree,
        **({"cache": str(cache)} if cache is not None else {}),
    )


class CELSyntaxError(LoadError, ValueError):
    """The text is not CEL; the message says where parsing failed, what was expected there
    and, for the usual slips, the fix. `where` is the 1-based (line, column) in the text."""

    def __init__(self, message: str, where: tuple[int, int] | None = None):
        super().__init__(message)
        self.where = where


# The process's parsers, with and without positions, and whether each was prebuilt; made on
# first use (the cold-start cache).
_PARSERS: dict[bool, tuple[lark.Lark, bool]] = {}


def parser(positions: bool = True) -> lark.Lark:
    """The parser whose trees carry source positions (cel-python's interpreter and dry-run
    explanations need them), or the faster one without (compiling rules into closures)."""
    if positions not in _PARSERS:
        built = _load(cache_path(positions), positions)
        saved = user_cache_path(positions) if built is None else None
        if saved is not None:
            built = _load(saved, positions)
        _PARSERS[positions] = (built, True) if built is not None else (_build_and_save(saved, positions), False)
    return _PARSERS[positions][0]


def prebuilt(positions: bool = True) -> bool:
    """Whether this process's parser came from a matching prebuilt file (shipped, or saved
    in the user's cache by an earlier process)."""
    parser(positions)
    return _PARSERS[positions][1]


def parse(text: str, positions: bool = True) -> lark.ParseTree:
    """The parse tree cel-python's `Environment.compile` would give (without `meta` positions
    if `positions` is false), or CELSyntaxError."""
    try:
        return parser(positions).parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        from ruleauth.cel.syntax_hints import diagnose  # only when a rule fails to parse

        diagnosis = diagnose(parser(positions), text, exc)
        raise CELSyntaxError(diagnosis.message, diagnosis.where) from None
    except (lark.exceptions.LexError, lark.exceptions.ParseError) as exc:
        message = str(exc.args[0]) if exc.args else ""
    first = message.strip().splitlines()[0] if message.strip() else "syntax error"
    raise CELSyntaxError(first) from None


def install() -> bool:
    """Give cel-python the parser with positions (before its first Environment); its
    evaluator reads them when it reports an error. True if it was prebuilt."""
    from celpy.celparser import CELParser

    if CELParser.CEL_PARSER is None:
        CELParser.CEL_PARSER = parser()
    return prebuilt()


def build() -> list[Path]:
    """Write both cache files for this lark and grammar (at build time, where files are writable)."""
    paths = [cache_path(True), cache_path(False)]
    PREBUILT_DIR.mkdir(parents=True, exist_ok=True)
    for stale in PREBUILT_DIR.glob("cel-parser-*.cache"):
        if stale not in paths:
            stale.unlink()
    for path in paths:
        _build(path, positions=path == paths[0])
    return paths


if __name__ == "__main__":
    print(*build(), sep="\n")
