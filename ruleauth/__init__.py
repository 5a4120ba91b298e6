"""ruleauth: an AWS API Gateway Lambda authorizer driven by declarative YAML rules and CEL.

The Lambda handler is `ruleauth.handler.handler`; the command line is `ruleauth`.
For embedders, the names in `__all__` are importable from here (README "Embedding in
Python code"). Importing this package loads nothing: each name is imported on first
use, so a Lambda cold start pays only for what the handler module needs.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: importing this package imports nothing
if TYPE_CHECKING:  # the real types, for type checkers; at run time __getattr__ imports them
    from typing import Any

    from ruleauth.errors import BadEvent, CredentialError, Problem, RuleauthError, RulesError
    from ruleauth.jwt.verifier import JwtConfigError, JwtError
    from ruleauth.reasons import Outcome, Reason
    from ruleauth.rules.loader import load as load_rules
    from ruleauth.runtime.authorizer import Authorizer
    from ruleauth.runtime.lambda_handler import make_handler

__all__ = [  # noqa: RUF022 (grouped by purpose, not sorted)
    # Authorizing
    "Authorizer",
    "make_handler",
    # Loading rules
    "load_rules",
    # Vocabulary
    "Outcome",
    "Reason",
    # Errors
    "RuleauthError",
    "RulesError",
    "Problem",
    "BadEvent",
    "CredentialError",
    "JwtError",
    "JwtConfigError",
]

# name -> (module, attribute in that module)
_EXPORTS: dict[str, tuple[str, str]] = {
    "Authorizer": ("ruleauth.runtime.authorizer", "Authorizer"),
    "make_handler": ("ruleauth.runtime.lambda_handler", "make_handler"),
    "load_rules": ("ruleauth.rules.loader", "load"),
    "Outcome": ("ruleauth.reasons", "Outcome"),
    "Reason": ("ruleauth.reasons", "Reason"),
    "RuleauthError": ("ruleauth.errors", "RuleauthError"),
    "RulesError": ("ruleauth.errors", "RulesError"),
    "Problem": ("ruleauth.errors", "Problem"),
    "BadEvent": ("ruleauth.errors", "BadEvent"),
    "CredentialError": ("ruleauth.errors", "CredentialError"),
    "JwtError": ("ruleauth.jwt.verifier", "JwtError"),
    "JwtConfigError": ("ruleauth.jwt.verifier", "JwtConfigError"),
}


def __getattr__(name: str) -> Any:
    # Only the exported names: anything else (a subpackage such as `ruleauth.jwt`, a typo)
    # is the import system's business, so it must be an AttributeError here.
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'ruleauth' has no attribute {name!r}") from None
    from importlib import import_module

    value = getattr(import_module(module), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
