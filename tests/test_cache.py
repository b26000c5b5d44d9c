"""The per-process class cache: hits, bounds, eviction and garbage collection."""

import gc
import weakref

from django.contrib.auth.models import User

import tenancy
from tenancy._classes import cache
from tenancy._classes.factory import MODEL_SIGNALS
from tests.testapp import receivers
from tests.testapp.models import Category, Product, Profile, Project


def test_for_tenant_returns_the_same_class_while_cached(tenant):
    assert Project.for_tenant(tenant) is Project.for_tenant(tenant)


def test_a_cache_hit_does_not_touch_the_database(tenant, django_assert_num_queries):
    Project.for_tenant(tenant)
    with django_assert_num_queries(0):
        for _ in range(100):
            Project.for_tenant(tenant)


def test_one_build_makes_every_class_of_the_tenant(tenant):
    Category.for_tenant(tenant)
    assert cache.cached(tenant.db_schema).models[Product] is Product.for_tenant(tenant)


def test_the_cache_is_bounded_and_evicts_the_least_recently_used(make_tenant, settings):
    settings.TENANCY_MODEL_CACHE_SIZE = 2
    a, b, c = make_tenant("a"), make_tenant("b"), make_tenant("c")
    tenancy.clear_cache()
    Project.for_tenant(a), Project.for_tenant(b)
    Project.for_tenant(a)  # a is now the most recently used
    Project.for_tenant(c)
    assert cache.cached_schemas() == ["tenant_a", "tenant_c"]


def test_clear_cache_forgets_every_class(tenant):
    first = Project.for_tenant(tenant)
    tenancy.clear_cache()
    assert cache.cached_schemas() == []
    assert Project.for_tenant(tenant) is not first


def test_evicted_classes_are_garbage_collected(tenant):
    user = User.objects.create(username="sponsor")
    model = Project.for_tenant(tenant)
    model.objects.create(name="p", sponsor=user).watchers.add(user)
    refs = [weakref.ref(m) for m in cache.cached(tenant.db_schema).apps.get_models(True)]
    del model
    receivers.calls.clear()  # the test app's receivers keep the instances they saw
    tenancy.clear_cache()
    gc.collect()
    assert [ref for ref in refs if ref() is not None] == []


def test_evicted_classes_leave_no_reverse_accessor_on_shared_models(tenant):
    accessor = f"{tenant.db_schema}_project_sponsored"
    Project.for_tenant(tenant)
    assert accessor in User.__dict__
    tenancy.clear_cache()
    assert accessor not in User.__dict__


def test_evicted_classes_leave_no_signal_receivers_behind(tenant):
    def senders():
        return sum(len(signal.receivers) for signal in MODEL_SIGNALS)

    before = senders()
    Project.for_tenant(tenant)
    assert senders() > before
    tenancy.clear_cache()
    assert senders() == before


def _shared_accessors(tenant) -> set[str]:
    """The reverse accessors this tenant's classes put on User (FK, one-to-one, m2m)."""
    return {name for name in vars(User) if name.startswith(tenant.db_schema)}


def test_every_kind_of_relation_to_a_shared_model_lets_go_of_its_classes(tenant):
    """A foreign key and a one-to-one to User set a reverse accessor on User (a
    many-to-many's lives on the tenant's proxy of User); evicting the tenant removes
    them, and nothing keeps its classes alive (else the cache bound would not bound
    memory)."""
    user = User.objects.create(username="fan")
    profile = Profile.for_tenant(tenant).objects.create(user=user)
    profile.fans.add(user)
    Project.for_tenant(tenant).objects.create(name="p", sponsor=user)
    assert getattr(user, f"{tenant.db_schema}_profile_profile") == profile
    assert _shared_accessors(tenant) == {
        f"{tenant.db_schema}_project_sponsored",
        f"{tenant.db_schema}_profile_profile",
    }
    refs = [weakref.ref(m) for m in cache.cached(tenant.db_schema).apps.get_models(True)]
    del profile, user
    receivers.calls.clear()
    tenancy.clear_cache()
    gc.collect()
    assert _shared_accessors(tenant) == set()
    assert [ref() for ref in refs if ref() is not None] == []


def test_deleting_a_tenant_releases_its_classes_in_this_process_at_once(make_tenant):
    tenant = make_tenant("short_lived")
    Profile.for_tenant(tenant).objects.create(user=User.objects.create(username="u"))
    refs = [weakref.ref(m) for m in cache.cached(tenant.db_schema).apps.get_models(True)]
    schema = tenant.db_schema
    receivers.calls.clear()
    tenant.delete()
    gc.collect()
    assert cache.cached(schema) is None
    assert not any(name.startswith(schema) for name in vars(User))
    assert [ref() for ref in refs if ref() is not None] == []
