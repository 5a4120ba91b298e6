"""The Lambda entry point: `ruleauth.handler.handler`.

The default handler is built here, at import (the cold start), from the deployed rules
(SPEC "Deploying"): a broken rules file fails the import with one message naming file,
line and rule, so the function never serves a request with half its rules. To build a
handler from code, use `make_handler` (ruleauth/runtime/lambda_handler.py).
"""

from __future__ import annotations

import gc

# The cold start makes objects (modules, the rule set) that all live as long as the process:
# with the collector paused while they are made, it does not walk them again and again as
# they grow (a sixth of the cold start's CPU time, bench/run.py), and frozen after, the
# collections requests trigger never walk them at all.
_collecting = gc.isenabled()
gc.disable()
try:
    from ruleauth.runtime.lambda_handler import Handler, make_handler

    handler = make_handler()
finally:
    if _collecting:
        gc.enable()
gc.freeze()

__all__ = ["Handler", "handler", "make_handler"]
