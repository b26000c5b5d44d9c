"""Copy a prototype's classes for each tenant instead of building them anew.

Building a model class is mostly ``ModelBase.__new__``: constructing fields,
contributing them, resolving relations, creating many-to-many tables. Two
tenants' classes differ only in a few names (tables, index names, accessors
named after the schema); the rest is the same graph of classes, options,
fields, relations, descriptors and managers. So one tenant's classes (the
prototype, built by Django once per process and database) are walked once
into a :class:`Plan`, and each further tenant's classes are that graph
copied: every object that leads back to a prototype class is copied, with
its references pointed at the copies; every object that does not (choices,
validators, error messages, defaults, the template itself) is shared, as it
would be equal anyway. Values that Django caches on first use are dropped,
to be computed again on the copy.

Anything the plan cannot copy faithfully (a slotted object, a dict subclass,
a frozen object) that leads back to a class raises :class:`Uncopyable` when
the plan is prepared; the factory then builds every tenant with Django, as
before. The names that depend on the tenant are set by the factory, from
the same recipes as a build (see ``factory._personalize``).
"""

from __future__ import annotations

import contextlib
import functools
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property as functools_cached_property
from typing import Any

from django.apps.registry import Apps
from django.db.models import Field
from django.db.models.options import Options
from django.utils.datastructures import DictWrapper
from django.utils.functional import cached_property

__all__ = ["CARRIED_ATTR", "SHAREABLE", "Plan", "Uncopyable", "carried"]

#: Class attribute of a carrier: the attributes it holds for its instances.
CARRIED_ATTR = "_tenancy_carried"
#: The objects whose copies are carried (see :func:`_carrier`): the largest,
#: read only through attribute access by Django.
_CARRIED_TYPES = (Field, Options)
#: More attributes than this and CPython gives up sharing keys between instances' dicts.
_SHARED_KEYS_MAX = 30

#: A plan refuses prototypes with more objects than this (a walk that escaped).
MAX_NODES = 200_000

#: Attributes whose lists and dicts every copy shares with the prototype: Django
#: makes them when a field is constructed and only reads them afterwards.
SHAREABLE = frozenset(
    {
        "_validators",
        "error_messages",
        "_error_messages",
        "choices",
        "_choices",
        "from_fields",
        "to_fields",
        "limit_choices_to",
        "_limit_choices_to",
    }
)

#: Keys of Options never copied: caches, rebuilt on first use of the copy.
_OPTIONS_CACHES = frozenset({"_get_fields_cache", "_tenancy_relations"})


class Uncopyable(Exception):
    """The prototype holds an object this module cannot copy faithfully."""


# Kinds of nodes. Mutable ones get an empty shell first, so that cycles
# (a field's model, whose options list the field) resolve; immutable ones are
# made when first needed, from parts that already exist.
_OBJECT, _LIST, _DICT, _SET, _CELL, _CLASS = range(6)
_TUPLE, _PARTIAL, _METHOD, _FUNCTION = range(6, 10)
#: Entries of a class's ``__dict__`` that ``type()`` makes itself.
_TYPE_SLOTS = frozenset({"__dict__", "__weakref__"})


@dataclass
class _Node:
    kind: int
    proto: Any
    #: (key or position, value): values kept as they are (shared with the prototype).
    constants: Any = None
    #: (key or position, node index): values that are copies.
    refs: list[tuple[Any, int]] = field(default_factory=list)
    #: For dicts with copied keys: (key is a node, key, value is a node, value).
    pairs: list[tuple[bool, Any, bool, Any]] | None = None
    #: The class of an object's copies (the object's own, or its carrier).
    cls: type | None = None
    #: Whether a copy's attributes are set one by one, so that CPython shares the
    #: keys of its ``__dict__`` with the other tenants' copies (a fraction of the memory).
    one_by_one: bool = False


_cached_names_of: dict[type, frozenset[str]] = {}
_slots_of: dict[type, tuple[str, ...]] = {}
_data_descriptors_of: dict[type, frozenset[str]] = {}


def _cached_names(cls: type) -> frozenset[str]:
    """Names of the cached properties of ``cls``: their values are dropped from copies."""
    names = _cached_names_of.get(cls)
    if names is None:
        names = _cached_names_of[cls] = frozenset(
            name
            for klass in cls.__mro__
            for name, value in vars(klass).items()
            if isinstance(value, (cached_property, functools_cached_property))
        )
    return names


def _data_descriptors(cls: type) -> frozenset[str]:
    """Names that ``setattr`` on an instance of ``cls`` would hand to a descriptor."""
    names = _data_descriptors_of.get(cls)
    if names is None:
        names = _data_descriptors_of[cls] = frozenset(
            name
            for klass in cls.__mro__
            for name, value in vars(klass).items()
            if hasattr(type(value), "__set__") or hasattr(type(value), "__delete__")
        )
    return names


def _slots(cls: type) -> tuple[str, ...]:
    """Names of the attributes that instances of ``cls`` keep outside their ``__dict__``."""
    names = _slots_of.get(cls)
    if names is None:
        names = _slots_of[cls] = tuple(
            name
            for klass in cls.__mro__[:-1]
            for name, value in vars(klass).items()
            if isinstance(value, types.MemberDescriptorType)
        )
    return names


def _slot_values(obj: Any) -> list[Any]:
    values = []
    for name in _slots(type(obj)):
        with contextlib.suppress(AttributeError):  # an unset slot
            values.append(getattr(obj, name))
    return values


def carried(obj: Any) -> dict[str, Any]:
    """Return every attribute of a copied object: its own and those its carrier holds."""
    return {**getattr(type(obj), CARRIED_ATTR, {}), **vars(obj)}


def _carried_db_type_parameters(self: Any, connection: Any) -> DictWrapper:
    # Field.db_type_parameters() formats column types from the field's __dict__
    # ("varchar(%(max_length)s)"); a carried field keeps max_length on its carrier.
    return DictWrapper(carried(self), connection.ops.quote_name, "qn_")


def _carrier(kind: type, constants: dict[str, Any]) -> type:
    """Return a subclass of ``kind`` holding ``constants`` as class attributes.

    Copies of a field (or options) of the prototype are instances of it, so
    each keeps only what differs per tenant (its model, its relation) in its
    own ``__dict__``: a field's forty attributes cost once per process, not
    once per tenant. The name, module and ``deconstruct()`` path are the
    original's.
    """
    namespace = {
        **constants,
        "__module__": kind.__module__,
        "__qualname__": kind.__qualname__,
        "__doc__": kind.__doc__,
        CARRIED_ATTR: constants,
    }
    if issubclass(kind, Field) and kind.db_type_parameters is Field.db_type_parameters:
        namespace["db_type_parameters"] = _carried_db_type_parameters
    return type(kind)(kind.__name__, (kind,), namespace)


class Plan:
    """The graph of a prototype's classes, prepared for copying.

    ``classes`` are the prototype's classes (in an order where every class
    comes after its bases), ``registry`` their app registry, which each copy
    replaces with its own.
    """

    def __init__(self, classes: list[type], registry: Apps) -> None:
        self._index: dict[int, int] = {}
        self._nodes: list[_Node] = []
        self._class_order: list[int] = []
        self._prepare(classes, registry)

    # -- preparing --------------------------------------------------------

    def _prepare(self, classes: list[type], registry: Apps) -> None:
        owned_classes = {id(c) for c in classes}
        children: dict[int, list[int]] = {}
        objects: dict[int, Any] = {id(registry): registry}
        forced: set[int] = set()
        stack: list[Any] = list(classes)
        for cls in classes:
            objects[id(cls)] = cls
        while stack:
            obj = stack.pop()
            key = id(obj)
            if key in children:
                continue
            kids = list(self._children(obj, owned_classes, registry, forced))
            children[key] = [id(k) for k in kids]
            for kid in kids:
                if id(kid) not in objects:
                    objects[id(kid)] = kid
                    stack.append(kid)
            if len(objects) > MAX_NODES:
                raise Uncopyable(f"the prototype reaches more than {MAX_NODES} objects")
        owned = self._owned(children, owned_classes | {id(registry)} | forced)
        order = sorted(owned - {id(registry)}, key=lambda k: (0 if k in owned_classes else 1, k))
        for key in order:
            self._index[key] = len(self._nodes)
            self._nodes.append(_Node(-1, objects[key]))
        self._index[id(registry)] = -1  # each copy's own registry
        for key in order:
            self._describe(self._nodes[self._index[key]], owned)
        self._class_order = [self._index[id(c)] for c in classes]

    @staticmethod
    def _owned(children: dict[int, list[int]], roots: set[int]) -> set[int]:
        """Return the objects that lead to a root (those must be copied)."""
        parents: dict[int, list[int]] = {}
        for key, kids in children.items():
            for kid in kids:
                parents.setdefault(kid, []).append(key)
        owned = set(roots)
        stack = list(roots)
        while stack:
            for parent in parents.get(stack.pop(), ()):
                if parent not in owned:
                    owned.add(parent)
                    stack.append(parent)
        return owned

    def _children(
        self, obj: Any, owned_classes: set[int], registry: Apps, forced: set[int]
    ) -> Iterable[Any]:
        if obj is registry or isinstance(obj, (Apps, types.ModuleType)):
            return ()
        if isinstance(obj, type):
            if id(obj) not in owned_classes:
                return ()
            return (*obj.__bases__, *(v for k, v in vars(obj).items() if k not in _TYPE_SLOTS))
        kind = type(obj)
        if kind in (list, tuple, set, frozenset):
            return obj
        if kind is dict:
            return (*obj.keys(), *obj.values())
        if kind is functools.partial:
            return (obj.func, *obj.args, *obj.keywords.values())
        if kind is types.MethodType:
            return (obj.__func__, obj.__self__)
        if kind is types.FunctionType:
            return (*(obj.__closure__ or ()), *(obj.__defaults__ or ()))
        if kind is types.CellType:
            try:
                return (obj.cell_contents,)
            except ValueError:  # an empty cell
                return ()
        values = _slot_values(obj)  # seen, so that a slotted object that leads back is refused
        state = getattr(obj, "__dict__", None)
        if type(state) is not dict:
            return values
        dropped = self._dropped(obj)
        for key, value in state.items():
            if key in dropped:
                continue
            values.append(value)
            if type(value) in (list, dict, set) and key not in SHAREABLE:
                # Each copy gets its own lists and dicts, even those that lead
                # to no class: Django may add to them (an Options' lists).
                forced.add(id(value))
        return values

    @staticmethod
    def _dropped(obj: Any) -> frozenset[str]:
        names = _cached_names(type(obj))
        return names | _OPTIONS_CACHES if isinstance(obj, Options) else names

    def _describe(self, node: _Node, owned: set[int]) -> None:
        obj = node.proto
        kind = type(obj)

        def ref(value: Any) -> int | None:
            return self._index[id(value)] if id(value) in owned else None

        if isinstance(obj, type):
            node.kind = _CLASS
            namespace = {k: v for k, v in vars(obj).items() if k not in _TYPE_SLOTS}
            namespace["__qualname__"] = obj.__qualname__
            self._fill(node, namespace.items(), ref, dict)
            node.pairs = [
                (ref(b) is not None, ref(b) if ref(b) is not None else b, False, None)
                for b in obj.__bases__
            ]
        elif kind is list or kind is tuple:
            node.kind = _LIST if kind is list else _TUPLE
            self._fill(node, enumerate(obj), ref, list)
        elif kind is set or kind is frozenset:
            if kind is frozenset:
                raise Uncopyable(f"a frozenset leads to a class: {obj!r}")
            node.kind = _SET
            node.constants = [v for v in obj if ref(v) is None]
            node.refs = [(None, i) for v in obj if (i := ref(v)) is not None]
        elif kind is dict:
            node.kind = _DICT
            node.pairs = [
                (ref(k) is not None, _or(ref(k), k), ref(v) is not None, _or(ref(v), v))
                for k, v in obj.items()
            ]
        elif kind is functools.partial:
            if getattr(obj, "__dict__", None):
                raise Uncopyable(f"a partial with attributes leads to a class: {obj!r}")
            node.kind = _PARTIAL
            parts: dict[Any, Any] = {"func": obj.func, **dict(enumerate(obj.args))}
            parts.update({("kw", k): v for k, v in obj.keywords.items()})
            self._fill(node, parts.items(), ref, dict)
        elif kind is types.MethodType:
            node.kind = _METHOD
            self._fill(node, {"func": obj.__func__, "self": obj.__self__}.items(), ref, dict)
        elif kind is types.FunctionType:
            if obj.__kwdefaults__ or getattr(obj, "__dict__", None):
                raise Uncopyable(f"a function with attributes leads to a class: {obj!r}")
            node.kind = _FUNCTION
            parts = {("cell", i): c for i, c in enumerate(obj.__closure__ or ())}
            parts.update({("default", i): d for i, d in enumerate(obj.__defaults__ or ())})
            self._fill(node, parts.items(), ref, dict)
        elif kind is types.CellType:
            node.kind = _CELL
            self._fill(node, {"contents": obj.cell_contents}.items(), ref, dict)
        else:
            state = getattr(obj, "__dict__", None)
            if type(state) is not dict or _slots(kind):
                raise Uncopyable(f"{kind.__qualname__} objects cannot be copied: {obj!r}")
            try:
                object.__new__(kind)
            except TypeError:
                raise Uncopyable(f"{kind.__qualname__} objects cannot be made empty") from None
            node.kind = _OBJECT
            dropped = self._dropped(obj)
            self._fill(node, ((k, v) for k, v in state.items() if k not in dropped), ref, dict)
            node.cls = kind
            if isinstance(obj, _CARRIED_TYPES):
                refs = {key for key, _ in node.refs}
                held = {
                    k: v
                    for k, v in node.constants.items()
                    # A function (any descriptor) on a class would bind to the
                    # instance: Field(default=timezone.now) keeps its own.
                    if k not in refs and not k.startswith("__") and not hasattr(type(v), "__get__")
                }
                node.cls = _carrier(kind, held)
                node.constants = {k: v for k, v in node.constants.items() if k not in held}
            # The carrier adds no data descriptor (it holds no value with a
            # __get__), so its original's names are the ones to avoid; those are
            # cached per original class, while each carrier is new.
            node.one_by_one = len(node.constants) <= _SHARED_KEYS_MAX and not (
                set(node.constants) & _data_descriptors(kind)
            )

    @staticmethod
    def _fill(
        node: _Node,
        items: Iterable[tuple[Any, Any]],
        ref: Callable[[Any], int | None],
        into: type,
    ) -> None:
        """Split items into constants (kept in place, order preserved) and references."""
        constants: list[tuple[Any, Any]] = []
        for key, value in items:
            index = ref(value)
            if index is None:
                constants.append((key, value))
            else:
                constants.append((key, None))  # a placeholder, to keep the order
                node.refs.append((key, index))
        node.constants = dict(constants) if into is dict else [v for _, v in constants]

    # -- copying ----------------------------------------------------------

    def copy(
        self, registry: Apps, class_attrs: dict[str, Any] | None = None
    ) -> Callable[[Any], Any]:
        """Copy the prototype's classes, their registry being ``registry``.

        Returns the function that gives the copy of a prototype object (a
        class, a field, a relation), for the caller to set what depends on
        the tenant. ``class_attrs`` are set on every copied class that has
        them.
        """
        nodes = self._nodes
        setattr_ = object.__setattr__
        made: list[Any] = [None] * len(nodes)
        for i, node in enumerate(nodes):
            kind = node.kind
            if kind == _OBJECT:
                made[i] = object.__new__(node.cls)  # type: ignore[arg-type]  # set for objects
            elif kind == _LIST:
                made[i] = []
            elif kind == _DICT:
                made[i] = {}
            elif kind == _SET:
                made[i] = set()
            elif kind == _CELL:
                made[i] = types.CellType()

        def get(index: int) -> Any:
            if index < 0:
                return registry
            obj = made[index]
            if obj is None:
                obj = made[index] = self._immutable(nodes[index], get)
            return obj

        attrs = class_attrs or {}
        for i in self._class_order:
            node = nodes[i]
            namespace = dict(node.constants)
            for key, index in node.refs:
                namespace[key] = get(index)
            for key, value in attrs.items():
                if key in namespace:
                    namespace[key] = value
            bases = tuple(get(b) if is_ref else b for is_ref, b, _, _ in node.pairs or ())
            made[i] = type.__new__(type(node.proto), node.proto.__name__, bases, namespace)
        for i, node in enumerate(nodes):
            kind = node.kind
            if kind == _OBJECT:
                state = dict(node.constants)
                for key, index in node.refs:
                    state[key] = get(index)
                if node.one_by_one:
                    obj = made[i]
                    for key, value in state.items():
                        setattr_(obj, key, value)
                else:
                    made[i].__dict__ = state
            elif kind == _LIST:
                items = list(node.constants)
                for position, index in node.refs:
                    items[position] = get(index)
                made[i].extend(items)
            elif kind == _DICT:
                made[i].update(
                    (get(k) if kr else k, get(v) if vr else v)
                    for kr, k, vr, v in node.pairs  # type: ignore[union-attr]
                )
            elif kind == _SET:
                made[i].update(node.constants)
                made[i].update(get(index) for _, index in node.refs)
            elif kind == _CELL:
                made[i].cell_contents = (
                    get(node.refs[0][1]) if node.refs else node.constants["contents"]
                )
        positions = self._index

        def copy_of(proto: Any) -> Any:
            found = positions.get(id(proto))
            if found is None:
                raise KeyError(f"{proto!r} is not a copied object of the prototype")
            return get(found)

        return copy_of

    @staticmethod
    def _immutable(node: _Node, get: Callable[[int], Any]) -> Any:
        if node.kind == _CLASS:
            raise Uncopyable(f"{node.proto!r} is needed before its bases are copied")
        parts = dict(node.constants) if node.kind != _TUPLE else dict(enumerate(node.constants))
        for key, index in node.refs:
            parts[key] = get(index)
        if node.kind == _TUPLE:
            return tuple(parts[i] for i in range(len(parts)))
        if node.kind == _PARTIAL:
            args = [parts[k] for k in sorted(k for k in parts if isinstance(k, int))]
            keywords = {k[1]: v for k, v in parts.items() if isinstance(k, tuple)}
            return functools.partial(parts["func"], *args, **keywords)
        if node.kind == _METHOD:
            return types.MethodType(parts["func"], parts["self"])
        proto = node.proto  # a function: its closure and defaults are copies
        cells = tuple(parts[k] for k in sorted(k for k in parts if k[0] == "cell"))
        defaults = tuple(parts[k] for k in sorted(k for k in parts if k[0] == "default"))
        function = types.FunctionType(
            proto.__code__, proto.__globals__, proto.__name__, defaults or None, cells or None
        )
        function.__qualname__ = proto.__qualname__
        return function


def _or(index: int | None, value: Any) -> Any:
    return index if index is not None else value
