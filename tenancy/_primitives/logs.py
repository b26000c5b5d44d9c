"""Log lines that say which tenant, schema and Celery task they are about.

The lifecycle runs in workers that serve many tenants at once; a log line
without the tenant is of little use. :func:`context` binds fields for a
block (a task binds its id, the lifecycle the tenant and schema), and
loggers from :func:`get_logger` prefix every message with them and attach
them to the record as ``record.tenancy`` for structured handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_fields: ContextVar[dict[str, str]] = ContextVar("tenancy_log_fields", default={})  # noqa: B039

#: The order fields appear in the message prefix.
ORDER = ("tenant", "schema", "database", "task")


@contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Bind ``fields`` (tenant, schema, database, task) to log lines in the block."""
    merged = {**_fields.get(), **{k: _safe(v) for k, v in fields.items() if v is not None}}
    token = _fields.set(merged)
    try:
        yield
    finally:
        _fields.reset(token)


def _safe(value: Any) -> str:
    """Render a field on one line: a tenant's name cannot forge another log line."""
    text = str(value)
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text


def current() -> dict[str, str]:
    """Return the fields bound now."""
    return dict(_fields.get())


class ContextLogger(logging.LoggerAdapter):
    """Prefix each message with the bound fields: ``[tenant=acme schema=tenant_acme task=…]``."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        fields = _fields.get()
        if not fields:
            return msg, kwargs
        kwargs["extra"] = {**kwargs.get("extra", {}), "tenancy": dict(fields)}
        prefix = " ".join(f"{k}={fields[k]}" for k in ORDER if k in fields)
        # The values are data: a '%' must not reach the message's format string.
        return f"[{prefix.replace('%', '%%')}] {msg}", kwargs


def get_logger(name: str) -> ContextLogger:
    """Return the context-aware logger ``name``."""
    return ContextLogger(logging.getLogger(name), {})
