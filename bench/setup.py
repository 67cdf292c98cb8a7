"""Shared start-up for the benchmarks: Django on a throwaway test database."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# The orders a benchmark places in process kick dispatch into memory, never into the broker
# a development worker reads (the test database's order ids mean other orders there).
os.environ.setdefault("CELERY_BROKER_URL", "memory://")


@contextmanager
def bench_database(suffix: str = "") -> Iterator[None]:
    """Create test_<name><suffix> on the configured server, migrate it, and drop it
    afterwards, so a benchmark never writes into the database you develop against (a
    suffix keeps it clear of the test run's own test_<name>, when a test starts one)."""
    import django

    django.setup()
    from django.db import connection

    if suffix:
        test = connection.settings_dict.setdefault("TEST", {})
        test["NAME"] = f"test_{connection.settings_dict['NAME']}{suffix}"
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        yield
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)
