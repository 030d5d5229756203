"""``python -m bptt`` runs the command line."""

import sys

from bptt.cli import main

sys.exit(main())
