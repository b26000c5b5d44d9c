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
from tenancy.models import AbstractTenant, TenantModel
from tests.testapp import apps as testapp_apps
from tests.testapp.models import Customer

# W001's tests put a PostgreSQL alias in DATABASES (read as settings, never connected to).
pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")


def ids(messages):
    return [message.id for message in messages]


def only(messages, check_id):
    """Return the single message of ``messages``, asserting its ID and that it has a hint."""
    assert ids(messages) == [check_id], messages
    (message,) = messages
    assert message.hint, f"{check_id} has no hint"
    return message


def test_the_test_project_passes_every_tenancy_check():
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
        "check_databases",
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
