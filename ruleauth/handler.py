"""The Lambda entry point: `ruleauth.handler.handler`.

The default handler is built here, at import (the cold start), from the deployed rules
(SPEC "Deploying"): a broken rules file fails the import with one message naming file,
line and rule, so the function never serves a request with half its rules. To build a
handler from code, use `make_handler` (ruleauth/runtime/lambda_handler.py).
"""

from __future__ import annotations

from ruleauth.runtime.lambda_handler import Handler, make_handler

__all__ = ["Handler", "handler", "make_handler"]

handler = make_handler()
