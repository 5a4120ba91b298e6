"""`python -m ruleauth`: the same as the `ruleauth` command."""

import sys

from .cli import main

sys.exit(main())
