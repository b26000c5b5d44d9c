"""Schema names derived from natural keys: safe, unique, at most 63 bytes."""

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError

from tenancy._primitives.naming import MAX_IDENTIFIER_BYTES, schema_name_for
from tenancy.exceptions import InvalidTenantKey, TenancyError


def test_a_clean_key_is_used_as_is_behind_the_prefix():
    assert schema_name_for(("acme",), "tenant_") == "tenant_acme"


def test_the_prefix_is_configurable():
    assert schema_name_for(("acme",), "org_") == "org_acme"


def test_keys_that_normalise_alike_get_distinct_names():
    names = {
        schema_name_for(key, "tenant_")
        for key in [
            ("acme corp",),
            ("Acme Corp",),
            ("acme_corp",),
            ("ACME-CORP",),
            ("acme", "corp"),
        ]
    }
    assert len(names) == 5


def test_a_normalised_name_is_a_plain_identifier():
    name = schema_name_for(("Zürich AG; DROP SCHEMA public --",), "tenant_")
    assert name.startswith("tenant_zurich_ag_drop_schema_public_")
    assert name.replace("_", "").isalnum() and name == name.lower()


def test_long_keys_are_cut_to_63_bytes_and_stay_unique():
    first = schema_name_for(("a" * 200 + "x",), "tenant_")
    second = schema_name_for(("a" * 200 + "y",), "tenant_")
    assert len(first.encode()) == MAX_IDENTIFIER_BYTES
    assert first != second


def test_the_name_is_deterministic():
    assert schema_name_for(("Acme Corp",), "tenant_") == schema_name_for(("Acme Corp",), "tenant_")


@pytest.mark.parametrize("key", [(), ("",), ("   ",), (None,)])
def test_an_empty_key_is_refused(key):
    with pytest.raises(InvalidTenantKey, match="empty"):
        schema_name_for(key, "tenant_")


def test_a_key_with_nothing_left_after_normalisation_is_refused():
    with pytest.raises(ValidationError, match="nothing is left"):
        schema_name_for(("!!! ???",), "tenant_")


@pytest.mark.parametrize("key", [("public",), ("pg_catalog",), ("information_schema",), ("pg_x",)])
def test_reserved_schemas_are_never_named(key):
    with pytest.raises(InvalidTenantKey, match="reserved"):
        schema_name_for(key, "")


def test_a_key_that_is_not_a_tuple_is_refused_with_the_fix():
    with pytest.raises(InvalidTenantKey, match=r"must return a tuple"):
        schema_name_for("acme", "tenant_")  # type: ignore[arg-type]


def test_an_empty_prefix_never_starts_a_name_with_a_digit():
    name = schema_name_for(("123",), "")
    assert name[0].isalpha()
    assert name != schema_name_for(("t123",), "")


def test_invalid_key_errors_are_validation_and_tenancy_errors():
    with pytest.raises(TenancyError):
        schema_name_for(("",), "tenant_")


def test_a_prefix_that_is_not_an_identifier_is_a_configuration_error():
    with pytest.raises(ImproperlyConfigured, match="TENANCY_SCHEMA_PREFIX"):
        schema_name_for(("acme",), 'x"; --')


def test_a_clean_key_that_looks_hashed_never_takes_another_keys_name():
    hashed = schema_name_for(("Acme Corp",), "tenant_")
    squatter = hashed.removeprefix("tenant_")
    assert schema_name_for((squatter,), "tenant_") != hashed
