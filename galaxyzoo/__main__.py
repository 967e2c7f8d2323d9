"""`python -m galaxyzoo` is the `galaxyzoo` command (MLproject entry points use this form)."""

import sys

from galaxyzoo.cli import main

sys.exit(main())
