"""`python -m dashboards.command`: the `shadowjudge` command without the installed script."""

import sys

from dashboards.command.main import main

sys.exit(main())
