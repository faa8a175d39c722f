"""Revisions of the measurement store's schema, oldest first by ``down_revision``."""
