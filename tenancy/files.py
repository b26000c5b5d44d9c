"""Per-tenant files: any Django storage, with paths under the tenant's own prefix.

Each tenant incarnation owns one prefix of a storage,
``tenants/<schema>/<incarnation>/``: the schema name (never given to another
tenant) and the incarnation (never reused, so a tenant signed up again under
the same name starts empty). Two ways to use it:

- :class:`TenantStorage` wraps a storage for one tenant: names are relative to
  the tenant's prefix, and a name that climbs out of it (``../``, an absolute
  path) is refused with ``SuspiciousFileOperation``::

      storage = TenantStorage(request.tenant)          # storages["default"]
      name = storage.save("logo.png", upload)          # tenants/tenant_acme/<hex>/logo.png
      storage.open(name).read()

- :class:`upload_to` on a template's ``FileField`` stores each tenant's uploads
  under its prefix of the field's storage (a tenant's class knows its tenant)::

      class Invoice(TenantModel):
          pdf = models.FileField(upload_to=tenancy.files.upload_to("invoices/%Y/"))

When a tenant is dropped, its prefix is removed from each storage that
``TENANCY_FILE_STORAGES`` names (default ``["default"]``; ``[]`` keeps every
file) by :func:`remove_dropped_tenant_files`, the receiver of
``tenancy.signals.tenant_dropped``: only that incarnation's prefix, and never
while a tenant of that incarnation exists (a tenant moved to another database
keeps its files).
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import re
from datetime import datetime
from typing import IO, Any

from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation
from django.core.files.base import File
from django.core.files.storage import FileSystemStorage, Storage, storages
from django.utils.deconstruct import deconstructible

from tenancy._classes import cache
from tenancy._primitives import conf, shared
from tenancy._primitives.markers import TENANT_ATTR
from tenancy.exceptions import TenancyError, TenantDeleted

__all__ = [
    "ROOT",
    "TenantStorage",
    "remove_dropped_tenant_files",
    "tenant_prefix",
    "upload_to",
]

logger = logging.getLogger("tenancy.files")

#: The directory of a storage under which every tenant's prefix lies.
ROOT = "tenants"

#: What a schema name and an incarnation may hold: no separator, no dot-dot.
_PART = re.compile(r"[A-Za-z0-9_-]+")


def tenant_prefix(tenant: Any) -> str:
    """Return ``tenants/<schema>/<incarnation>``: where ``tenant``'s files lie in a storage.

    Raises ``TenancyError`` for a tenant that is not named yet (not saved).
    """
    return _prefix(tenant.db_schema, tenant.incarnation, tenant)


def _prefix(schema: str | None, incarnation: str | None, tenant: Any) -> str:
    if not schema or not incarnation:
        raise TenancyError(
            f"Tenant {tenant!r} has no schema or incarnation yet: save it before storing its files."
        )
    if not (_PART.fullmatch(schema) and _PART.fullmatch(incarnation)):
        raise TenancyError(f"Tenant {tenant!r} has a schema or incarnation unfit for a path.")
    return f"{ROOT}/{schema}/{incarnation}"


def _relative(name: Any) -> str:
    """Return ``name`` normalised, or raise ``SuspiciousFileOperation`` if it could leave
    the directory it is relative to."""
    text = str(name).replace("\\", "/")
    parts = text.split("/")
    if text.startswith("/") or ".." in parts or "\x00" in text or re.match(r"^[A-Za-z]:", text):
        raise SuspiciousFileOperation(
            f"Detected path traversal attempt in {name!r}: a tenant's file name must stay "
            "inside the tenant's directory."
        )
    normalised = posixpath.normpath(text)
    return "" if normalised == "." else normalised


class TenantStorage(Storage):
    """A storage that keeps one tenant's files under its prefix of ``base``.

    ``base`` is a storage or the alias of one in ``settings.STORAGES`` (default
    ``"default"``). Every ``Storage`` method works with names relative to the
    tenant's prefix (:func:`tenant_prefix`), and the names it returns are too.
    Raises ``SuspiciousFileOperation`` for a name that would leave the prefix.
    Example::

        storage = TenantStorage(customer, base="default")
        name = storage.save("reports/2025.csv", ContentFile(b"..."))
        storage.listdir("reports")     # ([], ["2025.csv"])
        storage.url(name)              # the base storage's URL of tenants/<schema>/<hex>/...
    """

    def __init__(self, tenant: Any, base: Storage | str = "default") -> None:
        self.tenant = tenant
        self.prefix = tenant_prefix(tenant)
        self.base = storages[base] if isinstance(base, str) else base

    def __repr__(self) -> str:
        return f"<TenantStorage {self.prefix!r} of {self.base!r}>"

    def full_name(self, name: Any) -> str:
        """Return the base storage's name of the tenant's file ``name``."""
        relative = _relative(name)
        return f"{self.prefix}/{relative}" if relative else self.prefix

    def _tenant_name(self, full: str) -> str:
        """Return the tenant's name of the base storage's ``full`` name."""
        full = full.replace("\\", "/")
        if not full.startswith(self.prefix + "/"):
            raise SuspiciousFileOperation(
                f"The storage gave back {full!r}, outside the tenant's {self.prefix!r}."
            )
        return full[len(self.prefix) + 1 :]

    def _longer(self, max_length: int | None) -> int | None:
        return None if max_length is None else max_length + len(self.prefix) + 1

    # -- the Storage API, on the base storage's names --------------------------------

    def _open(self, name: str, mode: str = "rb") -> File:
        return self.base.open(self.full_name(name), mode)

    def save(self, name: str | None, content: IO[Any], max_length: int | None = None) -> str:
        if name is None:
            name = getattr(content, "name", None)
        if not name:
            raise SuspiciousFileOperation("A tenant's file needs a name.")
        saved = self.base.save(self.full_name(name), content, max_length=self._longer(max_length))
        return self._tenant_name(saved)

    def get_valid_name(self, name: str) -> str:
        return self.base.get_valid_name(name)

    def get_alternative_name(self, file_root: str, file_ext: str) -> str:
        return self.base.get_alternative_name(file_root, file_ext)

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        full = self.base.get_available_name(self.full_name(name), self._longer(max_length))
        return self._tenant_name(full)

    def delete(self, name: str) -> None:
        self.base.delete(self.full_name(name))

    def exists(self, name: str) -> bool:
        return self.base.exists(self.full_name(name))

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        full = self.full_name(path)
        try:
            return self.base.listdir(full)
        except FileNotFoundError:
            if full == self.prefix:  # a tenant without files yet has an empty directory
                return [], []
            raise

    def size(self, name: str) -> int:
        return self.base.size(self.full_name(name))

    def url(self, name: str | None) -> str:
        return self.base.url(self.full_name(name or ""))

    def path(self, name: str) -> str:
        return self.base.path(self.full_name(name))

    def get_accessed_time(self, name: str) -> datetime:
        return self.base.get_accessed_time(self.full_name(name))

    def get_created_time(self, name: str) -> datetime:
        return self.base.get_created_time(self.full_name(name))

    def get_modified_time(self, name: str) -> datetime:
        return self.base.get_modified_time(self.full_name(name))


@deconstructible(path="tenancy.files.upload_to")
class upload_to:  # used like a function: upload_to("invoices/")
    """The ``upload_to`` of a template's ``FileField``: each tenant's uploads under its prefix.

    ``directory`` is formatted with ``strftime()`` as Django formats a string
    ``upload_to``; the file lands at ``tenants/<schema>/<incarnation>/<directory>/<name>``
    of the field's storage, and the field stores that whole name. Raises
    ``SuspiciousFileOperation`` for a directory or file name that would leave the
    prefix, ``TenancyError`` for an instance of a template rather than a tenant's
    class. Migrations serialise it as ``tenancy.files.upload_to("...")``. Example::

        class Invoice(TenantModel):
            pdf = models.FileField(upload_to=upload_to("invoices/%Y/"))

        Invoice.for_tenant(customer).objects.create(pdf=ContentFile(b"%PDF", name="a.pdf"))
    """

    def __init__(self, directory: str = "") -> None:
        self.directory = directory

    def __eq__(self, other: object) -> bool:
        return isinstance(other, upload_to) and other.directory == self.directory

    def __hash__(self) -> int:
        return hash((upload_to, self.directory))

    def __call__(self, instance: Any, filename: str) -> str:
        directory = datetime.now().strftime(self.directory)
        relative = _relative(posixpath.join(directory, str(filename).replace("\\", "/")))
        return f"{_instance_prefix(instance)}/{relative}"


def _instance_prefix(instance: Any) -> str:
    """Return the prefix of the tenant whose class ``instance`` is of."""
    model = type(instance)
    schema = getattr(model, TENANT_ATTR, None)
    if not schema:
        raise TenancyError(
            f"{model.__name__} is no tenant's class: save files through "
            f"{model.__name__}.for_tenant(tenant), whose instances know their tenant."
        )
    bundle = cache.cached(schema)
    if bundle is not None and bundle.incarnation:
        return _prefix(schema, bundle.incarnation, schema)
    # Evicted from this process's cache meanwhile: a schema name is never given to
    # another tenant, so the row of that schema is this instance's tenant.
    incarnation = shared.tenants().filter(db_schema=schema).values_list("incarnation", flat=True)
    found = incarnation.first()
    if found is None:
        raise TenantDeleted(schema, "Its files cannot be stored any more.")
    return _prefix(schema, found, schema)


def remove_dropped_tenant_files(
    sender: Any, *, schema: str, incarnation: str = "", **kwargs: Any
) -> None:
    """Remove a dropped tenant's files from the storages ``TENANCY_FILE_STORAGES`` names.

    The receiver of ``tenancy.signals.tenant_dropped`` (connected at start-up).
    Only ``tenants/<schema>/<incarnation>/`` is removed; nothing is removed
    while a tenant of that incarnation exists (the drop of a moved tenant's
    source copy), nor for a tenant of an earlier version without an incarnation.
    A storage that fails is logged and the others are still cleaned.
    """
    aliases = conf.file_storages()
    if not aliases or not incarnation:
        return
    if shared.tenants().filter(incarnation=incarnation).exists():
        return
    prefix = _prefix(schema, incarnation, schema)
    for alias in aliases:
        try:
            storage = storages[alias]
        except Exception as exc:
            raise ImproperlyConfigured(
                f"TENANCY_FILE_STORAGES names {alias!r}, which is not in STORAGES."
            ) from exc
        try:
            removed = _remove_tree(storage, prefix)
        except Exception:
            logger.exception("could not remove dropped tenant %s's files from %r", schema, alias)
            continue
        logger.info("removed %d files of dropped tenant %s from %r", removed, schema, alias)


def _remove_tree(storage: Storage, directory: str) -> int:
    """Delete every file under ``directory`` of ``storage``; return how many."""
    if isinstance(storage, FileSystemStorage) and os.path.islink(storage.path(directory)):
        # Never followed: it may lead out of the tenant's directory. The link goes.
        os.unlink(storage.path(directory))
        return 0
    try:
        directories, files = storage.listdir(directory)
    except FileNotFoundError:
        return 0
    removed = 0
    for name in files:
        storage.delete(f"{directory}/{name}")
        removed += 1
    for name in directories:
        removed += _remove_tree(storage, f"{directory}/{name}")
    if isinstance(storage, FileSystemStorage):
        # A file system keeps empty directories; object stores have none to remove.
        _remove_empty_directory(storage, directory)
        _remove_empty_directory(storage, posixpath.dirname(directory))  # tenants/<schema>
    return removed


def _remove_empty_directory(storage: FileSystemStorage, directory: str) -> None:
    # Not empty (another incarnation's files), or already gone: left as it is.
    with contextlib.suppress(OSError):
        os.rmdir(storage.path(directory))
