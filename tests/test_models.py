"""The tenant model: lifecycle fields, stored schema, configuration errors."""

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models
from django.test import override_settings
from django.test.utils import isolate_apps

from tenancy import get_tenant_model
from tenancy._primitives.shared import check_tenant_model
from tenancy.exceptions import TenancyError
from tenancy.models import AbstractTenant, TenantState
from tests.testapp.models import Customer


def test_get_tenant_model_returns_the_configured_model():
    assert get_tenant_model() is Customer


@override_settings()
def test_a_missing_tenant_model_setting_says_how_to_set_it():
    from django.conf import settings

    del settings.TENANCY_TENANT_MODEL
    with pytest.raises(ImproperlyConfigured, match="TENANCY_TENANT_MODEL is not set"):
        get_tenant_model()


@override_settings(TENANCY_TENANT_MODEL="testapp.Nope")
def test_a_tenant_model_that_is_not_installed_is_named():
    with pytest.raises(ImproperlyConfigured, match="'testapp.Nope', which is not an installed"):
        get_tenant_model()


@override_settings(TENANCY_TENANT_MODEL="auth.User")
def test_a_tenant_model_that_is_not_an_abstract_tenant_is_refused():
    with pytest.raises(
        ImproperlyConfigured, match="not a subclass of tenancy.models.AbstractTenant"
    ):
        get_tenant_model()


@override_settings(TENANCY_TENANT_MODEL="bad-label")
def test_a_malformed_tenant_model_label_is_refused():
    with pytest.raises(ImproperlyConfigured, match="app_label.ModelName"):
        get_tenant_model()


@isolate_apps("tests.testapp")
def test_a_tenant_model_without_natural_key_is_refused():
    class Keyless(AbstractTenant):
        name = models.CharField(max_length=10)

        class Meta:
            app_label = "testapp"

    with pytest.raises(ImproperlyConfigured, match="does not define natural_key"):
        check_tenant_model(Keyless, "testapp.Keyless")


def test_the_lifecycle_fields_exist():
    names = {f.name for f in Customer._meta.get_fields()}
    assert {"state", "db_schema", "database", "last_error", "state_changed_at"} <= names
    assert set(TenantState.values) == {"pending", "provisioning", "ready", "failed"}


@pytest.mark.django_db
def test_the_schema_is_derived_from_the_natural_key_at_creation(settings):
    settings.TENANCY_EAGER = False
    from django.db import transaction

    with transaction.atomic():
        customer = Customer.objects.create(name="Acme Corp")
        transaction.set_rollback(True)
    assert customer.db_schema.startswith("tenant_acme_corp_")
    assert customer.state == TenantState.PENDING
    assert customer.database == "default"


@pytest.mark.django_db
def test_renaming_a_tenant_keeps_its_schema(settings):
    settings.TENANCY_EAGER = False
    customer = Customer.objects.create(name="acme")
    customer.name = "globex"
    customer.save()
    customer.refresh_from_db()
    assert customer.db_schema == "tenant_acme"


@pytest.mark.django_db
def test_the_schema_cannot_be_changed_after_creation(settings):
    settings.TENANCY_EAGER = False
    customer = Customer.objects.get(pk=Customer.objects.create(name="acme").pk)
    customer.db_schema = "tenant_other"
    with pytest.raises(TenancyError, match="fixed at creation"):
        customer.save()
    assert Customer.objects.get(pk=customer.pk).db_schema == "tenant_acme"


@pytest.mark.django_db
def test_an_invalid_key_is_refused_before_anything_is_written(settings):
    settings.TENANCY_EAGER = False
    with pytest.raises(ValidationError, match="nothing is left"):
        Customer.objects.create(name="???")
    assert not Customer.objects.exists()


@pytest.mark.django_db
def test_two_keys_that_normalise_alike_both_get_a_schema(settings):
    settings.TENANCY_EAGER = False
    first = Customer.objects.create(name="Acme Corp")
    second = Customer.objects.create(name="acme corp")
    assert first.db_schema != second.db_schema


def test_saving_an_instance_read_before_provisioning_never_undoes_the_ready_state(make_tenant):
    """A signup view keeps the instance it created (state "pending") and saves it again
    after a worker provisioned the tenant: save() writes the user's fields only."""
    customer = Customer.objects.create(name="acme")  # eager: ready in the row, not here
    assert customer.state == TenantState.PENDING
    customer.name = "acme corp"
    customer.save()
    stored = Customer.objects.get(pk=customer.pk)
    assert (stored.name, stored.state) == ("acme corp", TenantState.READY)
    assert stored.migrations_digest
