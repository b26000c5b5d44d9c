"""System checks (tenancy.checks): each ID fires on its broken configuration, with a hint."""

import pytest
from celery import Celery
from django.core.checks import Error, Warning, registry, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import models
from django.test.utils import isolate_apps

from tenancy import checks
from tenancy._classes.registry import TEMPLATES
from tenancy.auth import TenantAuthenticationMiddleware
from tenancy.middleware import TenantMiddleware
from tenancy.models import AbstractTenant, TenantModel
from tests.testapp import apps as testapp_apps
from tests.testapp.models import Customer

# W001's tests put a PostgreSQL alias in DATABASES (read as settings, never connected to).
pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


SESSION = "django.contrib.sessions.middleware.SessionMiddleware"
TENANT = "tenancy.middleware.TenantMiddleware"
TENANT_AUTH = "tenancy.auth.TenantAuthenticationMiddleware"


class ProjectTenantMiddleware(TenantMiddleware):
    """A project's own TenantMiddleware: it gives request.tenant as well."""


class ProjectTenantAuthenticationMiddleware(TenantAuthenticationMiddleware):
    """A project's own TenantAuthenticationMiddleware: it needs what the original needs."""


def ids(messages):
    return [message.id for message in messages]


def only(messages, check_id):
    """Return the single message of ``messages``, asserting its ID and that it has a hint."""
    assert ids(messages) == [check_id], messages
    (message,) = messages
    assert message.hint, f"{check_id} has no hint"
    return message


def test_the_test_project_passes_every_tenancy_check(settings):
    # The project's MIDDLEWARE serves the admin; its tenant users (TENANCY_USER_MODEL) are
    # served with the tenancy middlewares that tests/test_auth.py's routing adds, without
    # which W003 fires (see its tests below).
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, TENANT, TENANT_AUTH]
    assert [m for m in run_checks() if m.id.startswith("tenancy.")] == []
    call_command("check", tags=["tenancy"], verbosity=0)


def test_every_check_is_registered_under_the_tenancy_tag():
    registered = {
        check.__name__ for check in registry.registry.get_checks() if "tenancy" in check.tags
    }
    assert registered >= {
        "check_tenant_model_setting",
        "check_tenant_model",
        "check_relations",
        "check_celery",
        "check_auto_field",
        "check_cache_size",
        "check_task_ready_timeout",
        "check_databases",
        "check_user_model",
        "check_tenant_user_middleware",
        "check_authentication_backends",
    }


def test_manage_py_check_fails_on_a_broken_setting(settings):
    settings.TENANCY_MODEL_CACHE_SIZE = 0
    with pytest.raises(SystemCheckError, match="tenancy.E006"):
        call_command("check", tags=["tenancy"], verbosity=0)


# -- E001: TENANCY_TENANT_MODEL missing or malformed --


def test_e001_fires_when_the_tenant_model_setting_is_missing(settings):
    del settings.TENANCY_TENANT_MODEL
    error = only(checks.check_tenant_model_setting(), "tenancy.E001")
    assert isinstance(error, Error)
    assert "TENANCY_TENANT_MODEL is not set" in error.msg
    assert "AbstractTenant" in error.hint
    assert checks.check_tenant_model() == []  # reported once, as E001


@pytest.mark.parametrize("label", ["testapp", "testapp.models.Customer", ".Customer", 42])
def test_e001_fires_when_the_tenant_model_setting_is_malformed(settings, label):
    settings.TENANCY_TENANT_MODEL = label
    error = only(checks.check_tenant_model_setting(), "tenancy.E001")
    assert "'app_label.ModelName'" in error.msg


# -- E002: not installed, not an AbstractTenant --


def test_e002_fires_when_the_tenant_model_is_not_installed(settings):
    settings.TENANCY_TENANT_MODEL = "testapp.Missing"
    error = only(checks.check_tenant_model(), "tenancy.E002")
    assert "not an installed model" in error.msg
    assert "INSTALLED_APPS" in error.hint


def test_e002_fires_when_the_tenant_model_is_not_an_abstract_tenant(settings):
    settings.TENANCY_TENANT_MODEL = "auth.User"
    error = only(checks.check_tenant_model(), "tenancy.E002")
    assert "not a subclass of tenancy.models.AbstractTenant" in error.msg
    assert "AbstractTenant" in error.hint


def test_e002_and_e003_are_left_out_when_checking_other_apps(settings):
    settings.TENANCY_TENANT_MODEL = "testapp.Missing"
    from django.apps import apps

    assert checks.check_tenant_model(app_configs=[apps.get_app_config("auth")]) == []


# -- E003: natural_key() --


def test_e003_fires_when_the_tenant_model_has_no_natural_key(monkeypatch):
    monkeypatch.setattr(Customer, "natural_key", AbstractTenant.natural_key)
    error = only(checks.check_tenant_model(), "tenancy.E003")
    assert "does not define natural_key()" in error.msg
    assert "def natural_key(self)" in error.hint


# -- E004: relations --


@pytest.fixture
def colliding_template():
    """A template whose relation would give auth.User one reverse accessor per tenant."""

    class Colliding(TenantModel):
        owner = models.ForeignKey("auth.User", models.CASCADE, related_name="collidings")

        class Meta:
            app_label = "testapp"

    yield Colliding
    TEMPLATES.pop("testapp.colliding", None)


def test_e004_fires_for_a_tenant_model_relation_with_a_shared_reverse_accessor(
    colliding_template,
):
    error = only(checks.check_relations(), "tenancy.E004")
    assert error.obj is colliding_template
    assert "testapp.Colliding.owner points to the shared model auth.User" in error.msg
    assert "related_name='+'" in error.hint and "%(class)s" in error.hint


@isolate_apps("tests.testapp")
def test_e004_fires_for_a_shared_model_pointing_to_a_tenant_model():
    class Invoice(models.Model):
        project = models.ForeignKey("testapp.Project", models.CASCADE)

        class Meta:
            app_label = "testapp"

    error = only(checks.relation_errors([], [Invoice]), "tenancy.E004")
    assert error.obj is Invoice
    assert "points from a shared model to the tenant model testapp.Project" in error.msg
    assert "plain field" in error.hint


def test_e004_reports_every_broken_model_not_only_the_first(colliding_template):
    class AlsoColliding(TenantModel):
        user = models.OneToOneField("auth.User", models.CASCADE, related_name="also")

        class Meta:
            app_label = "testapp"

    try:
        errors = checks.relation_errors([colliding_template, AlsoColliding], [])
    finally:
        TEMPLATES.pop("testapp.alsocolliding", None)
    assert ids(errors) == ["tenancy.E004", "tenancy.E004"]


# -- E005: Celery --


@pytest.fixture
def no_broker(settings, monkeypatch):
    """No broker anywhere and the lifecycle not eager; returns a blank Celery app."""
    settings.TENANCY_EAGER = False
    del settings.CELERY_BROKER_URL
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)  # Celery reads it too
    return Celery("blank", set_as_current=False)


def test_e005_fires_without_a_broker_and_without_eager_mode(no_broker):
    error = only(checks.check_celery(celery_app=no_broker), "tenancy.E005")
    assert "never be provisioned" in error.msg
    assert "CELERY_BROKER_URL" in error.hint and "TENANCY_EAGER" in error.hint


def test_e005_is_satisfied_by_a_broker_setting(no_broker, settings):
    settings.CELERY_BROKER_URL = "redis://localhost:6379/0"
    assert checks.check_celery(celery_app=no_broker) == []


def test_e005_is_satisfied_by_the_celery_apps_own_broker(no_broker):
    no_broker.conf.broker_url = "amqp://guest@rabbit//"
    assert checks.check_celery(celery_app=no_broker) == []


def test_e005_is_satisfied_by_eager_mode(no_broker, settings):
    settings.TENANCY_EAGER = True
    assert checks.check_celery(celery_app=no_broker) == []


def test_e005_reads_celerys_current_app_by_default(no_broker, monkeypatch):
    import celery

    monkeypatch.setattr(celery, "current_app", no_broker)
    assert ids(checks.check_celery()) == ["tenancy.E005"]


# -- W001: 64-bit keys on PostgreSQL --


@pytest.fixture
def postgresql_configured(settings):
    """Add a PostgreSQL alias to DATABASES (settings only: no connection is made)."""
    settings.DATABASES = {
        **settings.DATABASES,
        "citus": {"ENGINE": "django.db.backends.postgresql", "NAME": "x"},
    }


def test_w001_warns_about_32_bit_tenant_keys_on_postgresql(settings, postgresql_configured):
    settings.DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
    warning = only(checks.check_auto_field(), "tenancy.W001")
    assert isinstance(warning, Warning)
    assert "testapp.Project (AutoField)" in warning.msg
    assert "BigAutoField" in warning.hint and "Citus" in warning.hint


def test_w001_reads_the_tenant_apps_own_default_auto_field(
    settings, postgresql_configured, monkeypatch
):
    settings.DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
    monkeypatch.setattr(
        testapp_apps.TestAppConfig, "default_auto_field", "django.db.models.SmallAutoField"
    )
    warning = only(checks.check_auto_field(), "tenancy.W001")
    assert "testapp.Project (SmallAutoField)" in warning.msg


def test_w001_is_quiet_with_64_bit_keys(settings, postgresql_configured):
    settings.DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
    assert checks.check_auto_field() == []


def test_w001_is_quiet_without_postgresql(settings):
    settings.DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    settings.DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
    assert checks.check_auto_field() == []


# -- E006: cache size --


@pytest.mark.parametrize("size", [0, -5, "100", 1.5, True, None])
def test_e006_fires_when_the_cache_size_is_not_a_positive_integer(settings, size):
    settings.TENANCY_MODEL_CACHE_SIZE = size
    error = only(checks.check_cache_size(), "tenancy.E006")
    assert repr(size) in error.msg
    assert "1000" in error.hint


@pytest.mark.parametrize("size", [1, 50_000])
def test_e006_accepts_a_positive_cache_size(settings, size):
    settings.TENANCY_MODEL_CACHE_SIZE = size
    assert checks.check_cache_size() == []


# -- E011: TENANCY_TASK_READY_TIMEOUT --


@pytest.mark.parametrize("seconds", [-1, "60", True, None, [5]])
def test_e011_fires_when_the_task_ready_timeout_is_not_a_number_of_seconds(settings, seconds):
    settings.TENANCY_TASK_READY_TIMEOUT = seconds
    error = only(checks.check_task_ready_timeout(), "tenancy.E011")
    assert repr(seconds) in error.msg
    assert "300 s" in error.hint


@pytest.mark.parametrize("seconds", [0, 30, 2.5])
def test_e011_accepts_a_number_of_seconds(settings, seconds):
    settings.TENANCY_TASK_READY_TIMEOUT = seconds
    assert checks.check_task_ready_timeout() == []


# -- E007: TENANCY_DATABASES --


def test_e007_fires_for_an_alias_missing_from_databases(settings):
    settings.TENANCY_DATABASES = ["default", "shard9"]
    error = only(checks.check_databases(), "tenancy.E007")
    assert "'shard9'" in error.msg
    assert "default" in error.hint


def test_e007_fires_for_a_string_instead_of_a_list(settings):
    settings.TENANCY_DATABASES = "default"
    only(checks.check_databases(), "tenancy.E007")


def test_e007_is_quiet_when_the_setting_is_absent_or_right(settings):
    assert checks.check_databases() == []
    settings.TENANCY_DATABASES = ["default"]
    assert checks.check_databases() == []


# -- E008, E009, E010, W003: tenant users (TENANCY_USER_MODEL) --


def test_the_tenant_user_checks_are_quiet_for_a_project_without_tenant_users(settings):
    del settings.TENANCY_USER_MODEL
    settings.MIDDLEWARE = [TENANT_AUTH, SESSION]  # misplaced, and no TenantMiddleware
    settings.TENANCY_AUTHENTICATION_BACKENDS = ["nowhere.Backend"]
    assert checks.check_user_model() == []
    assert checks.check_tenant_user_middleware() == []
    assert checks.check_authentication_backends() == []
    settings.MIDDLEWARE = [SESSION]  # no tenant user middleware either: nothing to say
    assert checks.check_tenant_user_middleware() == []


@pytest.mark.parametrize("label", ["authapp", "authapp.models.Member", ".Member", 42])
def test_e008_fires_when_the_user_model_setting_is_malformed(settings, label):
    settings.TENANCY_USER_MODEL = label
    error = only(checks.check_user_model(), "tenancy.E008")
    assert isinstance(error, Error)
    assert "TENANCY_USER_MODEL must have the form 'app_label.ModelName'" in error.msg
    assert "AbstractTenantUser" in error.hint


@pytest.mark.parametrize("label", ["authapp.Nobody", "nowhere.Member"])
def test_e008_fires_when_the_user_model_does_not_exist(settings, label):
    settings.TENANCY_USER_MODEL = label
    error = only(checks.check_user_model(), "tenancy.E008")
    assert f"TENANCY_USER_MODEL refers to {label!r}, which does not exist" in error.msg
    assert "INSTALLED_APPS" in error.hint and "AbstractTenantUser" in error.hint


def test_e008_fires_when_the_user_model_is_a_shared_model(settings):
    settings.TENANCY_USER_MODEL = "auth.User"
    error = only(checks.check_user_model(), "tenancy.E008")
    assert "a shared model, not a tenant model template" in error.msg
    assert "subclass of tenancy.auth.AbstractTenantUser" in error.hint


def test_e008_fires_when_the_user_model_is_a_template_but_no_tenant_user(settings):
    settings.TENANCY_USER_MODEL = "testapp.Project"
    error = only(checks.check_user_model(), "tenancy.E008")
    assert "does not derive from tenancy.auth.AbstractTenantUser" in error.msg
    assert "Derive Project from tenancy.auth.AbstractTenantUser" in error.hint


def test_e008_is_quiet_for_the_tenant_user_template_and_for_other_apps(settings):
    from django.apps import apps

    assert checks.check_user_model() == []  # authapp.Member
    settings.TENANCY_USER_MODEL = "authapp.Nobody"
    assert checks.check_user_model(app_configs=[apps.get_app_config("testapp")]) == []
    assert ids(checks.check_user_model(app_configs=[apps.get_app_config("authapp")])) == [
        "tenancy.E008"
    ]


def test_w003_fires_when_tenant_users_have_no_authentication_middleware(settings):
    settings.MIDDLEWARE = [SESSION, TENANT]
    warning = only(checks.check_tenant_user_middleware(), "tenancy.W003")
    assert isinstance(warning, Warning)
    assert "TENANCY_USER_MODEL is set" in warning.msg and TENANT_AUTH in warning.msg
    assert f"Add {TENANT_AUTH!r} to MIDDLEWARE, after {SESSION!r} and {TENANT!r}" in warning.hint


def test_e009_fires_when_the_authentication_middleware_comes_before_tenant_middleware(
    settings,
):
    settings.MIDDLEWARE = [SESSION, TENANT_AUTH, TENANT]
    error = only(checks.check_tenant_user_middleware(), "tenancy.E009")
    assert isinstance(error, Error)
    assert f"{TENANT_AUTH!r} needs request.tenant" in error.msg
    assert "comes after it" in error.msg
    assert error.hint == f"Put {TENANT!r} before {TENANT_AUTH!r} in MIDDLEWARE."


def test_e009_fires_when_the_authentication_middleware_comes_before_the_session(settings):
    settings.MIDDLEWARE = [TENANT, TENANT_AUTH, SESSION]
    error = only(checks.check_tenant_user_middleware(), "tenancy.E009")
    assert f"{TENANT_AUTH!r} needs request.session" in error.msg
    assert error.hint == f"Put {SESSION!r} before {TENANT_AUTH!r} in MIDDLEWARE."


def test_e009_reports_each_missing_middleware(settings):
    settings.MIDDLEWARE = [TENANT_AUTH]
    errors = checks.check_tenant_user_middleware()
    assert ids(errors) == ["tenancy.E009", "tenancy.E009"]
    assert all("is not in MIDDLEWARE" in error.msg for error in errors)
    assert [SESSION in errors[0].hint, TENANT in errors[1].hint] == [True, True]


def test_e009_recognises_subclasses_of_the_middlewares(settings):
    project_auth = "tests.test_checks.ProjectTenantAuthenticationMiddleware"
    project_tenant = "tests.test_checks.ProjectTenantMiddleware"
    settings.MIDDLEWARE = [SESSION, project_tenant, project_auth]
    assert checks.check_tenant_user_middleware() == []
    settings.MIDDLEWARE = [SESSION, project_auth, project_tenant]
    error = only(checks.check_tenant_user_middleware(), "tenancy.E009")
    assert error.hint == f"Put {TENANT!r} before {project_auth!r} in MIDDLEWARE."
    settings.MIDDLEWARE = ["nowhere.Middleware", SESSION, TENANT, TENANT_AUTH]
    assert checks.check_tenant_user_middleware() == []  # an entry that does not import


def test_e010_fires_for_each_backend_that_does_not_import(settings):
    settings.TENANCY_AUTHENTICATION_BACKENDS = [
        "tenancy.auth.TenantUserBackend",
        "tenancy.auth.NoSuchBackend",
        "nowhere.Backend",
    ]
    errors = checks.check_authentication_backends()
    assert ids(errors) == ["tenancy.E010", "tenancy.E010"]
    assert "lists 'tenancy.auth.NoSuchBackend', which cannot be imported" in errors[0].msg
    assert "lists 'nowhere.Backend', which cannot be imported" in errors[1].msg
    assert all("'tenancy.auth.TenantUserBackend'" in error.hint for error in errors)


@pytest.mark.parametrize("value", [[], "tenancy.auth.TenantUserBackend", [42], 42])
def test_e010_fires_for_an_empty_or_malformed_backend_list(settings, value):
    settings.TENANCY_AUTHENTICATION_BACKENDS = value
    error = only(checks.check_authentication_backends(), "tenancy.E010")
    assert "TENANCY_AUTHENTICATION_BACKENDS" in error.msg


def test_e010_is_quiet_for_backends_that_import(settings):
    assert checks.check_authentication_backends() == []  # the default
    settings.TENANCY_AUTHENTICATION_BACKENDS = [
        "tenancy.auth.TenantUserBackend",
        "tests.test_auth.GrantingBackend",
    ]
    assert checks.check_authentication_backends() == []


def test_manage_py_check_runs_the_tenant_user_checks_under_the_tenancy_tag(settings):
    settings.TENANCY_USER_MODEL = "authapp.Nobody"
    settings.MIDDLEWARE = [TENANT, TENANT_AUTH, SESSION]
    settings.TENANCY_AUTHENTICATION_BACKENDS = ["nowhere.Backend"]
    found = ids(run_checks(tags=[checks.TAG]))
    assert {"tenancy.E008", "tenancy.E009", "tenancy.E010"} <= set(found)
    with pytest.raises(SystemCheckError, match=r"tenancy\.E008"):
        call_command("check", tags=["tenancy"], verbosity=0)
