"""`python -m ruleauth`: the same as the `ruleauth` command."""

import sys

from ruleauth.tools.cli import main

sys.exit(main())
