"""Allow ``python -m powerfit``."""

import sys

from powerfit.cli import main

sys.exit(main())
