"""Build one tenant's storage: its schema, its tables, its role; all or nothing.

The schema is created and marked for its owner (see
:mod:`tenancy._primitives.provisioning`), the tables are built from the
current migration state (:mod:`tenancy._migrating.executor`) and the per-tenant
role granted, in one transaction on the tenant's database: on PostgreSQL a
crash anywhere leaves nothing half-built, and a retry that finds the owner's
complete schema standing finishes instead of starting over.
"""

from __future__ import annotations

from tenancy._migrating import executor
from tenancy._primitives import conf, provisioning, storage
from tenancy._primitives.ddl import ddl_transaction


def build(schema: str, using: str, owner: str, *, authorize: bool = True) -> bool:
    """Build ``owner``'s storage under ``schema`` on ``using``; return False if it stood already.

    Raises ``ForeignObject`` when a schema, table prefix or role that is not
    ``owner``'s has the name. Opens its own transaction unless the caller has
    one (then everything commits with the caller's).
    """
    with ddl_transaction(using):
        if not provisioning.create_schema(schema, using, owner):
            return False
        executor.build_tables(schema, using)
        if authorize and storage.uses_schemas_alias(using) and conf.schema_authorization():
            provisioning.authorize(schema, using, owner)
    return True
