"""The per-process class cache: hits, bounds, eviction and garbage collection."""

import gc
import weakref

from django.contrib.auth.models import User

import tenancy
from tenancy._classes import cache
from tenancy._classes.factory import MODEL_SIGNALS
from tests.testapp import receivers
from tests.testapp.models import Category, Product, Project


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
