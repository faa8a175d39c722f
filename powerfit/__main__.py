"""Allow ``python -m powerfit``."""

from powerfit.cli import entry

entry()
