"""Settings of the library, each read at call time so ``override_settings`` works.

Every ``TENANCY_*`` setting has one getter here with its documented default;
nothing else in the package reads ``django.conf.settings`` for them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

#: Default prefix of a tenant's schema (PostgreSQL) or table prefix (other backends).
DEFAULT_SCHEMA_PREFIX = "tenant_"
#: Default number of tenants whose model classes a process keeps (LRU).
DEFAULT_MODEL_CACHE_SIZE = 1000
#: Default seconds ``dispatch()`` may spend connecting to the broker.
DEFAULT_PUBLISH_CONNECT_TIMEOUT = 1.0
#: Default seconds a tenant task waits for its tenant to be ready before it gives up.
DEFAULT_TASK_READY_TIMEOUT = 300.0
#: Default retry policy of ``dispatch()``: one more attempt, no sleep (the reconciler
#: is the real retry; a request must not wait for a broker that is down).
DEFAULT_PUBLISH_RETRY_POLICY: dict[str, Any] = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0,
    "interval_max": 0,
}


def tenant_model_label() -> str:
    """Return ``TENANCY_TENANT_MODEL`` ("app_label.ModelName"); required."""
    label = getattr(settings, "TENANCY_TENANT_MODEL", None)
    if not label:
        raise ImproperlyConfigured(
            "TENANCY_TENANT_MODEL is not set: add TENANCY_TENANT_MODEL = "
            "'yourapp.YourTenant' to settings, naming a subclass of "
            "tenancy.models.AbstractTenant."
        )
    if not isinstance(label, str) or label.count(".") != 1:
        raise ImproperlyConfigured(
            f"TENANCY_TENANT_MODEL must have the form 'app_label.ModelName', not {label!r}."
        )
    return label


def schema_prefix() -> str:
    """Return ``TENANCY_SCHEMA_PREFIX`` (default ``"tenant_"``)."""
    return str(getattr(settings, "TENANCY_SCHEMA_PREFIX", DEFAULT_SCHEMA_PREFIX))


def model_cache_size() -> int:
    """Return ``TENANCY_MODEL_CACHE_SIZE``: tenants whose classes stay cached (default 1000)."""
    size = getattr(settings, "TENANCY_MODEL_CACHE_SIZE", DEFAULT_MODEL_CACHE_SIZE)
    if not isinstance(size, int) or size < 1:
        raise ImproperlyConfigured(
            f"TENANCY_MODEL_CACHE_SIZE must be a positive integer, not {size!r}."
        )
    return size


def eager() -> bool:
    """Return ``TENANCY_EAGER``: run the lifecycle inline instead of on a worker (default False)."""
    return bool(getattr(settings, "TENANCY_EAGER", False))


def default_database() -> str:
    """Return the first alias of ``TENANCY_DATABASES`` (the fallback queue name's database)."""
    aliases = getattr(settings, "TENANCY_DATABASES", None) or ["default"]
    return str(aliases[0])


def celery_queue() -> str | None:
    """Return ``TENANCY_CELERY_QUEUE``: the queue of lifecycle tasks (default: Celery's default)."""
    return getattr(settings, "TENANCY_CELERY_QUEUE", None) or None


def publish_connect_timeout() -> float:
    """Return ``TENANCY_PUBLISH_CONNECT_TIMEOUT``: seconds ``dispatch()`` may spend
    connecting to the broker (default 1), so a broker that is down holds no request
    longer than that: the pending row or tombstone stays and the reconciler resends."""
    seconds = getattr(settings, "TENANCY_PUBLISH_CONNECT_TIMEOUT", DEFAULT_PUBLISH_CONNECT_TIMEOUT)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise ImproperlyConfigured(
            "TENANCY_PUBLISH_CONNECT_TIMEOUT must be a positive number of seconds, "
            f"not {seconds!r}."
        )
    return float(seconds)


def publish_retry_policy() -> dict[str, Any]:
    """Return ``TENANCY_PUBLISH_RETRY_POLICY``: kombu's retry policy for ``dispatch()``'s
    publishes and (re)connections, over :data:`DEFAULT_PUBLISH_RETRY_POLICY` (a dropped
    connection is reconnected and the message sent once more, without sleeping)."""
    policy = getattr(settings, "TENANCY_PUBLISH_RETRY_POLICY", None) or {}
    if not isinstance(policy, dict):
        raise ImproperlyConfigured(
            "TENANCY_PUBLISH_RETRY_POLICY must be a dict of kombu retry options "
            f"(max_retries, interval_start, interval_step, interval_max), not {policy!r}."
        )
    return {**DEFAULT_PUBLISH_RETRY_POLICY, **policy}


def listen() -> bool | None:
    """Return ``TENANCY_LISTEN``: whether waits use PostgreSQL ``LISTEN`` (True), poll
    (False), or decide per database (None, the default: not behind a pooler)."""
    value = getattr(settings, "TENANCY_LISTEN", None)
    if value is not None and not isinstance(value, bool):
        raise ImproperlyConfigured(f"TENANCY_LISTEN must be True, False or None, not {value!r}.")
    return value


def max_retries() -> int:
    """Return ``TENANCY_MAX_RETRIES``: retries of a transient failure before ``failed`` (5)."""
    return int(getattr(settings, "TENANCY_MAX_RETRIES", 5))


def retry_backoff() -> float:
    """Return ``TENANCY_RETRY_BACKOFF``: seconds before the first retry, doubled each time (2)."""
    return float(getattr(settings, "TENANCY_RETRY_BACKOFF", 2.0))


def retry_backoff_max() -> float:
    """Return ``TENANCY_RETRY_BACKOFF_MAX``: the longest wait between two retries, seconds (300)."""
    return float(getattr(settings, "TENANCY_RETRY_BACKOFF_MAX", 300.0))


def reconcile_grace() -> float:
    """Return ``TENANCY_RECONCILE_GRACE``: seconds a tenant may stay pending before the
    reconciler re-enqueues it (60), so a task still in the queue is not doubled needlessly."""
    return float(getattr(settings, "TENANCY_RECONCILE_GRACE", 60.0))


def task_ready_timeout() -> float:
    """Return ``TENANCY_TASK_READY_TIMEOUT``: seconds a ``tenant_task`` keeps retrying while
    its tenant is pending, provisioning or moving, from its first attempt, before it
    raises ``TenantNotReady`` (default 300)."""
    seconds = getattr(settings, "TENANCY_TASK_READY_TIMEOUT", DEFAULT_TASK_READY_TIMEOUT)
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ImproperlyConfigured(
            f"TENANCY_TASK_READY_TIMEOUT must be a number of seconds (>= 0), not {seconds!r}."
        )
    return float(seconds)


def lock_wait() -> float:
    """Return ``TENANCY_LOCK_WAIT``: seconds a task waits for another holder of the
    tenant's lock before leaving the tenant to it (10)."""
    return float(getattr(settings, "TENANCY_LOCK_WAIT", 10.0))


def pool_size() -> int:
    """Return ``TENANCY_POOL_SIZE``: schemas kept built ahead of signups per database
    (PostgreSQL only; default 0, no pool)."""
    return int(getattr(settings, "TENANCY_POOL_SIZE", 0))


#: Resolvers that ``TENANCY_TENANT_RESOLVER`` may name besides a dotted path.
TENANT_RESOLVERS = ("subdomain", "domain", "header")


def tenant_resolver() -> str:
    """Return ``TENANCY_TENANT_RESOLVER``: how ``TenantMiddleware`` finds the tenant
    of a request: ``"subdomain"`` (default), ``"domain"``, ``"header"``, or the
    dotted path of a callable ``(request) -> tenant | None``."""
    resolver = getattr(settings, "TENANCY_TENANT_RESOLVER", "subdomain")
    if not isinstance(resolver, str) or (resolver not in TENANT_RESOLVERS and "." not in resolver):
        raise ImproperlyConfigured(
            f"TENANCY_TENANT_RESOLVER must be one of {', '.join(map(repr, TENANT_RESOLVERS))} "
            f"or the dotted path of a callable (request) -> tenant | None, not {resolver!r}."
        )
    return resolver


def base_domain() -> str | None:
    """Return ``TENANCY_BASE_DOMAIN``: the domain whose subdomains are tenants, e.g.
    ``"example.com"`` (default None; required by the ``"subdomain"`` resolver)."""
    domain = getattr(settings, "TENANCY_BASE_DOMAIN", None)
    return str(domain).strip(".").lower() if domain else None


def public_subdomains() -> frozenset[str]:
    """Return ``TENANCY_PUBLIC_SUBDOMAINS``: subdomains of the base domain that serve
    no tenant, like the bare domain (default ``("www",)``)."""
    return frozenset(s.lower() for s in getattr(settings, "TENANCY_PUBLIC_SUBDOMAINS", ("www",)))


def domain_field() -> str:
    """Return ``TENANCY_DOMAIN_FIELD``: the tenant model's field holding a tenant's full
    host name, for the ``"domain"`` resolver (default ``"domain"``)."""
    return str(getattr(settings, "TENANCY_DOMAIN_FIELD", "domain"))


def tenant_header() -> str:
    """Return ``TENANCY_TENANT_HEADER``: the request header naming the tenant, for the
    ``"header"`` resolver (default ``"X-Tenant"``)."""
    return str(getattr(settings, "TENANCY_TENANT_HEADER", "X-Tenant"))


def tenant_lookup_field() -> str | None:
    """Return ``TENANCY_TENANT_LOOKUP_FIELD``: the field matched against a subdomain or
    header, overriding the one the tenant model declares or its natural key names
    (default None: see ``tenancy._primitives.lookup``)."""
    field = getattr(settings, "TENANCY_TENANT_LOOKUP_FIELD", None)
    return None if field is None else str(field)


def serve_behind() -> bool:
    """Return ``TENANCY_SERVE_BEHIND``: whether ``TenantMiddleware`` serves a ready tenant
    whose schema lacks migrations of the running code (default True: expand/contract
    deploys); False answers the 503 page until ``tenancy_migrate`` brings it current."""
    value = getattr(settings, "TENANCY_SERVE_BEHIND", True)
    if not isinstance(value, bool):
        raise ImproperlyConfigured(f"TENANCY_SERVE_BEHIND must be True or False, not {value!r}.")
    return value


def retry_after() -> int:
    """Return ``TENANCY_RETRY_AFTER``: seconds a client is told to wait (``Retry-After``)
    before asking again for a workspace that is being set up (5)."""
    seconds = getattr(settings, "TENANCY_RETRY_AFTER", 5)
    if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds < 0:
        raise ImproperlyConfigured(
            f"TENANCY_RETRY_AFTER must be a whole number of seconds (>= 0), not {seconds!r}."
        )
    return seconds


def drop_batch() -> int:
    """Return ``TENANCY_DROP_BATCH``: tables dropped per transaction when a big schema is
    dropped (default 200), so one drop never needs more locks than
    ``max_locks_per_transaction`` allows."""
    return int(getattr(settings, "TENANCY_DROP_BATCH", 200))


def schema_authorization() -> bool:
    """Return ``TENANCY_SCHEMA_AUTHORIZATION``: give each tenant schema its own database
    role (PostgreSQL; default False), so a session with that role reads only its tenant."""
    return bool(getattr(settings, "TENANCY_SCHEMA_AUTHORIZATION", False))


def databases() -> list[str]:
    """Return ``TENANCY_DATABASES``: the aliases that may hold tenant schemas (["default"])."""
    aliases = getattr(settings, "TENANCY_DATABASES", None) or ["default"]
    return [str(alias) for alias in aliases]


def placement() -> str | None:
    """Return ``TENANCY_PLACEMENT``: dotted path of ``callable(tenant, aliases) -> alias``
    choosing a new tenant's database (default None: the alias with the fewest tenants)."""
    return getattr(settings, "TENANCY_PLACEMENT", None) or None


def user_model_label() -> str:
    """Return ``TENANCY_USER_MODEL`` ("app_label.ModelName"): the tenant user template;
    required by ``tenancy.auth``."""
    label = getattr(settings, "TENANCY_USER_MODEL", None)
    if not label:
        raise ImproperlyConfigured(
            "TENANCY_USER_MODEL is not set: tenant users need TENANCY_USER_MODEL = "
            "'yourapp.YourUser', naming a subclass of tenancy.auth.AbstractTenantUser."
        )
    if not isinstance(label, str) or label.count(".") != 1:
        raise ImproperlyConfigured(
            f"TENANCY_USER_MODEL must have the form 'app_label.ModelName', not {label!r}."
        )
    return label


def authentication_backends() -> list[str]:
    """Return ``TENANCY_AUTHENTICATION_BACKENDS``: dotted paths of the backends that
    authenticate tenant users (default ``["tenancy.auth.TenantUserBackend"]``)."""
    paths = getattr(settings, "TENANCY_AUTHENTICATION_BACKENDS", ["tenancy.auth.TenantUserBackend"])
    if isinstance(paths, str) or not all(isinstance(path, str) for path in paths):
        raise ImproperlyConfigured(
            f"TENANCY_AUTHENTICATION_BACKENDS must be a list of dotted paths, not {paths!r}."
        )
    return list(paths)


def login_url() -> str:
    """Return ``TENANCY_LOGIN_URL``: where a tenant user who must log in is sent (default
    None: Django's ``LOGIN_URL``)."""
    return str(getattr(settings, "TENANCY_LOGIN_URL", None) or settings.LOGIN_URL)


def file_storages() -> list[str]:
    """Return ``TENANCY_FILE_STORAGES``: the aliases of ``STORAGES`` from which a dropped
    tenant's files (its ``tenants/<schema>/<incarnation>/``) are removed (default
    ``["default"]``; ``[]`` keeps them)."""
    aliases = getattr(settings, "TENANCY_FILE_STORAGES", ["default"])
    if isinstance(aliases, str) or not all(isinstance(alias, str) for alias in aliases):
        raise ImproperlyConfigured(
            f"TENANCY_FILE_STORAGES must be a list of aliases of STORAGES, not {aliases!r}."
        )
    return list(aliases)
