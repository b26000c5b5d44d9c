"""The 20 workload models as templates, at the stage ``BENCH_CRM_STAGE`` (default: final)."""

from benchmarks.workload import declare
from tenancy.models import TenantModel

declare(globals(), TenantModel)
