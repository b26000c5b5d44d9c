"""Building and dropping tenant storage directly in tests, as its owner would."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import pytest
from django.db import DatabaseError, connections, transaction

from tenancy._orchestration import building
from tenancy._primitives import ownership, provisioning, storage
from tests import citus_cluster

#: Tests of moves between two databases: refused on Citus by design.
not_on_citus_moves = pytest.mark.skipif(
    citus_cluster.active(),
    reason="Citus: tenancy_move between databases is refused (its freeze uses triggers, "
    "which Citus refuses on distributed tables); tests/test_citus.py tests the refusal "
    "and the online moves between nodes",
)


def owner_of(tenant: Any) -> str:
    """Return the ownership mark's owner of ``tenant``'s storage."""
    return ownership.tenant_owner(tenant.incarnation)


def build_storage(tenant: Any) -> bool:
    """Build ``tenant``'s storage (schema, tables) as the library would; False if it stood."""
    return building.build(tenant.db_schema, tenant.database, owner_of(tenant))


def drop_storage(tenant: Any) -> bool:
    """Drop ``tenant``'s storage as its owner; False if nothing of it was there."""
    return provisioning.drop_schema(tenant.db_schema, tenant.database, owner_of(tenant))


def drop_raw(name: str, alias: str = "default") -> None:
    """Drop a schema (or prefixed tables) by name, whoever built it, and the library's
    role of that name (roles outlive test databases): test clean-up only."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        if storage.uses_schemas(connection):
            cursor.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            if ownership.role_owner(name, alias).owner is not None:
                with suppress(DatabaseError), transaction.atomic(using=alias):
                    cursor.execute(f'DROP ROLE "{name}"')
            return
        tables = storage.prefixed_tables(name, alias)
    with connection.schema_editor() as editor:  # SQLite: foreign key checks off meanwhile
        for table in tables:
            editor.execute(f'DROP TABLE IF EXISTS "{table}"')
