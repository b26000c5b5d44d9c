"""The runnable example project: a SaaS whose tenants are ``example.Customer``.

``celery -A worker worker -l info`` runs its Celery worker; the app is loaded
with the package so ``shared_task`` tasks (``tenancy.tasks``) bind to it.
"""

from worker.celery import app as celery_app

__all__ = ("celery_app",)
