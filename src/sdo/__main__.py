"""``python -m sdo`` is ``sdo``."""

import sys

from sdo.cli import main

sys.exit(main())
