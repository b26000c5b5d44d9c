"""The 20 workload models as templates, at the stage ``BENCH_CRM_STAGE`` (default: final)."""

from tenancy.models import TenantModel

from benchmarks.workload import declare

declare(globals(), TenantModel)
