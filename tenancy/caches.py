"""Per-tenant caches: any configured Django cache, with keys that carry the tenant.

``tenant.cache`` (or ``for_tenant(tenant, alias)``) is a proxy of the cache
``alias`` of ``settings.CACHES`` whose every key is prefixed with the
tenant's *incarnation*: ``tenancy:<incarnation>:<your key>``. The incarnation
is 32 hex digits and names one life of the tenant, so

- two tenants' keys never collide, whatever the key strings (the prefix ends
  at the first colon after ``tenancy:``, which no incarnation contains);
- a tenant deleted and signed up again under the same name is a new
  incarnation and never reads the old tenant's entries.

Nothing global is kept: the proxy holds the incarnation and the alias, and
asks Django for the alias's backend at each call (backends are per thread).

``clear()`` removes only the tenant's keys, where the backend can find keys
by prefix: Django's ``RedisCache`` (``SCAN`` and ``DEL`` on the write
server), django-redis (``delete_pattern()``) and ``LocMemCache``. Elsewhere
(memcached, the file and database caches) it raises
:class:`~tenancy.exceptions.TenantCacheNotClearable`: a global ``clear()``
would wipe every tenant's entries. When a tenant is dropped, its keys are
removed from each configured cache that can do so (:func:`forget_dropped_tenant`,
connected to ``tenancy.signals.tenant_dropped``); on the other backends they
are unreachable from then on and go when their timeout does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache

from tenancy._primitives import shared
from tenancy.exceptions import TenancyError, TenantCacheNotClearable

__all__ = ["TenantCache", "for_tenant", "forget_dropped_tenant"]

logger = logging.getLogger("tenancy.caches")

#: Stands for "any key" in a key made by the backend's key function, so a pattern of
#: the tenant's keys is derived from whatever ``KEY_FUNCTION`` the cache uses.
_ANY = "\x00tenancy-any\x00"
#: Keys deleted per ``DEL`` when a Redis cache is cleared for one tenant.
_DELETE_BATCH = 500


def for_tenant(tenant: Any, alias: str = "default") -> TenantCache:
    """Return the cache ``alias`` of ``settings.CACHES`` as seen by ``tenant``.

    ``tenant`` is a saved tenant (an ``AbstractTenant`` instance); it need not
    be ready. Raises ``TenancyError`` for a tenant that has no incarnation yet
    (not saved), and ``InvalidCacheBackendError`` (Django's) for an alias that
    is not configured. Example::

        cache = tenancy.caches.for_tenant(request.tenant)
        cache.set("dashboard", html, timeout=300)
        cache.get("dashboard")          # never another tenant's "dashboard"
    """
    return TenantCache(tenant, alias)


class TenantCache(BaseCache):
    """A proxy of a Django cache whose keys carry one tenant's incarnation.

    Every method of Django's cache API is here, with the same arguments and
    results (keys given back, as by ``get_many()``, are the caller's keys):
    ``get``, ``set``, ``add``, ``delete``, ``touch``, ``has_key``, ``incr``,
    ``decr``, ``get_many``, ``set_many``, ``delete_many``, ``get_or_set``,
    ``incr_version``, ``decr_version``, ``clear``, ``close`` and their ``a*``
    async twins. ``clear()`` removes the tenant's keys (of the cache's
    ``VERSION``) only, or raises ``TenantCacheNotClearable``.
    """

    def __init__(self, tenant: Any, alias: str = "default") -> None:
        incarnation = getattr(tenant, "incarnation", None)
        # No colon in it: the prefix then ends at a known place, whatever the key.
        if not incarnation or ":" in str(incarnation):
            raise TenancyError(
                f"Tenant {tenant!r} has no incarnation yet: save it before using its cache."
            )
        self.tenant = tenant
        self.alias = alias
        self.prefix = f"tenancy:{incarnation}:"
        # BaseCache's own attributes, for code that reads them off a cache.
        super().__init__({})
        backend = self.backend
        self.default_timeout = backend.default_timeout
        self.key_prefix = backend.key_prefix
        self.version = backend.version

    @property
    def backend(self) -> BaseCache:
        """The proxied cache (Django's backend of this thread for ``alias``)."""
        return caches[self.alias]

    def __repr__(self) -> str:
        return f"<TenantCache {self.alias!r} of tenant {self.tenant!r}>"

    # -- keys ----------------------------------------------------------------------

    def key(self, key: Any) -> str:
        """Return the key the proxied cache stores ``key`` of this tenant under."""
        return f"{self.prefix}{key}"

    def _keys(self, keys: Iterable[Any]) -> dict[str, Any]:
        """Return ``{stored key: caller's key}``."""
        return {self.key(key): key for key in keys}

    def make_key(self, key: Any, version: int | None = None) -> str:
        return self.backend.make_key(self.key(key), version)

    def validate_key(self, key: Any) -> None:
        self.backend.validate_key(self.key(key))

    def make_and_validate_key(self, key: Any, version: int | None = None) -> str:
        return self.backend.make_and_validate_key(self.key(key), version)

    def get_backend_timeout(self, timeout: Any = DEFAULT_TIMEOUT) -> Any:
        return self.backend.get_backend_timeout(timeout)

    # -- one key -------------------------------------------------------------------

    def add(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return self.backend.add(self.key(key), value, timeout, version)

    def get(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return self.backend.get(self.key(key), default, version)

    def set(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        self.backend.set(self.key(key), value, timeout, version)

    def touch(self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return self.backend.touch(self.key(key), timeout, version)

    def delete(self, key: Any, version: int | None = None) -> bool:
        return self.backend.delete(self.key(key), version)

    def has_key(self, key: Any, version: int | None = None) -> bool:
        return self.backend.has_key(self.key(key), version)

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return self.backend.incr(self.key(key), delta, version)

    def decr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return self.backend.decr(self.key(key), delta, version)

    def get_or_set(
        self,
        key: Any,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> Any:
        return self.backend.get_or_set(self.key(key), default, timeout, version)

    def incr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return self.backend.incr_version(self.key(key), delta, version)

    def decr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return self.backend.decr_version(self.key(key), delta, version)

    # -- many keys -----------------------------------------------------------------

    def get_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        stored = self._keys(keys)
        found = self.backend.get_many(list(stored), version)
        return {stored[key]: value for key, value in found.items()}

    def set_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> list[Any]:
        stored = self._keys(data)
        failed = self.backend.set_many(
            {key: data[mine] for key, mine in stored.items()}, timeout, version
        )
        return [stored[key] for key in failed]

    def delete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        self.backend.delete_many(list(self._keys(keys)), version)

    # -- the whole tenant ----------------------------------------------------------

    def clear(self) -> None:
        """Delete this tenant's keys (of the cache's ``VERSION``), and no one else's.

        Raises :class:`~tenancy.exceptions.TenantCacheNotClearable` on a backend that
        cannot find keys by prefix (memcached, the file and database caches).
        """
        removed = _clear_prefix(self.backend, self.key(_ANY), self.alias)
        logger.debug("cleared %d keys of %r", removed, self)

    def close(self, **kwargs: Any) -> None:
        self.backend.close(**kwargs)

    # -- async twins: the backend's own, so its async implementation is used -------

    async def aadd(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return await self.backend.aadd(self.key(key), value, timeout, version)

    async def aget(self, key: Any, default: Any = None, version: int | None = None) -> Any:
        return await self.backend.aget(self.key(key), default, version)

    async def aset(
        self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> None:
        await self.backend.aset(self.key(key), value, timeout, version)

    async def atouch(
        self, key: Any, timeout: Any = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return await self.backend.atouch(self.key(key), timeout, version)

    async def adelete(self, key: Any, version: int | None = None) -> bool:
        return await self.backend.adelete(self.key(key), version)

    async def ahas_key(self, key: Any, version: int | None = None) -> bool:
        return await self.backend.ahas_key(self.key(key), version)

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return await self.backend.aincr(self.key(key), delta, version)

    async def adecr(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return await self.backend.adecr(self.key(key), delta, version)

    async def aget_or_set(
        self,
        key: Any,
        default: Any,
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> Any:
        return await self.backend.aget_or_set(self.key(key), default, timeout, version)

    async def aincr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return await self.backend.aincr_version(self.key(key), delta, version)

    async def adecr_version(self, key: Any, delta: int = 1, version: int | None = None) -> int:
        return await self.backend.adecr_version(self.key(key), delta, version)

    async def aget_many(self, keys: Iterable[Any], version: int | None = None) -> dict[Any, Any]:
        stored = self._keys(keys)
        found = await self.backend.aget_many(list(stored), version)
        return {stored[key]: value for key, value in found.items()}

    async def aset_many(
        self,
        data: Mapping[Any, Any],
        timeout: Any = DEFAULT_TIMEOUT,
        version: int | None = None,
    ) -> list[Any]:
        stored = self._keys(data)
        failed = await self.backend.aset_many(
            {key: data[mine] for key, mine in stored.items()}, timeout, version
        )
        return [stored[key] for key in failed]

    async def adelete_many(self, keys: Iterable[Any], version: int | None = None) -> None:
        await self.backend.adelete_many(list(self._keys(keys)), version)

    async def aclear(self) -> None:
        """The async twin of :meth:`clear`, with its errors."""
        await sync_to_async(self.clear)()

    async def aclose(self, **kwargs: Any) -> None:
        await self.backend.aclose(**kwargs)


def forget_dropped_tenant(
    sender: Any, *, schema: str, incarnation: str = "", **kwargs: Any
) -> None:
    """Remove a dropped tenant's keys from every configured cache that can find them.

    The receiver of ``tenancy.signals.tenant_dropped`` (connected at start-up). The
    source copy of a tenant moved to another database is dropped too, with the same
    incarnation: while a tenant of that incarnation exists, nothing is removed. A
    cache that cannot delete by prefix is skipped: the keys of a dropped
    incarnation are never read again and expire with their timeout. A cache that
    fails is logged and the others are still cleared.
    """
    if not incarnation or shared.tenants().filter(incarnation=incarnation).exists():
        return  # no incarnation to match, or the tenant lives on (moved to another database)
    for alias in settings.CACHES:
        backend = caches[alias]
        try:
            removed = _clear_prefix(backend, f"tenancy:{incarnation}:{_ANY}", alias)
        except TenantCacheNotClearable:
            continue
        except Exception:
            logger.exception("could not remove dropped tenant %s's keys from %r", schema, alias)
            continue
        logger.info("removed %d cache keys of dropped tenant %s from %r", removed, schema, alias)


def _clear_prefix(backend: BaseCache, key: str, alias: str) -> int:
    """Delete the keys of ``backend`` that ``key`` (holding ``_ANY``) stands for; return
    how many."""
    if isinstance(backend, DummyCache):
        return 0  # it keeps nothing
    if hasattr(backend, "delete_pattern"):  # django-redis
        return int(backend.delete_pattern(key.replace(_ANY, "*")) or 0)
    made = backend.make_key(key)
    if made.count(_ANY) != 1:
        raise TenantCacheNotClearable(alias, "its KEY_FUNCTION does not keep the key readable")
    head, tail = made.split(_ANY)
    # The private parts of Django's own backends: the client, the dictionary and its lock.
    internals: Any = backend
    if isinstance(backend, RedisCache):
        client = internals._cache.get_client(write=True)
        pattern = f"{_redis_escape(head)}*{_redis_escape(tail)}"
        removed = 0
        batch: list[bytes] = []
        for found in client.scan_iter(match=pattern, count=_DELETE_BATCH):
            batch.append(found)
            if len(batch) == _DELETE_BATCH:
                removed += client.delete(*batch)
                batch.clear()
        if batch:
            removed += client.delete(*batch)
        return removed
    if isinstance(backend, LocMemCache):
        with internals._lock:
            doomed = [
                stored
                for stored in internals._cache
                if stored.startswith(head)
                and stored.endswith(tail)
                and len(stored) >= len(head) + len(tail)
            ]
            for stored in doomed:
                internals._delete(stored)
        return len(doomed)
    raise TenantCacheNotClearable(alias, f"{type(backend).__name__} cannot find keys by prefix")


def _redis_escape(text: str) -> str:
    """Escape the characters that a Redis ``MATCH`` pattern gives a meaning."""
    return "".join(f"\\{c}" if c in "*?[]^\\" else c for c in text)
