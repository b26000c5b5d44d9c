"""Settings of scripts/reliability_pg_restart.py: the test suite's, on the script's own
PostgreSQL cluster (PGHOST/PGPORT/PGDATABASE), with TENANCY_EAGER from the environment
so that the script's subprocesses (tenancy_migrate, the worker) go through Celery."""

import os

from tests.settings import *  # noqa: F403

TENANCY_EAGER = os.environ.get("TENANCY_EAGER", "1") == "1"
