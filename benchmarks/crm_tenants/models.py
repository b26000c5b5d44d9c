"""The 20 workload models as plain models, at the stage ``BENCH_CRM_STAGE`` (default: final)."""

from django.db import models

from benchmarks.workload import declare

declare(globals(), models.Model)
