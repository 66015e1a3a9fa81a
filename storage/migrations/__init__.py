"""Alembic migrations: ``env.py`` and the revisions in ``versions/``. Run them through ``storage.migrate``."""
