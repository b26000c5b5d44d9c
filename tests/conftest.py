"""Fixtures shared by the whole suite: tenants on the real database under test."""

from __future__ import annotations

import itertools

import pytest
from django.db import connection

import tenancy
from tenancy import provisioning, storage

_names = itertools.count()


@pytest.fixture(autouse=True)
def _fresh_class_cache():
    tenancy.clear_cache()
    yield
    tenancy.clear_cache()


@pytest.fixture
def make_tenant(transactional_db):
    """Create ready tenants (eager lifecycle) and drop their storage afterwards."""
    from tests.testapp.models import Customer

    created = []

    def make(name: str | None = None, **fields):
        tenant = Customer.objects.create(name=name or f"t{next(_names)}", **fields)
        created.append((tenant.db_schema, tenant.database))
        tenant.refresh_from_db()
        return tenant

    yield make
    for schema, database in created:
        provisioning.drop(schema, database)


@pytest.fixture
def tenant(make_tenant):
    return make_tenant("acme")


def on_postgresql() -> bool:
    return storage.uses_schemas(connection)
