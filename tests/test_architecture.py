"""The layering of the ``tenancy`` package and its declared public API, checked from the source.

Why the rules exist:

- **No import cycle.** In a cycle, whether a module works depends on which of
  its members was imported first (one of them always sees the other half
  initialised), and none of them can be read, tested or replaced alone. An
  import deferred into a function hides a cycle from the reader, not from
  the graph, so deferred imports count too.
- **Imports go down the layers.** The foundation (``exceptions``,
  ``signals``, ``state``) knows nothing of the library; primitives know no
  tenant classes; the tenant classes know no migrations; the model API no
  orchestration; the orchestration no Celery, web or command. A lower layer
  can then be understood and changed without reading the upper ones.
- **Only the composition roots defer imports.** ``tenancy/__init__.py`` and
  ``tenancy/apps.py`` wire the layers together, and Django imports them before
  its app registry is ready, so they import lazily. Anywhere else a deferred
  import is a dependency that wants to go up or round in a circle: each one
  outside the roots is listed in ``DEFERRED_IMPORTS_ALLOWED`` with its reason,
  until it is removed.
- **Nothing inside imports the package itself.** ``from tenancy import x``
  runs through ``__init__``, the composition root, so a module doing it
  depends on whatever the root wires, whatever its layer.
- **Every module has a layer.** A new module is placed deliberately, by
  extending ``LAYERS``.
- **The public API is declared and documented.** Each public module lists its
  public names in ``__all__``, and ``docs/api.md`` documents each of them;
  ``tenancy._*`` is private and may change without notice.

Nothing of the package is imported: the source is parsed with ``ast``, so these
tests need no database and no Django settings.
"""

from __future__ import annotations

import ast
import functools
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
PACKAGE = "tenancy"
API_DOC = REPOSITORY / "docs" / "api.md"

#: The layers, ``name: (rank, modules)``. A module may import only modules of the same
#: or a lower rank. ``"a.b"`` names one module, ``"a.b.*"`` every module below ``a.b``.
LAYERS: dict[str, tuple[int, tuple[str, ...]]] = {
    "foundation": (0, ("tenancy.exceptions", "tenancy.signals", "tenancy.state")),
    # The library's own migration files: frozen history, so they may name nothing
    # but the foundation (tenancy.state.PerTenant), never code that changes.
    "migration files": (0, ("tenancy.migrations", "tenancy.migrations.*")),
    # tenancy.caches takes an incarnation and a cache alias, nothing of the lifecycle;
    # the model API imports it (tenant.cache).
    "primitives": (1, ("tenancy._primitives", "tenancy._primitives.*", "tenancy.caches")),
    "tenant classes": (2, ("tenancy._classes", "tenancy._classes.*")),
    "migrating": (3, ("tenancy._migrating", "tenancy._migrating.*")),
    "model API": (4, ("tenancy.models",)),
    "orchestration": (5, ("tenancy._orchestration", "tenancy._orchestration.*")),
    "delivery and web": (
        6,
        (
            "tenancy._delivery",
            "tenancy._delivery.*",
            "tenancy.tasks",
            "tenancy.lifecycle",
            "tenancy.placement",
            "tenancy.admin",
            "tenancy.tenant_admin",
            "tenancy.middleware",
            "tenancy.views",
            "tenancy.forms",
            "tenancy.testing",
            "tenancy.auth",
            "tenancy.auth.*",
            "tenancy.checks",
            "tenancy.files",
            "tenancy.drf",
            "tenancy.management",
            "tenancy.management.*",
        ),
    ),
    "composition roots": (7, ("tenancy", "tenancy.apps")),
}

#: The modules that wire the layers together; they alone defer imports freely.
COMPOSITION_ROOTS = frozenset({"tenancy", "tenancy.apps"})

#: The public modules: each declares ``__all__`` and is documented in docs/api.md.
PUBLIC_MODULES = (
    "tenancy",
    "tenancy.models",
    "tenancy.exceptions",
    "tenancy.signals",
    "tenancy.tasks",
    "tenancy.lifecycle",
    "tenancy.placement",
    "tenancy.middleware",
    "tenancy.views",
    "tenancy.forms",
    "tenancy.admin",
    "tenancy.tenant_admin",
    "tenancy.testing",
    "tenancy.auth",
    "tenancy.state",
    "tenancy.caches",
    "tenancy.files",
    "tenancy.drf",
)

#: Imports deferred into a function outside the composition roots, as
#: ``(importer, imported): reason``. Each entry is a debt: remove it with the import.
DEFERRED_IMPORTS_ALLOWED: dict[tuple[str, str], str] = {}

#: Calls that import a module named by a string: ``name: takes a dotted object path``.
DYNAMIC_IMPORTS = {"import_module": False, "__import__": False, "import_string": True}


# -- reading the package --------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    name: str
    path: str
    source: str
    is_package: bool


@dataclass(frozen=True)
class Edge:
    """One import of a module of the package by another."""

    source: str
    target: str
    line: int
    deferred: bool

    def where(self, modules: Mapping[str, Module]) -> str:
        kind = "deferred, " if self.deferred else ""
        return f"{kind}{modules[self.source].path}:{self.line}"


def module_name(relative: str) -> str:
    """Return the dotted name of the module at ``relative`` (a path like ``pkg/a/b.py``)."""
    parts = relative.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_from_files(files: Mapping[str, str]) -> dict[str, Module]:
    """Return the modules of ``{relative path: source}``, by dotted name."""
    return {
        module_name(path): Module(module_name(path), path, source, path.endswith("/__init__.py"))
        for path, source in files.items()
    }


@functools.cache
def tenancy_modules() -> dict[str, Module]:
    """Return every module of the tenancy package, migrations included."""
    files = {
        path.relative_to(REPOSITORY).as_posix(): path.read_text()
        for path in sorted((REPOSITORY / PACKAGE).rglob("*.py"))
    }
    return package_from_files(files)


def _is_type_checking(test: ast.expr) -> bool:
    """Return whether ``test`` is ``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    """Return the absolute name of the module a ``from ... import`` reads from."""
    if not node.level:
        return node.module or ""
    parts = module.name.split(".")
    if not module.is_package:
        parts.pop()
    if node.level - 1 >= len(parts):
        raise ValueError(f"{module.path}:{node.lineno}: relative import beyond the top package")
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join([*parts, node.module] if node.module else parts)


def _inside(name: str, root: str) -> bool:
    return name == root or name.startswith(root + ".")


def _targets(module: Module, node: ast.AST, known: Iterable[str], root: str) -> list[str]:
    """Return the modules of the package that ``node`` (an import, or a call) imports."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if _inside(alias.name, root)]
    if isinstance(node, ast.ImportFrom):
        base = _absolute(module, node)
        if not _inside(base, root):
            return []
        # ``from pkg import sub`` imports the module pkg.sub; ``from pkg import name``
        # imports pkg itself (for one of its attributes).
        return [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
            for alias in node.names
        ]
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        first = node.args[0]
        if called in DYNAMIC_IMPORTS and isinstance(first, ast.Constant):
            path = first.value
            if isinstance(path, str) and _inside(path, root):
                return [path.rsplit(".", 1)[0] if DYNAMIC_IMPORTS[called] else path]
    return []


_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def module_edges(module: Module, known: Iterable[str], root: str = PACKAGE) -> list[Edge]:
    """Return every import of a package module by ``module``.

    Imports deferred into functions and methods are included (``deferred``);
    those under ``if TYPE_CHECKING:`` are not (they never run), those of its
    ``else:`` are.
    """
    known = set(known)
    edges: list[Edge] = []

    def visit(node: ast.AST, deferred: bool) -> None:
        for target in _targets(module, node, known, root):
            if target != module.name:
                edges.append(Edge(module.name, target, getattr(node, "lineno", 0), deferred))
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, deferred)
            return
        body: list[ast.AST] = []
        if isinstance(node, _FUNCTIONS):
            body = node.body if isinstance(node.body, list) else [node.body]
        for child in ast.iter_child_nodes(node):
            visit(child, deferred or any(child is part for part in body))

    visit(ast.parse(module.source, module.path), False)
    return list(dict.fromkeys(edges))  # one per line: ``from x import a, b`` is one import


def package_edges(modules: Mapping[str, Module], root: str = PACKAGE) -> list[Edge]:
    return [edge for module in modules.values() for edge in module_edges(module, modules, root)]


# -- the rules, as functions of a package ---------------------------------------------


def strongly_connected(nodes: Iterable[str], edges: Iterable[Edge]) -> list[list[str]]:
    """Return the strongly connected components of the import graph (Tarjan)."""
    successors: dict[str, set[str]] = defaultdict(set)
    for edge in edges:
        successors[edge.source].add(edge.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(successors[node]):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(set(nodes)):
        if node not in index:
            connect(node)
    return components


def import_cycles(modules: Mapping[str, Module], edges: list[Edge]) -> list[str]:
    """Describe each import cycle: its modules, and the imports that close it."""
    problems = []
    for component in strongly_connected(modules, edges):
        if len(component) < 2:
            continue
        inside = [e for e in edges if e.source in component and e.target in component]
        imports = "".join(
            f"\n    {e.source} -> {e.target} ({e.where(modules)})"
            for e in sorted(inside, key=lambda e: (e.source, e.target, e.line))
        )
        problems.append(f"cycle of {len(component)} modules: {', '.join(component)}{imports}")
    return problems


def _matches(module: str, pattern: str) -> bool:
    """Return whether ``module`` is ``pattern``, or below ``package`` for ``package.*``."""
    if pattern.endswith(".*"):
        return module.startswith(pattern[:-1])
    return module == pattern


def layers_of(module: str, layers: Mapping[str, tuple[int, tuple[str, ...]]]) -> list[str]:
    """Return the names of the layers whose patterns match ``module``."""
    return [
        name
        for name, (_, patterns) in layers.items()
        if any(_matches(module, pattern) for pattern in patterns)
    ]


def unassigned_modules(
    modules: Iterable[str], layers: Mapping[str, tuple[int, tuple[str, ...]]]
) -> list[str]:
    """Describe each module with no layer, or several."""
    problems = []
    for module in sorted(modules):
        found = layers_of(module, layers)
        if not found:
            problems.append(
                f"{module} has no layer: add it (or a 'package.*' pattern) to one of the "
                "layers of LAYERS in tests/test_architecture.py"
            )
        elif len(found) > 1:
            problems.append(
                f"{module} is in several layers ({', '.join(found)}): make LAYERS place it once"
            )
    return problems


def imports_of_missing_modules(modules: Mapping[str, Module], edges: list[Edge]) -> list[str]:
    return [
        f"{e.source} imports {e.target}, which is no module of the package ({e.where(modules)})"
        for e in edges
        if e.target not in modules
    ]


def upward_imports(
    modules: Mapping[str, Module],
    edges: list[Edge],
    layers: Mapping[str, tuple[int, tuple[str, ...]]],
) -> list[str]:
    """Describe each import of a module of a higher rank than the importer's."""
    problems = []
    for e in sorted(edges, key=lambda e: (e.source, e.target, e.line)):
        source, target = layers_of(e.source, layers), layers_of(e.target, layers)
        if len(source) != 1 or len(target) != 1:
            continue  # reported by unassigned_modules()
        (source_layer,), (target_layer,) = source, target
        source_rank, target_rank = layers[source_layer][0], layers[target_layer][0]
        if target_rank > source_rank:
            problems.append(
                f"{e.source} -> {e.target}: {source_layer} (rank {source_rank}) imports "
                f"{target_layer} (rank {target_rank}) ({e.where(modules)})"
            )
    return problems


def deferred_imports(
    modules: Mapping[str, Module],
    edges: list[Edge],
    roots: Iterable[str],
    allowed: Mapping[tuple[str, str], str],
) -> list[str]:
    """Describe each import deferred into a function outside the roots and the allow-list."""
    roots = set(roots)
    return [
        f"{e.source} -> {e.target} ({e.where(modules)}): import it at the top of the module, "
        "or list it with its reason in DEFERRED_IMPORTS_ALLOWED"
        for e in sorted(edges, key=lambda e: (e.source, e.line))
        if e.deferred and e.source not in roots and (e.source, e.target) not in allowed
    ]


def imports_of_the_package(
    modules: Mapping[str, Module], edges: list[Edge], root: str, allowed: Iterable[str]
) -> list[str]:
    """Describe each import of the package itself (its ``__init__``) by a module not allowed to."""
    allowed = set(allowed)
    return [
        f"{e.source} imports the package {root} itself ({e.where(modules)}): import the "
        f"module that defines the name instead"
        for e in sorted(edges, key=lambda e: (e.source, e.line))
        if e.target == root and e.source not in allowed
    ]


# -- __all__ and the documentation ------------------------------------------------------


def _top_level(body: list[ast.stmt]) -> Iterable[ast.stmt]:
    """Yield the statements run when the module is imported (not under TYPE_CHECKING)."""
    for node in body:
        yield node
        if isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _top_level(node.body)
            yield from _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            for part in (node.body, *(h.body for h in node.handlers), node.orelse):
                yield from _top_level(part)
        elif isinstance(node, ast.With):
            yield from _top_level(node.body)


def _assigned(target: ast.expr) -> Iterable[str]:
    if isinstance(target, ast.Name):
        yield target.id
    elif isinstance(target, ast.Tuple | ast.List):
        for element in target.elts:
            yield from _assigned(element)


def bound_names(source: str) -> set[str]:
    """Return the names a module binds at import time (definitions, assignments, imports)."""
    names: set[str] = set()
    for node in _top_level(ast.parse(source).body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(_assigned(target))
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            names.update(_assigned(node.target))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".")[0])
    return names


def _assignment_targets(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Assign):
        return [name for target in node.targets for name in _assigned(target)]
    if isinstance(node, ast.AugAssign | ast.AnnAssign):
        return list(_assigned(node.target))
    return []


def declared_all(source: str) -> list[str]:
    """Return the module's ``__all__``; raise ValueError unless it is one literal list."""
    found = [
        node
        for node in _top_level(ast.parse(source).body)
        if "__all__" in _assignment_targets(node)
    ]
    if not found:
        raise ValueError("declares no __all__")
    if len(found) > 1 or not isinstance(found[0], ast.Assign):
        raise ValueError("builds __all__ in several statements: make it one literal list")
    value = found[0].value
    if not isinstance(value, ast.List | ast.Tuple) or not all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in value.elts
    ):
        raise ValueError("__all__ is not a literal list of strings")
    return [e.value for e in value.elts]


def all_problems(source: str) -> list[str]:
    """Describe what is wrong with a module's ``__all__``."""
    try:
        names = declared_all(source)
    except ValueError as exc:
        return [str(exc)]
    bound = bound_names(source)
    problems = [f"{name!r} is listed twice" for name in sorted(set(names)) if names.count(name) > 1]
    problems += [f"{name!r} is not defined by the module" for name in names if name not in bound]
    return problems


_HEADING = re.compile(r"^(#{2,3}) .*?`([\w.]+)`", re.MULTILINE)


def doc_sections(text: str, level: int = 2) -> dict[str, str]:
    """Return ``{name: text}`` of each section whose heading names something in backticks."""
    marks = [m for m in _HEADING.finditer(text) if len(m.group(1)) == level]
    ends = [m.start() for m in re.finditer(rf"^#{{1,{level}}} ", text, re.MULTILINE)]
    sections = {}
    for mark in marks:
        end = min((e for e in ends if e > mark.start()), default=len(text))
        sections[mark.group(2)] = text[mark.start() : end]
    return sections


def mentions(text: str, name: str) -> bool:
    """Return whether ``text`` names ``name`` in code: `name`, `name(...)`, `x.name`."""
    return re.search(rf"`(?:[\w.]+\.)?{re.escape(name)}(?![\w-])", text) is not None


_REFERENCE = re.compile(rf"(?<![\w.]){PACKAGE}((?:\.\w+)+)(?![\w*])")


def unknown_references(
    text: str, names: Mapping[str, set[str]], others: Iterable[str], root: str = PACKAGE
) -> list[str]:
    """Return the ``tenancy.x.y`` references in ``text`` that name nothing that exists.

    ``names`` maps each module to the names it binds; a reference must be a
    module, or an attribute of one. ``others`` are dotted strings that are no
    Python path: task names, logger names, check IDs.
    """
    others = set(others)
    unknown = []
    for match in _REFERENCE.finditer(text):
        dotted = root + match.group(1)
        if dotted in others:
            continue
        parts = dotted.split(".")
        depth = max(
            (i for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in names), default=0
        )
        rest = parts[depth:]
        if depth == 0 or (rest and rest[0] not in names[".".join(parts[:depth])]):
            unknown.append(dotted)
    return sorted(set(unknown))


def keyword_strings(source: str, call: str, keyword: str) -> set[str]:
    """Return the string values of ``keyword=`` in every call of ``call``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called == call:
                for kw in node.keywords:
                    if kw.arg == keyword and isinstance(kw.value, ast.Constant):
                        found.add(str(kw.value.value))
    return found


def first_arguments(source: str, *calls: str) -> set[str]:
    """Return the string first arguments of every call of one of ``calls``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called in calls:
                found.add(str(node.args[0].value))
    return found


def command_options(source: str) -> list[str]:
    """Return the ``--options`` a management command's ``add_arguments()`` declares."""
    options = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            options += [
                a.value
                for a in node.args
                if isinstance(a, ast.Constant) and str(a.value).startswith("--")
            ]
    return options


def fixtures(source: str) -> list[str]:
    """Return the names of the functions decorated with ``pytest.fixture``."""
    return [
        node.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef)
        and any("fixture" in ast.unparse(decorator) for decorator in node.decorator_list)
    ]


def setting_names(sources: Iterable[str]) -> set[str]:
    """Return the ``TENANCY_*`` settings read: string constants that are a setting name."""
    return {
        node.value
        for source in sources
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.fullmatch(r"TENANCY_[A-Z0-9_]+", node.value)
    }


# -- the checker itself, on small synthetic packages -----------------------------------

SYNTHETIC_LAYERS = {
    "low": (0, ("pkg.low",)),
    "middle": (1, ("pkg.middle", "pkg.sub", "pkg.sub.*")),
    "high": (2, ("pkg.high",)),
    "root": (3, ("pkg",)),
}


def _synthetic(files: Mapping[str, str]) -> dict[str, Module]:
    """A package ``pkg`` of ``{path: source}``: ``{"sub/a": ...}`` is ``pkg/sub/a.py``."""
    tree = {"pkg/__init__.py": ""}
    tree.update({f"pkg/{path}.py": source for path, source in files.items()})
    return package_from_files(tree)


def _graph(modules: Mapping[str, Module]) -> set[tuple[str, str, bool]]:
    return {(e.source, e.target, e.deferred) for e in package_edges(modules, "pkg")}


def test_the_checker_resolves_absolute_relative_and_package_imports_to_modules():
    modules = _synthetic(
        {
            "low": "",
            "middle": "from . import low\nfrom .sub import a\nimport pkg.high\n",
            "high": "from pkg.sub.a import thing\nfrom pkg import helper, low\n",
            "sub/__init__": "from . import a\n",
            "sub/a": "from .. import middle\nfrom ..low import x\nimport os\n",
        }
    )
    assert _graph(modules) == {
        ("pkg.middle", "pkg.low", False),
        ("pkg.middle", "pkg.sub.a", False),
        ("pkg.middle", "pkg.high", False),
        ("pkg.high", "pkg.sub.a", False),
        ("pkg.high", "pkg", False),  # helper: an attribute of the package itself
        ("pkg.high", "pkg.low", False),
        ("pkg.sub", "pkg.sub.a", False),
        ("pkg.sub.a", "pkg.middle", False),
        ("pkg.sub.a", "pkg.low", False),
    }


def test_the_checker_sees_imports_deferred_into_functions_methods_and_lambdas():
    modules = _synthetic(
        {
            "low": "",
            "middle": (
                "import pkg.low\n"
                "class A:\n"
                "    from pkg import low as at_class_level\n"
                "    def method(self):\n"
                "        from pkg import high\n"
                "async def coroutine():\n"
                "    import pkg.sub\n"
                "handler = lambda: __import__('pkg.sub.a')\n"
            ),
            "high": "",
            "sub/__init__": "",
            "sub/a": "",
        }
    )
    assert _graph(modules) == {
        ("pkg.middle", "pkg.low", False),
        ("pkg.middle", "pkg.high", True),
        ("pkg.middle", "pkg.sub", True),
        ("pkg.middle", "pkg.sub.a", True),
    }


def test_the_checker_sees_import_module_and_import_string_with_a_literal_path():
    modules = _synthetic(
        {
            "low": "",
            "middle": (
                "from importlib import import_module\n"
                "from django.utils.module_loading import import_string\n"
                "low = import_module('pkg.low')\n"
                "high = import_string('pkg.high.Thing')\n"
                "other = import_string(setting)\n"
            ),
            "high": "",
        }
    )
    assert _graph(modules) == {("pkg.middle", "pkg.low", False), ("pkg.middle", "pkg.high", False)}


def test_the_checker_ignores_imports_under_type_checking_but_not_under_its_else():
    modules = _synthetic(
        {
            "low": (
                "import typing\n"
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from pkg.high import Model\n"
                "else:\n"
                "    from pkg.middle import Model\n"
                "if typing.TYPE_CHECKING:\n"
                "    import pkg.high\n"
                "def f():\n"
                "    if TYPE_CHECKING:\n"
                "        import pkg.high\n"
            ),
            "middle": "",
            "high": "",
        }
    )
    assert _graph(modules) == {("pkg.low", "pkg.middle", False)}


def test_the_checker_finds_a_cycle_that_runs_through_a_deferred_import():
    modules = _synthetic(
        {
            "low": "from pkg import middle\n",
            "middle": "from pkg import high\n",
            "high": "def later():\n    from pkg import low\n",
        }
    )
    (cycle,) = import_cycles(modules, package_edges(modules, "pkg"))
    assert cycle.startswith("cycle of 3 modules: pkg.high, pkg.low, pkg.middle")
    assert "pkg.high -> pkg.low (deferred, pkg/high.py:2)" in cycle
    acyclic = _synthetic(
        {"low": "", "middle": "from pkg import low\n", "high": "from pkg import middle\n"}
    )
    assert import_cycles(acyclic, package_edges(acyclic, "pkg")) == []


def test_the_checker_reports_an_upward_import_with_both_ranks():
    modules = _synthetic(
        {
            "low": "def f():\n    from pkg import high\n",
            "middle": "import pkg.low\n",
            "high": "from pkg import middle\n",
        }
    )
    assert upward_imports(modules, package_edges(modules, "pkg"), SYNTHETIC_LAYERS) == [
        "pkg.low -> pkg.high: low (rank 0) imports high (rank 2) (deferred, pkg/low.py:2)"
    ]


def test_the_checker_lets_a_module_import_its_own_layer_and_lower_ones():
    modules = _synthetic(
        {"low": "", "middle": "from pkg import low\nfrom pkg.sub import a\n", "sub/a": ""}
    )
    assert upward_imports(modules, package_edges(modules, "pkg"), SYNTHETIC_LAYERS) == []


def test_the_checker_reports_a_deferred_import_outside_the_roots_unless_allowed():
    modules = _synthetic(
        {
            "__init__": "def lazy():\n    from pkg import high\n",
            "low": "",
            "middle": "def f():\n    from pkg import low\n",
            "high": "def g():\n    import pkg.low\n",
        }
    )
    allowed = {("pkg.high", "pkg.low"): "a reason"}
    assert deferred_imports(modules, package_edges(modules, "pkg"), {"pkg"}, allowed) == [
        "pkg.middle -> pkg.low (deferred, pkg/middle.py:2): import it at the top of the "
        "module, or list it with its reason in DEFERRED_IMPORTS_ALLOWED"
    ]


def test_the_checker_reports_an_import_of_the_package_itself():
    modules = _synthetic(
        {
            "__init__": "from pkg.low import helper\n",
            "low": "",
            "middle": "from pkg import helper\n",
            "high": "import pkg\nfrom pkg import low\n",
        }
    )
    edges = package_edges(modules, "pkg")
    assert imports_of_the_package(modules, edges, "pkg", {"pkg.high"}) == [
        "pkg.middle imports the package pkg itself (pkg/middle.py:1): import the module "
        "that defines the name instead"
    ]


def test_the_checker_reports_a_module_without_a_layer_or_with_two():
    layers = {**SYNTHETIC_LAYERS, "other": (1, ("pkg.low",))}
    problems = unassigned_modules(["pkg.low", "pkg.new", "pkg.sub", "pkg.sub.deep.x"], layers)
    assert problems == [
        "pkg.low is in several layers (low, other): make LAYERS place it once",
        "pkg.new has no layer: add it (or a 'package.*' pattern) to one of the layers of "
        "LAYERS in tests/test_architecture.py",
    ]
    assert layers_of("pkg.subtle", SYNTHETIC_LAYERS) == []  # pkg.sub.* is not a name prefix


def test_the_checker_reports_an_import_of_a_module_that_does_not_exist():
    modules = _synthetic({"low": "import pkg.gone\n"})
    assert imports_of_missing_modules(modules, package_edges(modules, "pkg")) == [
        "pkg.low imports pkg.gone, which is no module of the package (pkg/low.py:1)"
    ]


def test_the_all_checker_reports_a_missing_a_wrong_and_a_built_up_all():
    assert all_problems("def f(): pass\n") == ["declares no __all__"]
    assert all_problems("__all__ = ['f', 'gone', 'f']\ndef f(): pass\n") == [
        "'f' is listed twice",
        "'gone' is not defined by the module",
    ]
    assert all_problems("__all__ = ['a']\n__all__ += ['b']\na = b = 1\n") == [
        "builds __all__ in several statements: make it one literal list"
    ]
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from x import Hint\n"
        "try:\n"
        "    import y\n"
        "except ImportError:\n"
        "    y = None\n"
        "__all__ = ['Hint', 'y']\n"
    )
    assert all_problems(source) == ["'Hint' is not defined by the module"]


def test_the_docs_checker_flags_references_to_modules_and_names_that_do_not_exist():
    names = {"tenancy": {"get_tenant_model"}, "tenancy.models": {"TenantModel"}}
    text = (
        "`tenancy.get_tenant_model()`, `tenancy.models.TenantModel.for_tenant()`, "
        "`tenancy.conf`, tenancy.models.Gone, the task `tenancy.reconcile`, `tenancy._*`, "
        "django-tenancy.\n"
    )
    assert unknown_references(text, names, {"tenancy.reconcile"}) == [
        "tenancy.conf",
        "tenancy.models.Gone",
    ]


def test_the_docs_checker_finds_a_name_only_in_its_own_module_section():
    text = "# API\n\n## `tenancy.a`\n\n`thing(x)`\n\n### `cmd`\n\n`--opt`\n\n## `tenancy.b`\n\nb\n"
    sections = doc_sections(text)
    assert set(sections) == {"tenancy.a", "tenancy.b"}
    assert mentions(sections["tenancy.a"], "thing")
    assert mentions(sections["tenancy.a"], "--opt")
    assert not mentions(sections["tenancy.b"], "thing")
    assert not mentions("`things`", "thing")
    assert not mentions("`--opt-out`", "--opt")
    assert doc_sections(text, level=3) == {"cmd": "### `cmd`\n\n`--opt`\n\n"}


# -- the rules, on the tenancy package --------------------------------------------------


@functools.cache
def tenancy_edges() -> list[Edge]:
    return package_edges(tenancy_modules())


def test_the_tenancy_package_has_no_import_cycle():
    cycles = import_cycles(tenancy_modules(), tenancy_edges())
    assert not cycles, "import cycles in the tenancy package:\n" + "\n".join(cycles)


def test_every_import_goes_to_a_module_of_the_same_or_a_lower_layer():
    upward = upward_imports(tenancy_modules(), tenancy_edges(), LAYERS)
    assert not upward, "imports that go up the layers:\n" + "\n".join(upward)


def test_imports_are_deferred_into_functions_only_in_the_composition_roots():
    deferred = deferred_imports(
        tenancy_modules(), tenancy_edges(), COMPOSITION_ROOTS, DEFERRED_IMPORTS_ALLOWED
    )
    assert not deferred, "deferred imports outside the composition roots:\n" + "\n".join(deferred)


def test_every_allowed_deferred_import_still_exists():
    found = {(e.source, e.target) for e in tenancy_edges() if e.deferred}
    stale = [f"{a} -> {b}" for a, b in DEFERRED_IMPORTS_ALLOWED if (a, b) not in found]
    assert not stale, "DEFERRED_IMPORTS_ALLOWED lists imports that are gone:\n" + "\n".join(stale)


def test_no_module_but_the_roots_and_the_public_modules_imports_the_package_itself():
    allowed = COMPOSITION_ROOTS | set(PUBLIC_MODULES)
    found = imports_of_the_package(tenancy_modules(), tenancy_edges(), PACKAGE, allowed)
    assert not found, "imports of the tenancy package itself:\n" + "\n".join(found)


def test_every_module_of_the_package_has_exactly_one_layer():
    problems = unassigned_modules(tenancy_modules(), LAYERS)
    problems += imports_of_missing_modules(tenancy_modules(), tenancy_edges())
    assert not problems, "\n".join(problems)


def test_every_layer_pattern_matches_a_module():
    modules = tenancy_modules()
    unused = [
        f"{layer}: {pattern}"
        for layer, (_, patterns) in LAYERS.items()
        for pattern in patterns
        if not any(layers_of(m, {layer: (0, (pattern,))}) for m in modules)
    ]
    assert not unused, "LAYERS patterns that match no module:\n" + "\n".join(unused)


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_module_declares_its_public_names_in_one_literal_all(module):
    problems = all_problems(tenancy_modules()[module].source)
    assert not problems, f"{module}: " + "; ".join(problems)


@functools.cache
def api_doc() -> str:
    return API_DOC.read_text()


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_public_name_is_documented_under_its_module_in_docs_api_md(module):
    section = doc_sections(api_doc()).get(module)
    assert section is not None, f"docs/api.md has no section '## `{module}`'"
    source = tenancy_modules()[module].source
    names = declared_all(source)
    if module == "tenancy.testing":
        names += fixtures(source)  # public through pytest_plugins, not through __all__
    missing = [name for name in names if not mentions(section, name)]
    assert not missing, f"names of {module} missing from its section of docs/api.md: {missing}"


def test_docs_api_md_names_no_tenancy_module_or_attribute_that_does_not_exist():
    modules = tenancy_modules()
    names = {name: bound_names(module.source) for name, module in modules.items()}
    sources = [module.source for module in modules.values()]
    others = keyword_strings(modules["tenancy.tasks"].source, "shared_task", "name")
    others |= keyword_strings(modules["tenancy.checks"].source, "Error", "id")
    others |= keyword_strings(modules["tenancy.checks"].source, "Warning", "id")
    others |= {name for s in sources for name in first_arguments(s, "getLogger", "get_logger")}
    unknown = unknown_references(api_doc(), names, others)
    assert not unknown, f"docs/api.md names what does not exist: {unknown}"


def test_docs_api_md_documents_every_management_command_and_its_options():
    sections = doc_sections(api_doc(), level=3)
    missing = []
    for name, module in sorted(tenancy_modules().items()):
        command = name.removeprefix("tenancy.management.commands.")
        if command == name or module.is_package:
            continue
        section = sections.get(command)
        if section is None:
            missing.append(f"### `{command}`")
            continue
        missing += [
            f"{command} {o}" for o in command_options(module.source) if not mentions(section, o)
        ]
    assert not missing, f"docs/api.md lacks commands or options: {missing}"


def test_docs_api_md_documents_every_setting_and_system_check():
    modules = tenancy_modules()
    settings = setting_names(m.source for m in modules.values())
    checks = keyword_strings(modules["tenancy.checks"].source, "Error", "id")
    checks |= keyword_strings(modules["tenancy.checks"].source, "Warning", "id")
    missing = sorted(name for name in settings | checks if f"`{name}`" not in api_doc())
    assert settings and checks
    assert not missing, f"docs/api.md lacks settings or system checks: {missing}"


def test_docs_api_md_says_that_the_private_modules_may_change_without_notice():
    text = " ".join(api_doc().split())
    assert "`tenancy._*`" in text and "may change without notice" in text
