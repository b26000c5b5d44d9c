"""What every benchmark process shares: the database server, the stage, no debug."""

import os

DATABASE = {
    "NAME": os.environ.get("BENCH_PG_NAME", "bench_default"),
    "USER": os.environ.get("PGUSER", "postgres"),
    "PASSWORD": os.environ.get("PGPASSWORD", ""),
    "HOST": os.environ.get("PGHOST", "127.0.0.1"),
    "PORT": os.environ.get("PGPORT", "5432"),
}

SECRET_KEY = "benchmarks-only"
DEBUG = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ALLOWED_HOSTS = ["*"]

#: The migrations of the crm app: the full history, or a copy that stops earlier
#: (see benchmarks.stages), matching BENCH_CRM_STAGE.
CRM_MIGRATIONS = os.environ.get("BENCH_CRM_MIGRATIONS")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
