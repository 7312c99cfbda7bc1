"""The database clock that every deadline and due time is computed with.

All SQL that needs "now" calls ``relor_now()``: plain ``now()`` on PostgreSQL
(created by a migration) and a Python function registered on each SQLite
connection. API and scheduler processes with skewed clocks therefore agree, and
tests can move time by redefining that one function.
"""

from __future__ import annotations

import datetime

from django.db import connection
from django.db.backends.signals import connection_created
from django.dispatch import receiver

CREATE_POSTGRESQL_FUNCTION = """
CREATE OR REPLACE FUNCTION relor_now() RETURNS timestamptz
LANGUAGE sql STABLE AS $$ SELECT now() $$;
"""
DROP_POSTGRESQL_FUNCTION = "DROP FUNCTION IF EXISTS relor_now();"


def _sqlite_now() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%d %H:%M:%S.%f")


@receiver(connection_created)
def register_sqlite_clock(sender, connection, **kwargs) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function("relor_now", 0, _sqlite_now)


def db_now() -> datetime.datetime:
    """Return the database server's current time as an aware UTC datetime."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT relor_now()")
        value = cursor.fetchone()[0]

    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.astimezone(datetime.UTC)
