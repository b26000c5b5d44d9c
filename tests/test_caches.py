"""tenancy.caches: a Django cache per tenant, on a real Redis (and the local-memory cache).

The Redis cache is Django's own RedisCache on database 11 of the local server,
under a key prefix of its own per test, so nothing else's keys are touched.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis
from django.core.cache import caches

from tenancy.caches import TenantCache, for_tenant, forget_dropped_tenant
from tenancy.exceptions import TenancyError, TenantCacheNotClearable
from tests.testapp.models import Customer

REDIS_URL = "redis://127.0.0.1:6379/11"


@pytest.fixture
def raw():
    return redis.Redis.from_url(REDIS_URL)


@pytest.fixture
def prefix(settings, raw, tmp_path):
    """Configure "default" as a Redis cache under a fresh KEY_PREFIX; return the prefix."""
    prefix = f"h15-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": prefix,
        },
        "memory": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"h15-{prefix}",
        },
        "files": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        },
    }
    yield prefix
    for key in raw.scan_iter(match=f"{prefix}:*"):
        raw.delete(key)


def fake_tenant(name: str = "h15cache", incarnation: str | None = None) -> Customer:
    """A tenant instance as read from its row (no database needed for its cache)."""
    return Customer(
        name=name, db_schema=f"tenant_{name}", incarnation=incarnation or uuid.uuid4().hex
    )


def stored(raw, prefix: str) -> set[str]:
    return {key.decode() for key in raw.scan_iter(match=f"{prefix}:*")}


def test_a_tenant_cache_stores_its_keys_under_the_tenants_incarnation_in_redis(prefix, raw):
    tenant = fake_tenant()
    tenant.cache.set("plan", "pro")
    assert stored(raw, prefix) == {f"{prefix}:1:tenancy:{tenant.incarnation}:plan"}
    assert tenant.cache.get("plan") == "pro"
    assert caches["default"].get("plan") is None  # the project's own key space is apart
    assert isinstance(tenant.cache, TenantCache)
    assert for_tenant(tenant).get("plan") == "pro"
    assert for_tenant(tenant, "memory").get("plan") is None  # another alias, another cache


@pytest.mark.parametrize(
    "key",
    ["plan", "", ":", "a:b", "tenancy:", "1:tenancy:x:plan", "*", "[a]", "ü", "x" * 150],
)
def test_two_tenants_never_share_a_key_whatever_the_key_string(prefix, key):
    acme, globex = fake_tenant("h15cachea"), fake_tenant("h15cacheb")
    # A key of one tenant that spells out the other's prefix is still its own.
    forged = f"{globex.incarnation}:{key}"
    acme.cache.set(key, "acme")
    acme.cache.set(forged, "forged by acme")
    assert globex.cache.get(key) is None
    assert globex.cache.get(forged) is None
    globex.cache.set(key, "globex")
    assert acme.cache.get(key) == "acme"
    assert acme.cache.make_key(key) != globex.cache.make_key(key)


def test_a_tenant_signed_up_again_under_the_same_name_does_not_see_the_old_entries(prefix):
    first = fake_tenant("h15again")
    first.cache.set("plan", "pro")
    again = fake_tenant("h15again")  # same name and schema, a new incarnation
    assert again.cache.get("plan") is None
    assert again.cache.get_many(["plan"]) == {}


def test_every_method_of_django_cache_api_works_through_the_proxy(prefix):
    cache = fake_tenant().cache
    assert cache.add("a", 1) is True
    assert cache.add("a", 2) is False
    assert cache.get("a") == 1 and "a" in cache and cache.has_key("a")
    assert cache.get("missing", "default") == "default"
    assert cache.incr("a") == 2 and cache.incr("a", 10) == 12 and cache.decr("a", 2) == 10
    assert cache.touch("a", 100) is True and cache.touch("missing") is False
    assert cache.set_many({"b": "B", "c": "C"}) == []
    assert cache.get_many(["a", "b", "c", "missing"]) == {"a": 10, "b": "B", "c": "C"}
    cache.delete_many(["b", "c"])
    assert cache.get_many(["b", "c"]) == {}
    assert cache.get_or_set("d", lambda: "computed") == "computed"
    assert cache.get_or_set("d", "other") == "computed"
    assert cache.delete("d") is True and cache.delete("d") is False
    cache.set("v", "one")
    assert cache.incr_version("v") == 2
    assert cache.get("v", version=2) == "one" and cache.get("v") is None
    assert cache.decr_version("v", version=2) == 1 and cache.get("v") == "one"
    with pytest.raises(ValueError):
        cache.incr("missing")
    assert cache.default_timeout == caches["default"].default_timeout
    cache.close()


def test_every_async_method_works_through_the_proxy(prefix):
    cache = fake_tenant().cache

    async def use():
        assert await cache.aadd("a", 1) is True
        await cache.aset("b", "B")
        assert await cache.aget("a") == 1 and await cache.ahas_key("b")
        assert await cache.aincr("a", 5) == 6 and await cache.adecr("a") == 5
        assert await cache.atouch("a", 50) is True
        assert await cache.aset_many({"c": "C", "d": "D"}) == []
        assert await cache.aget_many(["a", "c", "missing"]) == {"a": 5, "c": "C"}
        await cache.adelete_many(["c", "d"])
        assert await cache.aget_or_set("e", "E") == "E"
        assert await cache.adelete("e") is True
        assert await cache.aincr_version("b") == 2 and await cache.adecr_version("b", version=2)
        await cache.aclear()
        assert await cache.aget_many(["a", "b"]) == {}
        await cache.aclose()

    asyncio.run(use())


@pytest.mark.parametrize("alias", ["default", "memory"])
def test_clear_removes_the_tenants_keys_and_no_one_elses(prefix, raw, alias):
    acme, globex = fake_tenant("h15cleara"), fake_tenant("h15clearb")
    # More keys than one DEL takes on Redis.
    acme.cache.set_many({f"k{i}": i for i in range(1200)})
    globex.cache.set("k1", "globex")
    caches[alias].set("k1", "the project's")
    for_tenant(acme, alias).set("k1", "acme")
    for_tenant(globex, alias).set("k1", "globex")
    for_tenant(acme, alias).clear()
    assert for_tenant(acme, alias).get("k1") is None
    assert for_tenant(globex, alias).get("k1") == "globex"
    assert caches[alias].get("k1") == "the project's"
    if alias == "default":
        assert not any(acme.incarnation in key for key in stored(raw, prefix))


def test_clear_on_a_cache_that_cannot_find_keys_by_prefix_refuses_and_keeps_every_key(prefix):
    acme, globex = fake_tenant("h15filesa"), fake_tenant("h15filesb")
    for_tenant(acme, "files").set("k", "acme")
    for_tenant(globex, "files").set("k", "globex")
    with pytest.raises(TenantCacheNotClearable, match="'files' cannot clear one tenant's keys"):
        for_tenant(acme, "files").clear()
    assert for_tenant(acme, "files").get("k") == "acme"
    assert for_tenant(globex, "files").get("k") == "globex"


def test_a_tenant_without_incarnation_has_no_cache():
    with pytest.raises(TenancyError, match="save it before using its cache"):
        _ = Customer(name="h15unsaved").cache


def test_dropping_a_tenant_removes_its_keys_from_redis(prefix, raw, make_tenant):
    gone, kept = make_tenant("h15cachegone"), make_tenant("h15cachekept")
    gone.cache.set("plan", "pro")
    kept.cache.set("plan", "basic")
    gone.delete()  # eager lifecycle: the drop runs inline, then tenant_dropped
    assert not any(gone.incarnation in key for key in stored(raw, prefix))
    assert kept.cache.get("plan") == "basic"


def test_the_drop_of_a_moved_tenants_source_copy_keeps_its_keys(prefix, make_tenant):
    moved = make_tenant("h15cachemoved")
    moved.cache.set("plan", "pro")
    # A move drops the source schema through a tombstone of the same incarnation.
    forget_dropped_tenant(
        Customer, schema=moved.db_schema, database="default", incarnation=moved.incarnation
    )
    assert moved.cache.get("plan") == "pro"
