"""System checks of the configuration (``manage.py check``), each with a stable ID and a hint.

The structural problems (E001 to E004) also raise ``ImproperlyConfigured`` in
``AppConfig.ready()`` (see ``tenancy._classes.validation``); the checks report them
too, so ``manage.py check --tag tenancy`` and a test calling a check function
with ``override_settings`` see every problem, each as one message:

========  ==============================================================
ID        Problem
========  ==============================================================
E001      ``TENANCY_TENANT_MODEL`` missing or not "app_label.ModelName"
E002      the tenant model is not installed or not an ``AbstractTenant``
E003      the tenant model does not define ``natural_key()``
E004      a relation between tenant models and shared models cannot work
E005      Celery not configured: no broker and not ``TENANCY_EAGER``
E006      ``TENANCY_MODEL_CACHE_SIZE`` not a positive integer
E007      ``TENANCY_DATABASES`` names an alias missing from ``DATABASES``
E008      ``TENANCY_USER_MODEL`` names no ``AbstractTenantUser`` template
E009      ``TenantAuthenticationMiddleware`` before the middleware it needs
E010      a ``TENANCY_AUTHENTICATION_BACKENDS`` entry does not import
E011      ``TENANCY_TASK_READY_TIMEOUT`` not a number of seconds (>= 0)
E012      the middleware's resolver has no tenant model field to find tenants by
E013      ``TENANCY_TEST_TENANT`` names fields the tenant model lacks
E014      ``TENANCY_SERVE_BEHIND`` not True or False
E015      Citus: a shared table that tenant tables reference is not a reference table
E016      Citus: ``TENANCY_SCHEMA_AUTHORIZATION`` is on
W001      tenant models get 32-bit auto primary keys on PostgreSQL
W002      a template's accessor on the tenant model is taken
W003      ``TENANCY_USER_MODEL`` set, ``TenantAuthenticationMiddleware`` missing
========  ==============================================================

The Citus checks (E015, E016) are database checks: they ask the database, so
they run in ``migrate`` and in ``manage.py check --database ALIAS``.

The tenant user checks (E008 to E010, W003) run only when ``TENANCY_USER_MODEL``
is set: a project without tenant users hears nothing of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import celery
from django.apps import AppConfig, apps
from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models.fields import AutoFieldMixin
from django.utils.module_loading import import_string

from tenancy._classes import validation
from tenancy._classes.registry import TEMPLATES, template_parent
from tenancy._classes.shared_references import missing_reference_tables
from tenancy._primitives import citus, conf, lookup, shared
from tenancy._primitives.markers import is_abstract_tenant_subclass, is_template
from tenancy.auth.middleware import TenantAuthenticationMiddleware
from tenancy.auth.models import AbstractTenantUser
from tenancy.middleware import TenantMiddleware
from tenancy.models import TemplateAccessor, template_accessors

#: The tag of every check of the library: ``manage.py check --tag tenancy``.
TAG = "tenancy"

_TENANT_MODEL_HINT = (
    "Set TENANCY_TENANT_MODEL = 'yourapp.YourTenant' in settings, naming a subclass of "
    "tenancy.models.AbstractTenant."
)


@register(Tags.models, TAG)
def check_tenant_model_setting(
    app_configs: Sequence[AppConfig] | None = None, **_: Any
) -> list[CheckMessage]:
    """tenancy.E001: ``TENANCY_TENANT_MODEL`` is missing or malformed."""
    label = getattr(settings, "TENANCY_TENANT_MODEL", None)
    if not label:
        return [
            Error("TENANCY_TENANT_MODEL is not set.", hint=_TENANT_MODEL_HINT, id="tenancy.E001")
        ]
    if not isinstance(label, str) or label.count(".") != 1 or "" in label.split("."):
        return [
            Error(
                f"TENANCY_TENANT_MODEL must have the form 'app_label.ModelName', not {label!r}.",
                hint=_TENANT_MODEL_HINT,
                id="tenancy.E001",
            )
        ]
    return []


@register(Tags.models, TAG)
def check_tenant_model(
    app_configs: Sequence[AppConfig] | None = None, **_: Any
) -> list[CheckMessage]:
    """tenancy.E002 and E003: the tenant model is unusable (E001 reports a broken setting)."""
    try:
        label = conf.tenant_model_label()
    except ImproperlyConfigured:
        return []
    app_label = label.split(".")[0]
    if app_configs is not None and all(config.label != app_label for config in app_configs):
        return []
    try:
        model = apps.get_model(label)
    except LookupError:
        return [
            Error(
                f"TENANCY_TENANT_MODEL refers to {label!r}, which is not an installed model.",
                hint="Check the spelling ('app_label.ModelName') and that the app is in "
                "INSTALLED_APPS.",
                id="tenancy.E002",
            )
        ]
    if not is_abstract_tenant_subclass(model):
        return [
            Error(
                f"TENANCY_TENANT_MODEL refers to {label!r}, which is not a subclass of "
                "tenancy.models.AbstractTenant.",
                hint="Derive the tenant model from tenancy.models.AbstractTenant.",
                obj=model,
                id="tenancy.E002",
            )
        ]
    if getattr(model.natural_key, "_tenancy_undefined", False):
        return [
            Error(
                f"The tenant model {label} does not define natural_key().",
                hint="Add one returning the tuple that names each tenant's schema, e.g. "
                "`def natural_key(self): return (self.name,)`.",
                obj=model,
                id="tenancy.E003",
            )
        ]
    return []


@register(Tags.models, TAG)
def check_relations(app_configs: Sequence[AppConfig] | None = None, **_: Any) -> list[CheckMessage]:
    """tenancy.E004: relations between tenant models and shared models that cannot work."""

    def selected(model: type[models.Model]) -> bool:
        return app_configs is None or model._meta.app_config in app_configs

    return relation_errors(
        [t for t in TEMPLATES.values() if selected(t)],
        [m for m in apps.get_models(include_auto_created=True) if selected(m)],
    )


def relation_errors(
    templates: Iterable[type[models.Model]], shared_models: Iterable[type[models.Model]]
) -> list[CheckMessage]:
    """Return one tenancy.E004 per model with a relation the start-up validation refuses."""
    rules: list[tuple[Iterable[type[models.Model]], Callable[[Any], None], str]] = [
        (
            templates,
            validation.check_template_relations,
            "Give the relation related_name='+' (no reverse accessor) or a "
            "related_name containing '%(class)s' (one accessor per tenant).",
        ),
        (
            shared_models,
            validation.check_shared_relations,
            "Declare the relation on the tenant model, pointing to the shared "
            "model, or keep the tenant-side id in a plain field.",
        ),
    ]
    errors: list[CheckMessage] = []
    for checked, check, hint in rules:
        for model in checked:
            try:
                check([model])
            except ImproperlyConfigured as exc:
                errors.append(Error(str(exc), hint=hint, obj=model, id="tenancy.E004"))
    return errors


@register(Tags.models, TAG)
def check_template_accessors(
    app_configs: Sequence[AppConfig] | None = None, **_: Any
) -> list[CheckMessage]:
    """tenancy.W002: a template's accessor on the tenant model is taken by another attribute."""
    try:
        model = shared.tenant_model()
    except ImproperlyConfigured:
        return []
    warnings: list[CheckMessage] = []
    for name, template in template_accessors(model).items():
        current = next((c.__dict__[name] for c in model.__mro__ if name in c.__dict__), None)
        if current is None or isinstance(current, TemplateAccessor):
            continue
        warnings.append(
            Warning(
                f"{model._meta.label} already has an attribute {name!r}, so `tenant.{name}` "
                f"is not the accessor of {template._meta.label}.",
                hint=f"Give {template.__name__} another accessor name (class TenantMeta: "
                "related_name = '...'), or one ending with '+' for none.",
                obj=template,
                id="tenancy.W002",
            )
        )
    return warnings


@register(TAG)
def check_celery(
    app_configs: Sequence[AppConfig] | None = None, *, celery_app: Any = None, **_: Any
) -> list[CheckMessage]:
    """tenancy.E005: no Celery broker configured and the lifecycle is not eager.

    ``celery_app`` defaults to Celery's current app (the project's, once its
    ``celery.py`` is imported).
    """
    if conf.eager() or getattr(settings, "CELERY_BROKER_URL", None):
        return []
    if celery_app is None:
        celery_app = celery.current_app  # read at call time: the project's, once loaded
    if celery_app.conf.broker_url or celery_app.conf.task_always_eager:
        return []
    return [
        Error(
            "Celery is not configured for the tenant lifecycle: no broker URL is set and "
            "TENANCY_EAGER is off, so new tenants would never be provisioned.",
            hint="Set CELERY_BROKER_URL (e.g. 'redis://localhost:6379/0') and run a worker "
            "(`celery -A yourproject worker`), or set TENANCY_EAGER = True to run the lifecycle "
            "inline (scripts, tests).",
            id="tenancy.E005",
        )
    ]


@register(TAG)
def check_auto_field(
    app_configs: Sequence[AppConfig] | None = None, **_: Any
) -> list[CheckMessage]:
    """tenancy.W001: tenant models get 32-bit auto primary keys while a database is PostgreSQL."""
    engines = [str(db.get("ENGINE", "")) for db in getattr(settings, "DATABASES", {}).values()]
    if not any("postgis" in engine or "postgresql" in engine for engine in engines):
        return []
    narrow = []
    for template in TEMPLATES.values():
        if app_configs is not None and template._meta.app_config not in app_configs:
            continue
        pk_class = _auto_pk_class(template)
        if pk_class is not None and not issubclass(pk_class, models.BigAutoField):
            narrow.append(f"{template._meta.label} ({pk_class.__name__})")
    if not narrow:
        return []
    return [
        Warning(
            f"Tenant models have 32-bit auto primary keys on PostgreSQL: {', '.join(narrow)}.",
            hint="Set DEFAULT_AUTO_FIELD = 'django.db.models.BigAutoField' (or default_auto_field "
            "on the tenant apps' AppConfig) before the first tenant exists: Citus distribution "
            "and long-lived fleets need 64-bit ids, and changing a primary key type later "
            "rewrites the tables of every tenant.",
            id="tenancy.W001",
        )
    ]


def _auto_pk_class(template: type[models.Model]) -> type[models.Field] | None:
    """Return the class of the auto primary key a template's tenant classes get, if any."""
    if template_parent(template) is not None:
        return None  # a child's key points to its parent's row, which is checked instead
    for field in template._meta.local_fields:
        if field.primary_key:
            return type(field) if isinstance(field, AutoFieldMixin) else None
    # Read at call time: AppConfig caches DEFAULT_AUTO_FIELD once it has built a model.
    path: Any = settings.DEFAULT_AUTO_FIELD
    config = template._meta.app_config
    if config is not None and type(config).default_auto_field is not AppConfig.default_auto_field:
        declared = type(config).default_auto_field  # the app's own choice
        path = declared if isinstance(declared, str) else config.default_auto_field
    try:
        pk_class = import_string(path) if isinstance(path, str) else path
    except ImportError:
        return None  # Django's own checks report a broken DEFAULT_AUTO_FIELD
    return pk_class if isinstance(pk_class, type) else None


@register(TAG)
def check_cache_size(
    app_configs: Sequence[AppConfig] | None = None, **_: Any
) -> list[CheckMessage]:
    """tenancy.E006: ``TENANCY_MODEL_CACHE_SIZE`` is not a positive integer."""
    size = getattr(settings, "TENANCY_MODEL_CACHE_SIZE", conf.DEFAULT_MODEL_CACHE_SIZE)
    if isinstance(size, int) and not isinstance(size, bool) and size >= 1:
        return []
    return [
        Error(
            f"TENANCY_MODEL_CACHE_SIZE must be a positive integer, not {size!r}.",
            hint="It is the number of tenants whose model classes a process keeps cached; "
            f"remove the setting for the default ({conf.DEFAULT_MODEL_CACHE_SIZE}).",
            id="tenancy.E006",
        )
    ]


@register(TAG)
def check_task_ready_timeout(
    app_configs: Sequence[AppConfig] | None = None, **_: Any
) -> list[CheckMessage]:
    """tenancy.E011: ``TENANCY_TASK_READY_TIMEOUT`` is not a number of seconds (>= 0)."""
    try:
        conf.task_ready_timeout()
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint="It bounds how long a tenant_task waits for its tenant to be ready; "
                f"remove the setting for the default ({conf.DEFAULT_TASK_READY_TIMEOUT:g} s).",
                id="tenancy.E011",
            )
        ]
    return []


@register(Tags.models, TAG)
def check_tenant_lookup(
    app_configs: Sequence[AppConfig] | None = None, **_: Any
) -> list[CheckMessage]:
    """tenancy.E012: the tenant model has no field that ``TenantMiddleware`` can find a
    tenant by: a declared lookup field (``TENANCY_TENANT_LOOKUP_FIELD``, the model's
    ``TENANT_LOOKUP_FIELD``) or ``TENANCY_DOMAIN_FIELD`` it lacks, or, with none declared,
    a ``natural_key()`` of several fields; every tenant request would be a 500."""
    model = _installed_tenant_model(app_configs)
    if model is None:
        return []
    try:
        resolver = conf.tenant_resolver()
    except ImproperlyConfigured:
        return []
    if resolver == "domain":
        return _domain_field_errors(model) if _uses_tenant_middleware() else []
    declared, _source = lookup.declaration(model)
    used = resolver in ("subdomain", "header") and _uses_tenant_middleware()
    if declared is None and (not used or hasattr(model._default_manager, "get_by_natural_key")):
        return []  # nothing declared wrong, and nothing derives the field at run time
    try:
        lookup.lookup_field(model)
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint=f"Declare the field, e.g. `{lookup.MODEL_ATTRIBUTE} = 'slug'` on "
                f"{model.__name__}, or define get_by_natural_key(key) on its default manager; "
                "TENANCY_TENANT_LOOKUP_FIELD overrides both.",
                obj=model,
                id="tenancy.E012",
            )
        ]
    return []


def _domain_field_errors(model: type[models.Model]) -> list[CheckMessage]:
    field = conf.domain_field()
    if any(f.name == field for f in model._meta.get_fields()):
        return []
    return [
        Error(
            f"TENANCY_TENANT_RESOLVER is 'domain' but {model._meta.label} has no field "
            f"{field!r} (TENANCY_DOMAIN_FIELD) holding each tenant's host name.",
            hint="Add the field to the tenant model, or set TENANCY_DOMAIN_FIELD to the field "
            "that holds the host name.",
            obj=model,
            id="tenancy.E012",
        )
    ]


@register(Tags.models, TAG)
def check_test_tenant(
    app_configs: Sequence[AppConfig] | None = None, **_: Any
) -> list[CheckMessage]:
    """tenancy.E013: ``TENANCY_TEST_TENANT`` names fields the tenant model lacks (the test
    helpers of tenancy.testing would fail on every test)."""
    fields = getattr(settings, "TENANCY_TEST_TENANT", None)
    model = _installed_tenant_model(app_configs)
    if not fields or model is None:
        return []
    if not isinstance(fields, dict):
        unknown: list[Any] = []
        problem = f"must be a dict of the test tenant's field values, not {fields!r}"
    else:
        names = {f.name for f in model._meta.get_fields()}
        unknown = [name for name in fields if name not in names]
        problem = f"names {', '.join(map(repr, unknown))}, which {model._meta.label} lacks"
        if not unknown:
            return []
    return [
        Error(
            f"TENANCY_TEST_TENANT {problem}.",
            hint="Set it to values of the tenant model's own fields, e.g. {'slug': 'test'}, or "
            "remove it: the default is 'test' in the tenant model's lookup field.",
            obj=model,
            id="tenancy.E013",
        )
    ]


@register(TAG)
def check_serve_behind(
    app_configs: Sequence[AppConfig] | None = None, **_: Any
) -> list[CheckMessage]:
    """tenancy.E014: ``TENANCY_SERVE_BEHIND`` is not True or False."""
    try:
        conf.serve_behind()
    except ImproperlyConfigured as exc:
        return [
            Error(
                str(exc),
                hint="True (the default) serves a tenant whose migrations are behind the code "
                "(expand/contract deploys); False answers the 503 page until tenancy_migrate "
                "has brought it current.",
                id="tenancy.E014",
            )
        ]
    return []


@register(Tags.database, TAG)
def check_citus(
    app_configs: Sequence[AppConfig] | None = None,
    databases: Sequence[str] | None = None,
    **_: Any,
) -> list[CheckMessage]:
    """tenancy.E015 and E016: what a Citus database needs of the project."""
    errors: list[CheckMessage] = []
    for alias in databases or ():
        if alias not in conf.databases() or not citus.is_citus(alias):
            continue
        if conf.schema_authorization():
            errors.append(
                Error(
                    f"TENANCY_SCHEMA_AUTHORIZATION is on, and the database {alias!r} is a "
                    "Citus coordinator: per-tenant roles are NOLOGIN, and Citus opens its "
                    "connections to the worker nodes as the current role, so a session "
                    "that does SET ROLE <tenant> fails on every distributed table.",
                    hint="Set TENANCY_SCHEMA_AUTHORIZATION = False on Citus; isolate "
                    "tenants by their tenant classes (the library's default) instead.",
                    id="tenancy.E016",
                )
            )
        if alias != shared.database():
            continue  # off the shared database, tenant tables have no foreign keys to it
        for table in missing_reference_tables(alias):
            errors.append(
                Error(
                    f"The shared table {table!r} is referenced by tenant tables, and is not "
                    f"a reference table on the Citus database {alias!r}: creating a "
                    "tenant fails with 'referenced table must be a distributed table or "
                    "a reference table'.",
                    hint=f"Run `manage.py tenancy_reference_tables --database {alias}`, "
                    f"or in psql: {citus.reference_table_sql(table)}",
                    id="tenancy.E015",
                )
            )
    return errors


def _installed_tenant_model(app_configs: Sequence[AppConfig] | None) -> Any:
    """Return the tenant model when it is usable and among ``app_configs`` (E001 to E003
    report the others), else None."""
    try:
        model = shared.tenant_model()
    except ImproperlyConfigured:
        return None
    if app_configs is not None and model._meta.app_config not in app_configs:
        return None
    return model


def _uses_tenant_middleware() -> bool:
    """Whether ``TenantMiddleware`` (or a subclass) is in ``MIDDLEWARE``."""
    middleware = [str(path) for path in getattr(settings, "MIDDLEWARE", None) or ()]
    return _middleware_index(middleware, TenantMiddleware) is not None


@register(TAG)
def check_databases(app_configs: Sequence[AppConfig] | None = None, **_: Any) -> list[CheckMessage]:
    """tenancy.E007: ``TENANCY_DATABASES`` names an alias that ``DATABASES`` lacks."""
    if not hasattr(settings, "TENANCY_DATABASES"):
        return []
    aliases = getattr(settings, "TENANCY_DATABASES", None)  # django-stubs: not in every project
    if isinstance(aliases, str) or not isinstance(aliases, Iterable):
        return [
            Error(
                f"TENANCY_DATABASES must be a list of database aliases, not {aliases!r}.",
                hint="For example TENANCY_DATABASES = ['default'].",
                id="tenancy.E007",
            )
        ]
    databases = getattr(settings, "DATABASES", {})
    return [
        Error(
            f"TENANCY_DATABASES names {alias!r}, which is not in DATABASES.",
            hint=f"Add {alias!r} to DATABASES or remove it from TENANCY_DATABASES "
            f"(known aliases: {', '.join(sorted(databases)) or 'none'}).",
            id="tenancy.E007",
        )
        for alias in aliases
        if alias not in databases
    ]


# -- tenant users (tenancy.auth), checked only when TENANCY_USER_MODEL is set --

_USER_MODEL_HINT = (
    "Set TENANCY_USER_MODEL = 'yourapp.YourUser', naming a model declared in an installed "
    "app as a subclass of tenancy.auth.AbstractTenantUser (class YourUser(AbstractTenantUser)"
    "), or remove the setting if the project has no tenant users."
)
_AUTH_MIDDLEWARE = "tenancy.auth.TenantAuthenticationMiddleware"
_SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
_TENANT_MIDDLEWARE = "tenancy.middleware.TenantMiddleware"
_DEFAULT_BACKEND = "tenancy.auth.TenantUserBackend"


def _uses_tenant_users() -> bool:
    """Whether the project has tenant users: only then are their checks worth a message."""
    return bool(getattr(settings, "TENANCY_USER_MODEL", None))


@register(Tags.models, TAG)
def check_user_model(
    app_configs: Sequence[AppConfig] | None = None, **_: Any
) -> list[CheckMessage]:
    """tenancy.E008: ``TENANCY_USER_MODEL`` names no template derived from
    ``AbstractTenantUser``; ``tenancy.auth`` would otherwise raise ``ImproperlyConfigured``
    at the first login, not at start-up."""
    label = getattr(settings, "TENANCY_USER_MODEL", None)
    if not label:
        return []
    if not isinstance(label, str) or label.count(".") != 1 or "" in label.split("."):
        return [
            Error(
                f"TENANCY_USER_MODEL must have the form 'app_label.ModelName', not {label!r}.",
                hint=_USER_MODEL_HINT,
                id="tenancy.E008",
            )
        ]
    app_label = label.split(".")[0]
    if app_configs is not None and all(config.label != app_label for config in app_configs):
        return []
    template = TEMPLATES.get(label.lower())
    if template is None or not is_template(template):
        try:
            model = apps.get_model(label)
        except LookupError:
            return [
                Error(
                    f"TENANCY_USER_MODEL refers to {label!r}, which does not exist: no installed "
                    "app declares a tenant model template of that name.",
                    hint="Check the spelling ('app_label.ModelName') and that the app is in "
                    "INSTALLED_APPS. " + _USER_MODEL_HINT,
                    id="tenancy.E008",
                )
            ]
        return [
            Error(
                f"TENANCY_USER_MODEL refers to {label!r}, a shared model, not a tenant model "
                "template: its users would not belong to a tenant.",
                hint=_USER_MODEL_HINT,
                obj=model,
                id="tenancy.E008",
            )
        ]
    if not issubclass(template, AbstractTenantUser):
        return [
            Error(
                f"TENANCY_USER_MODEL refers to {label!r}, a tenant model template that does not "
                "derive from tenancy.auth.AbstractTenantUser.",
                hint=f"Derive {template.__name__} from tenancy.auth.AbstractTenantUser, or name "
                "another template. " + _USER_MODEL_HINT,
                obj=template,
                id="tenancy.E008",
            )
        ]
    return []


def _middleware_index(middleware: Sequence[str], base: type) -> int | None:
    """Return the position of the first ``MIDDLEWARE`` entry that is ``base`` or a subclass
    (a project may extend it), or None; an entry that does not import matches nothing
    (as in Django's admin checks, which read ``MIDDLEWARE`` the same way)."""
    for index, path in enumerate(middleware):
        try:
            found = import_string(path)
        except ImportError:
            continue
        if isinstance(found, type) and issubclass(found, base):
            return index
    return None


@register(TAG)
def check_tenant_user_middleware(
    app_configs: Sequence[AppConfig] | None = None, **_: Any
) -> list[CheckMessage]:
    """tenancy.W003 and E009: ``TenantAuthenticationMiddleware`` is missing, or comes
    before the middleware that gives it ``request.session`` and ``request.tenant`` (it
    would then raise ``ImproperlyConfigured`` on every request)."""
    if not _uses_tenant_users():
        return []
    middleware = [str(path) for path in getattr(settings, "MIDDLEWARE", None) or ()]
    auth_at = _middleware_index(middleware, TenantAuthenticationMiddleware)
    if auth_at is None:
        return [
            Warning(
                f"TENANCY_USER_MODEL is set but {_AUTH_MIDDLEWARE!r} is not in MIDDLEWARE: "
                "nothing sets request.tenant_user, so a tenant login is never restored and "
                "tenant_login_required and TenantLoginRequiredMixin raise ImproperlyConfigured.",
                hint=f"Add {_AUTH_MIDDLEWARE!r} to MIDDLEWARE, after {_SESSION_MIDDLEWARE!r} "
                f"and {_TENANT_MIDDLEWARE!r}.",
                id="tenancy.W003",
            )
        ]
    errors: list[CheckMessage] = []
    needed = (
        (SessionMiddleware, _SESSION_MIDDLEWARE, "request.session"),
        (TenantMiddleware, _TENANT_MIDDLEWARE, "request.tenant"),
    )
    for base, path, attribute in needed:
        at = _middleware_index(middleware, base)
        if at is not None and at < auth_at:
            continue
        where = "is not in MIDDLEWARE" if at is None else "comes after it in MIDDLEWARE"
        errors.append(
            Error(
                f"{middleware[auth_at]!r} needs {attribute}, but {path!r} (or a subclass) "
                f"{where}: every request would raise ImproperlyConfigured.",
                hint=f"Put {path!r} before {middleware[auth_at]!r} in MIDDLEWARE.",
                id="tenancy.E009",
            )
        )
    return errors


@register(TAG)
def check_authentication_backends(
    app_configs: Sequence[AppConfig] | None = None, **_: Any
) -> list[CheckMessage]:
    """tenancy.E010: an entry of ``TENANCY_AUTHENTICATION_BACKENDS`` does not import (or the
    setting is no list of paths): every tenant login, and every permission question, would
    fail at run time."""
    if not _uses_tenant_users():
        return []
    hint = f"For example TENANCY_AUTHENTICATION_BACKENDS = [{_DEFAULT_BACKEND!r}] (the default)."
    try:
        paths = conf.authentication_backends()
    except (ImproperlyConfigured, TypeError):
        value = getattr(settings, "TENANCY_AUTHENTICATION_BACKENDS", None)
        return [
            Error(
                f"TENANCY_AUTHENTICATION_BACKENDS must be a list of dotted paths, not {value!r}.",
                hint=hint,
                id="tenancy.E010",
            )
        ]
    if not paths:
        return [
            Error(
                "TENANCY_AUTHENTICATION_BACKENDS is empty: no tenant user can log in.",
                hint=hint,
                id="tenancy.E010",
            )
        ]
    errors: list[CheckMessage] = []
    for path in paths:
        try:
            import_string(path)
        except ImportError as exc:
            errors.append(
                Error(
                    f"TENANCY_AUTHENTICATION_BACKENDS lists {path!r}, which cannot be imported "
                    f"({exc}).",
                    hint="Correct the dotted path or remove the entry. " + hint,
                    id="tenancy.E010",
                )
            )
    return errors
