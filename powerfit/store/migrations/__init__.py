"""Alembic migration scripts of the measurement store (shipped inside the package).

The repository's top-level ``migrations`` is a link to this folder, so that
``alembic upgrade head`` from the repository root and an installed powerfit
(:func:`powerfit.store.schema.ensure_schema`) run the same scripts.
"""
