"""Tenant classes copied from a prototype are what Django would have built.

``tenancy._classes.prototypes`` copies one tenant's classes for the next
instead of running ``ModelBase`` again. These tests hold the copy to the
build: the two graphs of classes, options, fields, relations, descriptors
and managers are compared object by object, every name of the prototype is
gone from a copy, no object of a copy is the prototype's unless it is also
shared by Django's own builds, and templates the copier cannot handle fall
back to Django's build.
"""

from __future__ import annotations

import datetime
import functools
import gc
import logging
import os
import subprocess
import sys
import types
import weakref
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.apps.registry import Apps
from django.contrib.auth.models import User
from django.db import models
from django.utils import timezone
from django.utils.functional import Promise, cached_property

import tenancy
from tenancy._classes import cache, factory, prototypes
from tenancy._classes.cloning import CARRIED_ATTR, SHAREABLE, Plan, Uncopyable, carried
from tenancy._classes.registry import TEMPLATES
from tests.testapp import receivers
from tests.testapp.models import Category, Product, Project, Tag

ROOT = Path(__file__).resolve().parent.parent

_LEAVES = (str, bytes, int, float, complex, bool, type(None), Decimal, Promise)
#: Options' caches, rebuilt on use; ``meta`` is deleted by Django once built.
_CACHES = frozenset({"_get_fields_cache", "_tenancy_relations"})
#: Attributes that differ between any two builds (a global counter of fields).
_PER_BUILD = frozenset({"creation_counter"})


def _cached(obj: Any) -> set[str]:
    return (
        {
            name
            for klass in type(obj).__mro__
            for name, value in vars(klass).items()
            if isinstance(value, (cached_property, functools.cached_property))
        }
        | _CACHES
        | _PER_BUILD
    )


class _Comparison:
    """Walk a built bundle and a copied one side by side; collect every difference."""

    def __init__(self, built: factory.TenantModels, copied: factory.TenantModels) -> None:
        self.built, self.copied = built, copied
        self.seen: dict[int, Any] = {}
        self.differences: list[str] = []

    def owned(self, cls: Any, bundle: factory.TenantModels) -> bool:
        return isinstance(cls, type) and cls in bundle.apps.get_models(include_auto_created=True)

    def run(self) -> list[str]:
        for template, model in self.built.models.items():
            self.compare(model, self.copied.models[template], template.__name__)
        return self.differences

    def differ(self, path: str, why: str) -> None:
        self.differences.append(f"{path}: {why}")

    def compare(self, a: Any, b: Any, path: str) -> None:
        if a is b:
            if isinstance(a, type) and self.owned(a, self.built):
                self.differ(path, "the copy holds a class of the build")
            return
        if id(a) in self.seen:
            if self.seen[id(a)][1] is not b:
                self.differ(path, "the copy does not preserve identity")
            return
        self.seen[id(a)] = (a, b)  # both kept alive: ids of temporaries are reused
        if isinstance(a, Apps):
            if not (a is self.built.apps and b is self.copied.apps):
                self.differ(path, "another registry")
            return
        if isinstance(a, type) or isinstance(b, type):
            if _same_exception(a, b):
                return  # DoesNotExist of a proxy or a through table: shared by copies
            if not (self.owned(a, self.built) and self.owned(b, self.copied)):
                self.differ(path, f"different classes {a!r} and {b!r}")
                return
            self.compare(a.__bases__, b.__bases__, f"{path}.__bases__")
            self.compare_state(vars(a), vars(b), path, set())
            return
        if not isinstance(b, type(a)):
            self.differ(path, f"{type(a).__name__} against {type(b).__name__}")
            return
        if isinstance(a, _LEAVES):
            if a != b:
                self.differ(path, f"{a!r} != {b!r}")
        elif type(a) in (list, tuple) or isinstance(a, tuple):
            if len(a) != len(b):
                self.differ(path, f"length {len(a)} != {len(b)}")
            for i, (x, y) in enumerate(zip(a, b, strict=False)):
                self.compare(x, y, f"{path}[{i}]")
        elif isinstance(a, dict):
            if len(a) != len(b):
                self.differ(path, f"keys {list(a)} != {list(b)}")
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=False):
                self.compare(ka, kb, f"{path}<key {ka!r}>")
                self.compare(va, vb, f"{path}[{ka!r}]")
        elif isinstance(a, (set, frozenset)):
            if {repr(x) for x in a} != {repr(x) for x in b}:
                self.differ(path, f"{a!r} != {b!r}")
        elif isinstance(a, functools.partial):
            self.compare((a.func, a.args, a.keywords), (b.func, b.args, b.keywords), path)
        elif isinstance(a, types.MethodType):
            self.compare((a.__func__, a.__self__), (b.__func__, b.__self__), path)
        elif isinstance(a, types.FunctionType):
            if a.__code__ is not b.__code__:
                self.differ(path, "another function")
            cells = [c.cell_contents for c in a.__closure__ or ()]
            self.compare(cells, [c.cell_contents for c in b.__closure__ or ()], path)
        elif hasattr(a, "__dict__"):
            self.compare_state(carried(a), carried(b), path, _cached(a))
        elif a != b:
            self.differ(path, f"{a!r} != {b!r}")

    def compare_state(self, a: dict, b: dict, path: str, skipped: set[str]) -> None:
        a = {k: v for k, v in a.items() if k not in skipped}
        b = {k: v for k, v in b.items() if k not in skipped}
        if set(a) != set(b):
            self.differ(path, f"attributes {sorted(set(a) ^ set(b))} on one side only")
        for key in a.keys() & b.keys():
            self.compare(a[key], b[key], f"{path}.{key}")


def _same_exception(a: Any, b: Any) -> bool:
    """Whether two exception classes are made alike (Django makes one per model class)."""
    return (
        isinstance(a, type)
        and isinstance(b, type)
        and issubclass(a, Exception)
        and (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)
        and len(a.__bases__) == len(b.__bases__)
        and all(
            x is y or _same_exception(x, y) for x, y in zip(a.__bases__, b.__bases__, strict=True)
        )
    )


def _graph(bundle: factory.TenantModels) -> dict[int, Any]:
    """The objects a bundle's classes lead to (not through templates or shared models)."""
    seen: dict[int, Any] = {}
    stack: list[Any] = list(bundle.apps.get_models(include_auto_created=True))
    owned = set(map(id, stack))
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (_LEAVES, types.ModuleType, Apps)):
            continue
        if isinstance(obj, type) and id(obj) not in owned:
            continue
        seen[id(obj)] = obj
        if isinstance(obj, type):
            stack.extend(vars(obj).values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend([*obj.keys(), *obj.values()])
        elif isinstance(obj, functools.partial):
            stack.extend([obj.func, *obj.args, *obj.keywords.values()])
        elif isinstance(obj, types.MethodType):
            stack.extend([obj.__func__, obj.__self__])
        elif isinstance(obj, types.FunctionType):
            stack.extend(c.cell_contents for c in obj.__closure__ or ())
        elif hasattr(obj, "__dict__"):
            stack.extend(v for k, v in carried(obj).items() if k not in _cached(obj))
    return seen


def _attributes(graph: dict[int, Any]) -> list[tuple[str, Any]]:
    """(name, value) of every attribute of the graph's objects and classes."""
    return [
        (key, value)
        for obj in graph.values()
        if hasattr(obj, "__dict__") and not isinstance(obj, (types.FunctionType, types.MethodType))
        for key, value in (vars(obj) if isinstance(obj, type) else carried(obj)).items()
    ]


@pytest.fixture
def copy_and_build(db):
    """A tenant's classes copied from the prototype, and built by Django, for one schema."""
    prototypes.forget()
    bundles = []

    def make(schema: str) -> tuple[factory.TenantModels, factory.TenantModels]:
        built = factory.build(schema, "default")
        bundles.append(built)
        copied = prototypes.build(schema, "default")
        bundles.append(copied)
        return built, copied

    yield make
    for bundle in bundles:
        bundle.release()


def test_a_copy_is_what_django_builds_object_by_object(copy_and_build):
    built, copied = copy_and_build("tenant_compared")
    assert _Comparison(built, copied).run() == []


def test_a_copy_is_what_django_builds_for_a_second_tenant_too(copy_and_build):
    copy_and_build("tenant_first")
    built, copied = copy_and_build("tenant_second")
    assert _Comparison(built, copied).run() == []


def test_the_comparison_sees_a_table_name_left_to_the_prototype(copy_and_build):
    built, copied = copy_and_build("tenant_compared")
    copied.models[Tag]._meta.db_table = built.models[Tag]._meta.db_table.replace(
        "tenant_compared", prototypes.SCHEMA
    )
    assert any("db_table" in d for d in _Comparison(built, copied).run())


def test_nothing_of_a_copy_names_the_prototype(copy_and_build):
    copy_and_build("tenant_a")  # the prototype exists now
    _built, copied = copy_and_build("tenant_b")
    strings = [v for _, v in _attributes(_graph(copied)) if isinstance(v, str)]
    strings += [k for k, _ in _attributes(_graph(copied))]
    assert [s for s in strings if prototypes.SCHEMA in s] == []
    assert any("tenant_b" in s for s in strings)


def test_a_copy_shares_with_the_prototype_only_what_django_never_changes(copy_and_build):
    copy_and_build("tenant_a")  # the prototype exists now
    prototype = _graph(prototypes._prototypes["default"].bundle)
    built, copied = copy_and_build("tenant_b")
    mine = _graph(copied)
    # What the prototype shares with a copy but Django's builds do not share.
    shared = set(prototype) & set(mine) - set(_graph(built))
    assert shared, "the comparison found nothing shared: it tests nothing"
    assert {type(mine[i]) for i in shared} <= {list, dict, tuple}
    mutable = {i for i in shared if type(mine[i]) is not tuple}
    holders = {key for key, value in _attributes(mine) if id(value) in mutable}
    assert holders <= SHAREABLE  # validators, names of fields, error messages


def test_copies_of_two_tenants_read_their_own_tables(make_tenant):
    a, b = make_tenant("alpha"), make_tenant("beta")
    tenancy.clear_cache()
    Category.for_tenant(a).objects.create(name="a's")
    Category.for_tenant(b).objects.create(name="b's")
    assert list(Category.for_tenant(a).objects.values_list("name", flat=True)) == ["a's"]
    assert list(Category.for_tenant(b).objects.values_list("name", flat=True)) == ["b's"]
    product = Product.for_tenant(a).objects.create(
        name="pen", category=Category.for_tenant(a).objects.get()
    )
    assert Category.for_tenant(a).objects.filter(products=product).count() == 1


def test_evicted_copies_are_garbage_collected(tenant):
    user = User.objects.create(username="sponsor")
    Project.for_tenant(tenant).objects.create(name="p", sponsor=user).watchers.add(user)
    refs = [weakref.ref(m) for m in cache.cached(tenant.db_schema).apps.get_models(True)]
    receivers.calls.clear()  # the test app's receivers keep the instances they saw
    tenancy.clear_cache()
    gc.collect()
    assert [ref for ref in refs if ref() is not None] == []


class _Slotted:
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def test_an_object_that_cannot_be_copied_is_refused_by_the_plan():
    class Holder:
        pass

    registry = Apps([])
    target = type("Target", (), {})
    holder = Holder()
    holder.slotted = _Slotted(target)  # leads back to a class of the plan
    cls = type("WithSlots", (), {"holder": holder, "_slotted": _Slotted(target)})
    with pytest.raises(Uncopyable, match="_Slotted"):
        Plan([target, cls], registry)


def test_templates_that_cannot_be_copied_are_built_by_django(db, monkeypatch, caplog):
    def refuse(self, classes, registry):
        raise Uncopyable("a test says so")

    monkeypatch.setattr(Plan, "_prepare", refuse)
    prototypes.forget()
    with caplog.at_level(logging.WARNING, logger="tenancy.classes"):
        bundle = prototypes.build("tenant_slow", "default")
    try:
        assert "a test says so" in caplog.text
        table = bundle.models[Tag]._meta.db_table
        assert "tenant_slow" in table and "testapp_tag" in table
        assert bundle.models[Tag]._meta.apps is bundle.apps
    finally:
        bundle.release()
        prototypes.forget()


_FRESH_PROCESS = """
import django
django.setup()
from tenancy._classes import cache, prototypes
ready = sorted(prototypes._prototypes)
built = sorted(cache.cached_schemas())
print(ready, built)
"""


def test_the_prototypes_are_built_at_start_up_before_any_tenant():
    """A fresh process's first tenant costs a copy: the app's ``ready()`` built the
    prototype of every database of TENANCY_DATABASES, and no tenant's classes."""
    from django.conf import settings

    aliases = [alias for alias in ("default", "other") if alias in settings.DATABASES]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    env["TENANCY_DATABASES"] = ",".join(aliases)
    result = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == f"{aliases} []"


def test_a_prototype_that_cannot_be_built_at_start_up_does_not_stop_it(caplog):
    with caplog.at_level(logging.WARNING, logger="tenancy.classes"):
        prototypes.prepare(["no-such-alias"])
    assert "'no-such-alias' could not be built at start-up" in caplog.text
    assert "no-such-alias" not in prototypes._prototypes


def test_a_template_declared_later_gets_a_new_prototype(db):
    prototypes.build("tenant_before", "default").release()
    first = prototypes._prototypes["default"]
    TEMPLATES["testapp.late"] = TEMPLATES.pop("testapp.tag")  # the set of templates changes
    try:
        prototypes.build("tenant_after", "default").release()
        assert prototypes._prototypes["default"] is not first
    finally:
        TEMPLATES["testapp.tag"] = TEMPLATES.pop("testapp.late")
        prototypes.forget()


def test_the_plan_shares_what_no_class_leads_to():
    registry = Apps([])
    choices = [("a", "A")]
    fld = models.CharField(max_length=3, choices=choices)
    model_cls = type("Holder", (), {"field": fld})
    fld.model = model_cls
    copy_of = Plan([model_cls], registry).copy(registry)
    copied = copy_of(fld)
    assert copied is not fld and copied.model is copy_of(model_cls)
    assert copied.choices is fld.choices  # shared, not copied


def test_every_attribute_of_a_copy_reads_back_as_it_was_set(copy_and_build):
    # A value held on a carrier class must not turn into something else on the
    # way back: a function there would bind (Field(default=timezone.now)).
    copy_and_build("tenant_a")
    _built, copied = copy_and_build("tenant_b")
    wrong = [
        (obj, key)
        for obj in _graph(copied).values()
        if hasattr(type(obj), CARRIED_ATTR)
        for key, value in carried(obj).items()
        if getattr(obj, key) is not value
    ]
    assert wrong == []
    assert any(hasattr(type(obj), CARRIED_ATTR) for obj in _graph(copied).values())


def test_a_callable_default_stays_a_plain_callable_on_a_copy():
    registry = Apps([])
    fld = models.DateTimeField(default=timezone.now)
    model_cls = type("Holder", (), {"field": fld})
    fld.model = model_cls
    copied = Plan([model_cls], registry).copy(registry)(fld)
    assert copied.default is timezone.now
    assert isinstance(copied.get_default(), datetime.datetime)
