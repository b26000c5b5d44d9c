"""The test project's own tenant tasks (tests/test_tenant_tasks.py); the worker
imports them through ``app.autodiscover_tasks()``."""

from tenancy.tasks import TENANT_DATABASE_QUEUE, tenant_task
from tests.testapp.models import Project

#: A queue no worker consumes: tests read the messages sent to it from Redis.
PROBE_QUEUE = "tenancy-tests-tenant-task-probe"


@tenant_task(queue=TENANT_DATABASE_QUEUE)
def record_run(tenant, label):
    """Leave a Project named ``label`` in the tenant: proof that it ran there, and how often."""
    Project.for_tenant(tenant).objects.create(name=label)
    return tenant.pk


@tenant_task(queue=PROBE_QUEUE)
def probe(tenant, *args, **kwargs):
    """Never run by a worker; its messages are inspected."""
    return tenant.pk


@tenant_task
def delete_own_tenant(tenant):
    """Delete the tenant mid-task, then use its tables: what a concurrent delete does."""
    Project.for_tenant(tenant).objects.create(name="before")
    type(tenant).objects.filter(pk=tenant.pk).delete()
    return Project.for_tenant(tenant).objects.count()


class ReadOnlyWhileMoving(Exception):
    """What psycopg2 raises on a write to a schema that is being moved (SQLSTATE 25006)."""

    pgcode = "25006"


@tenant_task
def write_while_moving(tenant):
    raise RuntimeError("the ORM's wrapper") from ReadOnlyWhileMoving("read-only while it moves")
