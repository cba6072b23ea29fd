"""`python -m thinkrl ...`: the same CLI as the `thinkrl` command (for a venv whose scripts are not on PATH)."""

import sys

from thinkrl.cli import main

sys.exit(main())
