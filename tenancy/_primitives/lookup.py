"""The tenant model's field that a subdomain or a header value names a tenant by.

In order: the ``TENANCY_TENANT_LOOKUP_FIELD`` setting (an override), the tenant
model's ``TENANT_LOOKUP_FIELD`` attribute, else the one field that
``natural_key()`` returns. The last is found without a database: the method
is called on a probe instance whose every field holds a marker of its own,
and the field whose marker comes back is the key's field. A key of several
fields, or one computed from a field (``(self.slug.lower(),)``), names no
field: the model then declares one.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models

from tenancy._primitives import conf

#: The tenant model's class attribute that declares its lookup field.
MODEL_ATTRIBUTE = "TENANT_LOOKUP_FIELD"


def lookup_field(model: type[models.Model]) -> str:
    """Return the name of ``model``'s field matched against a subdomain or header value.

    Raises ``ImproperlyConfigured``, naming the fix, when the declared field is
    not one of the model's or when none is declared and ``natural_key()`` does
    not return exactly one field.
    """
    declared, source = declaration(model)
    label = model._meta.label
    if declared is not None:
        try:
            model._meta.get_field(declared)
        except FieldDoesNotExist:
            raise ImproperlyConfigured(
                f"{label} has no field {declared!r} to find tenants by ({source}): set "
                f"{source} to one of its fields ({', '.join(_field_names(model))})."
            ) from None
        return declared
    fields = natural_key_fields(model)
    if fields is None or len(fields) != 1:
        found = "returns no field as is" if not fields else f"has several fields ({fields})"
        raise ImproperlyConfigured(
            f"{label} declares no field to find tenants by, and its natural_key() {found}: "
            f"set {MODEL_ATTRIBUTE} = '<field>' on {model.__name__} (or the "
            "TENANCY_TENANT_LOOKUP_FIELD setting) to the field a subdomain or header holds."
        )
    return fields[0]


def lookup_field_or_none(model: type[models.Model]) -> str | None:
    """Return :func:`lookup_field`, or None when the model has none (commands that can
    also find tenants by schema)."""
    try:
        return lookup_field(model)
    except ImproperlyConfigured:
        return None


def declaration(model: type[models.Model]) -> tuple[str | None, str]:
    """Return the declared lookup field (or None) and where it is declared."""
    setting = conf.tenant_lookup_field()
    if setting is not None:
        return setting, "TENANCY_TENANT_LOOKUP_FIELD"
    attribute = getattr(model, MODEL_ATTRIBUTE, None)
    where = f"{model.__name__}.{MODEL_ATTRIBUTE}"
    return (None if attribute is None else str(attribute)), where


def natural_key_fields(model: type[models.Model]) -> tuple[str, ...] | None:
    """Return the fields ``model.natural_key()`` returns, in order, or None when a part
    of the key is not a field's value as is (or the method fails on a probe)."""
    method = getattr(model, "natural_key", None)
    return None if method is None else _natural_key_fields(model, method)


@lru_cache(maxsize=32)
def _natural_key_fields(model: type[models.Model], method: Callable[..., Any]) -> Any:
    # Keyed by the method too, so a natural_key() replaced at run time is probed again.
    del method
    probe: Any = model.__new__(model)  # no __init__: no defaults, no signals
    probe._state = models.base.ModelState()
    markers: dict[str, str] = {}
    for field in model._meta.concrete_fields:
        if field.is_relation:
            # The related object is None: no query for it, and the key names no field.
            field.set_cached_value(probe, None)  # type: ignore[attr-defined]
        marker = f"\x00tenancy-probe:{field.attname}\x00"
        probe.__dict__[field.attname] = marker
        markers[marker] = field.name
    try:
        key = probe.natural_key()
    except Exception:  # any failure on a probe means "no plain field"
        return None
    if not isinstance(key, tuple | list):
        return None
    names = tuple(markers.get(part) if isinstance(part, str) else None for part in key)
    return None if not names or None in names else names


def _field_names(model: type[models.Model]) -> list[str]:
    return [field.name for field in model._meta.concrete_fields]
