"""Reuses the catalog fixtures (tests/catalog_fixtures.py): demo_set, second_set, catalog_database_url."""

from __future__ import annotations

from tests.catalog_fixtures import catalog_database_url, demo_env, demo_set, second_set

__all__ = ["catalog_database_url", "demo_env", "demo_set", "second_set"]
