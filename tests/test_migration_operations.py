"""Every operation of ``django.db.migrations.operations``, applied inside one tenant.

Each test writes a migration for a small app of tenant models of its own,
``ops`` (hand-written migrations whose models carry the ``PerTenant`` mark in
their bases, as ``makemigrations`` writes them), appends it to the project's
migration plan and applies it the way ``tenancy_migrate`` does, through
:func:`tenancy._migrating.executor.migrate_schema`: on PostgreSQL in the
tenant's schema (the SQL recorded on the first run is replayed on the next
ones), on SQLite on the tenant's prefixed tables. Where Django can reverse the
operation, it is then un-applied through ``executor._unapply_migration`` (each
operation's ``database_backwards``, through the same per-tenant machinery) and
applied again.

What the database holds is read back from its catalog, at every step: the
migrated tenant's tables, columns, indexes, constraints and rows; a second
tenant, left alone until it is migrated last and then exactly like the first;
and the shared schema, which never changes.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, migrations, models, transaction
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration
from django.db.migrations.operations.base import Operation
from django.db.models import Q
from django.db.models.functions import Lower

from tenancy._migrating import executor, recorder
from tenancy._migrating import plan as plan_module
from tenancy._migrating.plan import Key, Plan
from tenancy._primitives import storage
from tenancy.exceptions import TenantMigrationError
from tenancy.state import PerTenant
from tests.settings import BACKEND

APP = "ops"
#: The hint that makes RunPython and RunSQL tenant operations (docs/migrations.md).
TENANT = {"tenant": True}


def on_sqlite() -> bool:
    return not storage.uses_schemas(connection)


# -- the ops app: its first migration, and the rows put in every tenant --------


def _id() -> models.Field:
    return models.BigAutoField(
        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
    )


def initial_operations() -> list[Operation]:
    """Tag, Widget (a many-to-many to Tag, a foreign key to the shared users, a named
    index, a check constraint and a partial unique constraint) and Part (a foreign
    key to Widget)."""
    return [
        migrations.CreateModel(
            name="Tag",
            fields=[("id", _id()), ("label", models.CharField(max_length=30))],
            bases=(PerTenant, models.Model),
        ),
        migrations.CreateModel(
            name="Widget",
            fields=[
                ("id", _id()),
                ("name", models.CharField(max_length=50)),
                ("position", models.IntegerField(default=0)),
                ("code", models.CharField(blank=True, default="", max_length=20)),
                (
                    "owner",
                    models.ForeignKey(
                        null=True,
                        on_delete=models.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                ("tags", models.ManyToManyField(blank=True, related_name="widgets", to="ops.tag")),
            ],
            options={
                "indexes": [models.Index(fields=["position"], name="widget_position_idx")],
                "constraints": [
                    models.CheckConstraint(
                        condition=Q(position__gte=0), name="widget_position_gte_0"
                    ),
                    models.UniqueConstraint(
                        fields=["code"], condition=~Q(code=""), name="widget_code_uniq"
                    ),
                ],
            },
            bases=(PerTenant, models.Model),
        ),
        migrations.CreateModel(
            name="Part",
            fields=[
                ("id", _id()),
                ("label", models.CharField(max_length=30)),
                (
                    "widget",
                    models.ForeignKey(
                        on_delete=models.CASCADE, related_name="parts", to="ops.widget"
                    ),
                ),
            ],
            bases=(PerTenant, models.Model),
        ),
    ]


#: Rows put in both tenants once they have the first migration (ids 1, 2, ...).
ROWS: list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]] = [
    ("ops_tag", ("label",), [("red",)]),
    ("ops_widget", ("name", "position", "code"), [("w1", 1, "a"), ("w2", 2, "")]),
    ("ops_part", ("label", "widget_id"), [("p1", 1)]),
    ("ops_widget_tags", ("widget_id", "tag_id"), [(1, 1)]),
]


def qualified(schema: str, table: str) -> str:
    """The tenant's ``table``, quoted, as raw SQL names it from outside the tenant."""
    return connection.ops.quote_name(storage.table_name(schema, table, "default"))


# -- reading back what the database holds ---------------------------------------


@dataclasses.dataclass(frozen=True)
class Table:
    """One table of a tenant, as the database's catalog describes it."""

    #: (name, type, display size, internal size, nullable) of each column.
    columns: frozenset[tuple[Any, ...]]
    #: (declared name or "" for a generated one, kind, columns, referenced table and
    #: column) of each index and constraint, sorted.
    constraints: tuple[tuple[Any, ...], ...]
    comment: str | None
    #: The rows, each as sorted (column, value) pairs, sorted.
    rows: tuple[tuple[tuple[str, Any], ...], ...]

    @property
    def column_names(self) -> set[str]:
        return {column[0] for column in self.columns}

    @property
    def names(self) -> set[str]:
        """The declared names of its indexes and constraints."""
        return {entry[0] for entry in self.constraints if entry[0]}

    def column(self, name: str) -> tuple[Any, ...]:
        return next(column for column in self.columns if column[0] == name)

    def kinds(self, *columns: str) -> set[str]:
        """The kinds of the indexes and constraints on exactly these columns."""
        return {entry[1] for entry in self.constraints if entry[2] == columns}

    def named(self, name: str) -> tuple[Any, ...]:
        return next(entry for entry in self.constraints if entry[0] == name)

    def values(self, column: str) -> list[Any]:
        return sorted((dict(row)[column] for row in self.rows), key=repr)

    def structure(self) -> Table:
        return dataclasses.replace(self, rows=())


Storage = dict[str, Table]


def structure(tables: Storage) -> Storage:
    return {name: table.structure() for name, table in tables.items()}


def tenant_storage(schema: str) -> Storage:
    """The tenant's ``ops_*`` tables, by their names inside the tenant."""
    sqlite = on_sqlite()
    introspection = connection.introspection
    found: Storage = {}
    with transaction.atomic(), connection.cursor() as cursor:
        if not sqlite:  # the catalog look-ups below see this schema's tables only
            cursor.execute(
                "SELECT set_config('search_path', %s, true)", [connection.ops.quote_name(schema)]
            )
        for info in introspection.get_table_list(cursor):
            raw = info.name
            name = _inside(raw, schema) if sqlite else raw
            if name is None or not name.startswith(f"{APP}_"):
                continue
            columns = frozenset(
                (c.name, c.type_code, c.display_size, c.internal_size, c.null_ok)
                for c in introspection.get_table_description(cursor, raw)
            )
            constraints = []
            for constraint, details in introspection.get_constraints(cursor, raw).items():
                target = details["foreign_key"]
                if target:
                    target = (_inside(target[0], schema) or target[0], target[1])
                kind = (
                    "pk"
                    if details["primary_key"]
                    else "fk"
                    if target
                    else "check"
                    if details["check"]
                    else "unique"
                    if details["unique"]
                    else "index"
                )
                label = _declared(constraint, schema, sqlite)
                constraints.append((label, kind, tuple(details["columns"] or ()), target))
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(raw)}")
            header = [column[0] for column in cursor.description]
            rows = sorted(
                (tuple(sorted(zip(header, row, strict=True))) for row in cursor.fetchall()),
                key=repr,
            )
            found[name] = Table(
                columns,
                tuple(sorted(constraints, key=repr)),
                getattr(info, "comment", None),
                tuple(rows),
            )
    return found


def _inside(raw: str, schema: str) -> str | None:
    """The name of a prefixed SQLite table inside its tenant (None: not this tenant's)."""
    mark = schema + storage.PREFIX_SEPARATOR
    return raw[len(mark) :] if raw.startswith(mark) else None


_GENERATED_SQLITE = re.compile(r"__\w+__|fk_\d+|sqlite_autoindex_.*")


def _declared(name: str, schema: str, sqlite: bool) -> str:
    """The declared name of an index or constraint, "" for a name Django generated.

    On SQLite a declared name must be the tenant's own (``<schema>_<name>``: one
    namespace of index names per database); one that is not is reported as such.
    """
    if not sqlite:
        return "" if name.startswith(f"{APP}_") else name  # generated: <table>_...
    if name.startswith(schema + storage.PREFIX_SEPARATOR) or _GENERATED_SQLITE.fullmatch(name):
        return ""
    if name.startswith(schema + "_"):
        return name[len(schema) + 1 :]
    return f"NOT PREFIXED: {name}"


def shared_storage() -> frozenset[tuple[Any, ...]]:
    """Every table, index, sequence... outside the tenants' storage."""
    with connection.cursor() as cursor:
        if on_sqlite():
            cursor.execute(
                "SELECT type, name, tbl_name FROM sqlite_master "
                "WHERE tbl_name NOT LIKE %s ESCAPE '!'",
                ["tenant!_%"],
            )
        else:
            cursor.execute(
                "SELECT n.nspname, c.relname, c.relkind FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname NOT LIKE %s AND n.nspname NOT LIKE %s "
                "AND n.nspname <> 'information_schema'",
                ["tenant%", "pg!_%"],
            )
        return frozenset(cursor.fetchall())


# -- the harness ----------------------------------------------------------------


def migration(name: str, operations: Sequence[Operation]) -> Migration:
    built = Migration(name, APP)
    built.operations = list(operations)
    return built


def plan_with(project: Plan, extra: Sequence[Migration]) -> Plan:
    """The project's tenant plan followed by ``extra`` (each depending on the one before)."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    graph = loader.graph
    previous: Key = graph.leaf_nodes("auth")[0]  # Widget.owner points at the users
    keys: list[Key] = []
    for built in extra:
        key = (built.app_label, built.name)
        built.dependencies = [previous]
        graph.add_node(key, built)
        graph.add_dependency(built, key, previous)
        previous = key
        keys.append(key)
    graph.validate_consistency()
    return Plan(loader, [*project.full, *keys], [*project.keys, *keys])


class Ops:
    """Two tenants, the ops app's migrations, and ways to apply them and look."""

    def __init__(self, first: str, second: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.first, self.second = first, second
        self.monkeypatch = monkeypatch
        self.project = plan_module.plan()  # the project's own tenant migrations
        self.applied: list[Migration] = []
        self.plan: Plan | None = None
        self.key: Key | None = None

    def _use(self, the_plan: Plan) -> None:
        self.plan = the_plan
        self.monkeypatch.setattr(plan_module, "_plan", the_plan)

    def prepare(self, *before: Sequence[Operation]) -> None:
        """Apply the first migration, then one per list of ``before``, to both tenants,
        and put the same rows in both."""
        self.applied = [migration("0001_initial", initial_operations())]
        for number, operations in enumerate(before, start=2):
            self.applied.append(migration(f"{number:04d}_before", operations))
        self._use(plan_with(self.project, self.applied))
        keys = [(APP, built.name) for built in self.applied]
        for schema in (self.first, self.second):
            assert executor.migrate_schema(schema, "default") == keys
            with connection.cursor() as cursor:
                for table, columns, rows in ROWS:
                    cursor.executemany(
                        f"INSERT INTO {qualified(schema, table)} ({', '.join(columns)}) "
                        f"VALUES ({', '.join(['%s'] * len(columns))})",
                        rows,
                    )

    def install(self, *operations: Operation) -> Key:
        """Make a migration of ``operations`` the plan's last one (applied nowhere yet)."""
        built = migration(f"{len(self.applied) + 1:04d}_operation", operations)
        self._use(plan_with(self.project, [*self.applied, built]))
        self.key = (APP, built.name)
        return self.key

    def forwards(self, schema: str) -> Storage:
        """Migrate ``schema`` as tenancy_migrate does; return what it then holds."""
        assert executor.migrate_schema(schema, "default") == [self.key]
        assert self.key in recorder.applied(schema, "default")
        return tenant_storage(schema)

    def backwards(self, schema: str) -> Storage:
        """Un-apply the last migration in ``schema``; return what it then holds."""
        assert self.key is not None
        executor._unapply_migration(schema, "default", self.key)
        assert self.key not in recorder.applied(schema, "default")
        return tenant_storage(schema)

    def roundtrip(
        self,
        *operations: Operation,
        before: Sequence[Sequence[Operation]] = (),
        reversible: bool = True,
        restores_rows: bool = True,
    ) -> tuple[Storage, Storage]:
        """Apply ``operations`` in the first tenant, un-apply them, apply them again, then
        in the second tenant; check what a tenant migration must never do on the way.

        Returns the first tenant's tables before and after the migration.
        """
        self.prepare(*before)
        first, second, shared = (
            tenant_storage(self.first),
            tenant_storage(self.second),
            shared_storage(),
        )
        self.install(*operations)
        after = self.forwards(self.first)
        if not on_sqlite() and self.plan.compilable([self.key]):
            # Recorded here; the next runs (this tenant again, the second one) replay it.
            assert ("default", (self.key,)) in self.plan.compiled
        assert tenant_storage(self.second) == second, "another tenant was changed"
        assert shared_storage() == shared, "the shared schema was changed"
        if reversible:
            back = self.backwards(self.first)
            if restores_rows:
                assert back == first
            else:
                assert structure(back) == structure(first)
            assert tenant_storage(self.second) == second, "another tenant was changed"
            assert shared_storage() == shared, "the shared schema was changed"
            assert self.forwards(self.first) == after, "applied again, it differs"
        else:
            with pytest.raises(TenantMigrationError, match="IrreversibleError"):
                self.backwards(self.first)
            assert tenant_storage(self.first) == after
            assert self.key in recorder.applied(self.first, "default")
        assert self.forwards(self.second) == after, "the next tenant ends up otherwise"
        assert shared_storage() == shared, "the shared schema was changed"
        return first, after


@pytest.fixture
def ops(make_tenant, monkeypatch) -> Iterator[Ops]:
    first, second = make_tenant("ops_first"), make_tenant("ops_second")
    yield Ops(first.db_schema, second.db_schema, monkeypatch)
    _drop_strays()


def _drop_strays() -> None:
    """Drop ``ops`` tables a failed test may have left outside the tenants (before the
    flush, which would trip over their foreign keys to the users)."""
    with connection.cursor() as cursor:
        if on_sqlite():
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND (name LIKE %s ESCAPE '!' OR name LIKE %s ESCAPE '!')",
                [f"{APP}!_%", "new!_!_%"],
            )
        else:
            cursor.execute(
                "SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
                "WHERE tablename LIKE %s AND schemaname NOT LIKE %s",
                [f"{APP}\\_%", "tenant%"],
            )
        strays = [row[0] for row in cursor.fetchall()]
    if strays:
        with connection.schema_editor() as editor:
            for table in strays:
                name = table if not on_sqlite() else connection.ops.quote_name(table)
                editor.execute(f"DROP TABLE IF EXISTS {name}")


# -- models -----------------------------------------------------------------------


def test_create_model(ops):
    before, after = ops.roundtrip(
        migrations.CreateModel(
            name="Gizmo",
            fields=[
                ("id", _id()),
                ("name", models.CharField(max_length=40)),
                ("widget", models.ForeignKey(on_delete=models.CASCADE, to="ops.widget")),
                ("tags", models.ManyToManyField(to="ops.tag")),
            ],
            options={
                "unique_together": {("name", "widget")},
                "indexes": [models.Index(fields=["name"], name="gizmo_name_idx")],
                "constraints": [
                    models.CheckConstraint(condition=~Q(name=""), name="gizmo_name_not_empty")
                ],
            },
            bases=(PerTenant, models.Model),
        )
    )
    assert "ops_gizmo" not in before and "ops_gizmo_tags" not in before
    gizmo = after["ops_gizmo"]
    assert gizmo.column_names == {"id", "name", "widget_id"}
    assert gizmo.names == {"gizmo_name_idx", "gizmo_name_not_empty"}
    assert gizmo.named("gizmo_name_idx")[1:3] == ("index", ("name",))
    assert "unique" in gizmo.kinds("name", "widget_id")
    assert ("", "fk", ("widget_id",), ("ops_widget", "id")) in gizmo.constraints
    assert after["ops_gizmo_tags"].column_names == {"id", "gizmo_id", "tag_id"}


def test_delete_model(ops):
    before, after = ops.roundtrip(
        migrations.DeleteModel("Part"), migrations.DeleteModel("Widget"), restores_rows=False
    )
    assert {"ops_part", "ops_widget", "ops_widget_tags"} <= set(before)
    assert set(after) == {"ops_tag"}


def test_rename_model_renames_its_table_its_many_to_many_table_and_the_foreign_keys_to_it(ops):
    before, after = ops.roundtrip(migrations.RenameModel("Widget", "Gadget"))
    assert set(before) == {"ops_tag", "ops_widget", "ops_widget_tags", "ops_part"}
    assert set(after) == {"ops_tag", "ops_gadget", "ops_gadget_tags", "ops_part"}
    assert after["ops_gadget"].rows == before["ops_widget"].rows
    assert after["ops_gadget"].names == before["ops_widget"].names
    assert after["ops_gadget_tags"].column_names == {"id", "gadget_id", "tag_id"}
    assert after["ops_gadget_tags"].values("gadget_id") == [1]
    assert ("", "fk", ("widget_id",), ("ops_gadget", "id")) in after["ops_part"].constraints


def test_rename_model_pointed_at_by_a_many_to_many_renames_its_column(ops):
    before, after = ops.roundtrip(migrations.RenameModel("Tag", "Keyword"))
    assert "ops_tag" not in after and after["ops_keyword"].rows == before["ops_tag"].rows
    assert after["ops_widget_tags"].column_names == {"id", "widget_id", "keyword_id"}
    assert after["ops_widget_tags"].values("keyword_id") == [1]


def test_alter_model_table_keeps_the_table_inside_the_tenant(ops):
    before, after = ops.roundtrip(migrations.AlterModelTable("widget", "ops_widgets"))
    assert set(after) == {"ops_tag", "ops_widgets", "ops_widgets_tags", "ops_part"}
    assert after["ops_widgets"].rows == before["ops_widget"].rows
    assert after["ops_widgets"].names == before["ops_widget"].names
    assert ("", "fk", ("widget_id",), ("ops_widgets", "id")) in after["ops_part"].constraints


def test_alter_model_table_comment(ops):
    before, after = ops.roundtrip(
        migrations.AlterModelTableComment("widget", "The widgets of one tenant")
    )
    assert before["ops_widget"].comment in (None, "")
    if connection.features.supports_comments:
        assert after["ops_widget"].comment == "The widgets of one tenant"
    else:  # SQLite has no comments: Django does nothing there
        assert after == before


def test_alter_unique_together(ops):
    before, after = ops.roundtrip(migrations.AlterUniqueTogether("widget", {("name", "position")}))
    assert "unique" not in before["ops_widget"].kinds("name", "position")
    assert "unique" in after["ops_widget"].kinds("name", "position")


def test_alter_index_together(ops):
    before, after = ops.roundtrip(migrations.AlterIndexTogether("widget", {("name", "code")}))
    assert before["ops_widget"].kinds("name", "code") == set()
    assert after["ops_widget"].kinds("name", "code") == {"index"}


def test_alter_order_with_respect_to(ops):
    before, after = ops.roundtrip(migrations.AlterOrderWithRespectTo("part", "widget"))
    assert "_order" not in before["ops_part"].column_names
    assert "_order" in after["ops_part"].column_names
    assert after["ops_part"].values("_order") == [0]


def _mark_the_first_widget(apps, schema_editor):
    widgets = apps.get_model(APP, "Widget").objects.using(schema_editor.connection.alias)
    first = widgets.first()  # in the state's ordering
    first.code = "first"
    first.save(update_fields=["code"])


def _unmark_it(apps, schema_editor):
    widgets = apps.get_model(APP, "Widget").objects.using(schema_editor.connection.alias)
    widgets.filter(code="first").update(code="")


def test_alter_model_options(ops):
    """No change in the database; the historical models of the tenant get the options."""
    before, after = ops.roundtrip(
        migrations.AlterModelOptions("widget", {"ordering": ["-position"]}),
        migrations.RunPython(_mark_the_first_widget, _unmark_it, hints=TENANT),
    )
    assert structure(after) == structure(before)
    assert after["ops_widget"].values("code") == ["a", "first"]  # w2, by -position


class NamedManager(models.Manager):
    use_in_migrations = True

    def named(self, name: str) -> models.QuerySet:
        return self.filter(name=name)


def _move_w1(position: int):
    def move(apps, schema_editor):
        widgets = apps.get_model(APP, "Widget").things.db_manager(schema_editor.connection.alias)
        assert widgets.named("w1").update(position=position) == 1

    return move


def test_alter_model_managers(ops):
    """No change in the database; the historical models of the tenant get the managers."""
    before, after = ops.roundtrip(
        migrations.AlterModelManagers(
            "widget", [("objects", models.Manager()), ("things", NamedManager())]
        ),
        migrations.RunPython(_move_w1(7), _move_w1(1), hints=TENANT),
    )
    assert structure(after) == structure(before)
    assert after["ops_widget"].values("position") == [2, 7]


# -- indexes and constraints ------------------------------------------------------------


def test_add_index(ops):
    before, after = ops.roundtrip(
        migrations.AddIndex("widget", models.Index(fields=["name"], name="widget_name_idx")),
        migrations.AddIndex("widget", models.Index(Lower("name"), name="widget_lower_name_idx")),
    )
    assert before["ops_widget"].names == {
        "widget_position_idx",
        "widget_position_gte_0",
        "widget_code_uniq",
    }
    assert after["ops_widget"].names == before["ops_widget"].names | {
        "widget_name_idx",
        "widget_lower_name_idx",
    }
    assert after["ops_widget"].named("widget_name_idx")[1:3] == ("index", ("name",))


def test_remove_index_finds_the_index_by_its_declared_name(ops):
    before, after = ops.roundtrip(migrations.RemoveIndex("widget", "widget_position_idx"))
    assert before["ops_widget"].named("widget_position_idx")[1:3] == ("index", ("position",))
    assert "widget_position_idx" not in after["ops_widget"].names
    assert "index" not in after["ops_widget"].kinds("position")


def test_rename_index(ops):
    before, after = ops.roundtrip(
        migrations.RenameIndex("widget", new_name="widget_pos_idx", old_name="widget_position_idx")
    )
    assert "widget_pos_idx" not in before["ops_widget"].names
    assert "widget_position_idx" not in after["ops_widget"].names
    assert after["ops_widget"].named("widget_pos_idx")[1:3] == ("index", ("position",))


def test_rename_an_unnamed_index(ops):
    """From index_together to a named index; Django's backwards is a no-op."""
    ops.prepare([migrations.AlterIndexTogether("widget", {("name", "code")})])
    first, second, shared = (
        tenant_storage(ops.first),
        tenant_storage(ops.second),
        shared_storage(),
    )
    assert first["ops_widget"].kinds("name", "code") == {"index"}
    ops.install(
        migrations.RenameIndex(
            "widget", new_name="widget_name_code_idx", old_fields=("name", "code")
        )
    )
    after = ops.forwards(ops.first)
    assert after["ops_widget"].named("widget_name_code_idx")[1:3] == ("index", ("name", "code"))
    assert after["ops_widget"].kinds("name", "code") == {"index"}
    assert tenant_storage(ops.second) == second
    assert ops.backwards(ops.first) == after  # Django leaves the new name
    assert ops.forwards(ops.first) == after
    assert ops.forwards(ops.second) == after
    assert shared_storage() == shared


def test_add_constraint(ops):
    before, after = ops.roundtrip(
        migrations.AddConstraint(
            "widget",
            models.CheckConstraint(
                condition=Q(position__lte=1000), name="widget_position_lte_1000"
            ),
        ),
        migrations.AddConstraint(
            "widget", models.UniqueConstraint(fields=["name"], name="widget_name_uniq")
        ),
        migrations.AddConstraint(
            "widget", models.UniqueConstraint(Lower("name"), name="widget_lower_name_uniq")
        ),
    )
    added = {"widget_position_lte_1000", "widget_name_uniq", "widget_lower_name_uniq"}
    assert after["ops_widget"].names == before["ops_widget"].names | added
    assert after["ops_widget"].named("widget_position_lte_1000")[1] == "check"
    assert after["ops_widget"].named("widget_name_uniq")[1:3] == ("unique", ("name",))
    assert after["ops_widget"].named("widget_lower_name_uniq")[1] == "unique"


def test_remove_constraint_finds_the_constraints_by_their_declared_names(ops):
    before, after = ops.roundtrip(
        migrations.RemoveConstraint("widget", "widget_position_gte_0"),
        migrations.RemoveConstraint("widget", "widget_code_uniq"),
    )
    assert before["ops_widget"].named("widget_position_gte_0")[1] == "check"
    assert before["ops_widget"].named("widget_code_uniq")[1:3] == ("unique", ("code",))
    assert after["ops_widget"].names == {"widget_position_idx"}


def _check_message(apps, schema_editor):
    widget = apps.get_model(APP, "Widget")
    (constraint,) = [c for c in widget._meta.constraints if c.name.endswith("position_gte_0")]
    assert constraint.violation_error_message == "A position is never negative."


def test_alter_constraint(ops):
    """No change in the database; the historical models of the tenant get the new
    constraint (its violation message here)."""
    before, after = ops.roundtrip(
        migrations.AlterConstraint(
            "widget",
            "widget_position_gte_0",
            models.CheckConstraint(
                condition=Q(position__gte=0),
                name="widget_position_gte_0",
                violation_error_message="A position is never negative.",
            ),
        ),
        migrations.RunPython(_check_message, migrations.RunPython.noop, hints=TENANT),
    )
    assert after == before


# -- fields -----------------------------------------------------------------------------


def test_add_field(ops):
    before, after = ops.roundtrip(
        migrations.AddField("widget", "weight", models.IntegerField(default=5)),
        migrations.AddField(
            "widget", "sku", models.CharField(max_length=10, null=True, unique=True)
        ),
        migrations.AddField("part", "tags", models.ManyToManyField(to="ops.tag")),
    )
    assert after["ops_widget"].column_names == before["ops_widget"].column_names | {"weight", "sku"}
    assert after["ops_widget"].values("weight") == [5, 5]
    assert "unique" in after["ops_widget"].kinds("sku")
    assert after["ops_widget"].names == before["ops_widget"].names
    assert after["ops_part_tags"].column_names == {"id", "part_id", "tag_id"}


def test_remove_field(ops):
    before, after = ops.roundtrip(
        migrations.RemoveField("widget", "owner"),
        migrations.RemoveField("widget", "tags"),
        restores_rows=False,  # the many-to-many rows are gone with their table
    )
    assert "owner_id" in before["ops_widget"].column_names and "ops_widget_tags" in before
    assert "owner_id" not in after["ops_widget"].column_names
    assert "ops_widget_tags" not in after
    assert after["ops_widget"].names == before["ops_widget"].names


def test_alter_field(ops):
    before, after = ops.roundtrip(
        migrations.AlterField("widget", "name", models.CharField(max_length=120, db_index=True)),
        migrations.AlterField("part", "label", models.CharField(max_length=30, null=True)),
    )
    assert before["ops_widget"].column("name") != after["ops_widget"].column("name")
    if on_sqlite():
        assert after["ops_widget"].column("name")[1] == "varchar(120)"
    assert "index" not in before["ops_widget"].kinds("name")
    assert "index" in after["ops_widget"].kinds("name")
    assert after["ops_widget"].names == before["ops_widget"].names
    assert after["ops_part"].column("label")[-1] is True
    assert after["ops_widget"].rows == before["ops_widget"].rows


def test_rename_field(ops):
    before, after = ops.roundtrip(
        migrations.RenameField("part", "label", "title"),
        migrations.RenameField("part", "widget", "gadget"),
    )
    assert before["ops_part"].column_names == {"id", "label", "widget_id"}
    assert after["ops_part"].column_names == {"id", "title", "gadget_id"}
    assert after["ops_part"].values("title") == ["p1"]
    assert ("", "fk", ("gadget_id",), ("ops_widget", "id")) in after["ops_part"].constraints


# -- code and SQL -------------------------------------------------------------------------


def _scale_positions(factor: float):
    def scale(apps, schema_editor):
        widgets = apps.get_model(APP, "Widget").objects.using(schema_editor.connection.alias)
        for widget in widgets.all():
            widget.position = int(widget.position * factor)
            widget.save(update_fields=["position"])

    return scale


def test_run_python(ops):
    before, after = ops.roundtrip(
        migrations.RunPython(_scale_positions(10), _scale_positions(0.1), hints=TENANT),
    )
    assert before["ops_widget"].values("position") == [1, 2]
    assert after["ops_widget"].values("position") == [10, 20]


def test_run_python_without_reverse_code_cannot_be_unapplied(ops):
    _, after = ops.roundtrip(
        migrations.RunPython(_scale_positions(10), hints=TENANT), reversible=False
    )
    assert after["ops_widget"].values("position") == [10, 20]


SHIFT = "UPDATE ops_widget SET position = position + 100"
UNSHIFT = "UPDATE ops_widget SET position = position - 100"


@pytest.mark.postgresql
def test_run_sql_on_postgresql(ops):
    _, after = ops.roundtrip(migrations.RunSQL(SHIFT, UNSHIFT, hints=TENANT))
    assert after["ops_widget"].values("position") == [101, 102]


@pytest.mark.skipif(BACKEND != "sqlite", reason="PostgreSQL finds the table in the tenant's schema")
def test_run_sql_naming_a_tenant_table_on_sqlite_fails_and_changes_nothing(ops):
    """SQLite has no schemas: SQL runs as written and cannot name a tenant's tables
    (docs/migrations.md, SQLite)."""
    ops.prepare()
    before = tenant_storage(ops.first)
    ops.install(migrations.RunSQL(SHIFT, UNSHIFT, hints=TENANT))
    with pytest.raises(TenantMigrationError, match="no such table: ops_widget"):
        executor.migrate_schema(ops.first, "default")
    assert tenant_storage(ops.first) == before
    assert ops.key not in recorder.applied(ops.first, "default")


def test_run_sql_that_names_no_table(ops):
    """Runs in every tenant, forwards and backwards, on both backends."""
    ops.roundtrip(migrations.RunSQL([("SELECT %s", [1])], [("SELECT %s", [2])], hints=TENANT))


def test_run_sql_without_the_tenant_hint_never_runs_inside_tenants(ops):
    before, after = ops.roundtrip(migrations.RunSQL(SHIFT, UNSHIFT))
    assert after == before


def test_run_sql_without_reverse_sql_cannot_be_unapplied(ops):
    ops.roundtrip(migrations.RunSQL("SELECT 1", hints=TENANT), reversible=False)


def _gizmo() -> Operation:
    return migrations.CreateModel(
        name="Gizmo",
        fields=[
            ("id", _id()),
            ("widget", models.ForeignKey(on_delete=models.CASCADE, to="ops.widget")),
            ("tags", models.ManyToManyField(to="ops.tag")),
        ],
        options={"indexes": [models.Index(fields=["widget"], name="gizmo_widget_idx")]},
        bases=(PerTenant, models.Model),
    )


def _both(*operations: Operation) -> Operation:
    """The same operations for the database and for the state, each list its own objects."""
    return migrations.SeparateDatabaseAndState(
        database_operations=list(operations),
        state_operations=[copy.deepcopy(operation) for operation in operations],
    )


def test_separate_database_and_state_creates_and_renames_tables_inside_the_tenant(ops):
    """Its database operations run on states it derives itself, cloned from the tenant's:
    their tables are the tenant's too. State operations alone change no table."""
    before, after = ops.roundtrip(
        _both(_gizmo(), migrations.RenameModel("Part", "Piece")),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AlterModelTable("tag", "ops_labels")]
        ),
    )
    assert set(after) == set(before) - {"ops_part"} | {"ops_piece", "ops_gizmo", "ops_gizmo_tags"}
    assert after["ops_gizmo"].names == {"gizmo_widget_idx"}
    assert after["ops_piece"].rows == before["ops_part"].rows


def test_separate_database_and_state_finds_indexes_and_constraints_by_their_names(ops):
    before, after = ops.roundtrip(
        _both(
            migrations.AddIndex("widget", models.Index(fields=["name"], name="widget_name_idx")),
            migrations.RemoveIndex("widget", "widget_position_idx"),
            migrations.RemoveConstraint("widget", "widget_code_uniq"),
        )
    )
    assert before["ops_widget"].names == {
        "widget_position_idx",
        "widget_position_gte_0",
        "widget_code_uniq",
    }
    assert after["ops_widget"].names == {"widget_name_idx", "widget_position_gte_0"}


# -- where pending migrations start -----------------------------------------------------


def test_pending_migrations_start_from_everything_before_them_in_the_plan(make_tenant, monkeypatch):
    """A tenant app's first migration may declare no dependency (a model without
    relations: makemigrations writes none), so the plan places it after other apps'
    migrations it does not depend on. The next one, which does depend on the shared
    users, must still find them: pending migrations start from the state of everything
    before them in the plan, not from the first one's own dependencies."""
    tenant = make_tenant("ops_nodeps")
    project = plan_module.plan()
    loader = MigrationLoader(None, ignore_no_migrations=True)
    graph = loader.graph
    tags = migration("0001_tags", initial_operations()[:1])  # Tag: no relation, no dependency
    widgets = migration("0002_widgets", initial_operations()[1:])  # Widget.owner: the users
    auth: Key = graph.leaf_nodes("auth")[0]
    widgets.dependencies = [(APP, tags.name), auth]
    graph.add_node((APP, tags.name), tags)
    graph.add_node((APP, widgets.name), widgets)
    for dependency in widgets.dependencies:
        graph.add_dependency(widgets, (APP, widgets.name), dependency)
    graph.validate_consistency()
    keys = [(APP, tags.name), (APP, widgets.name)]
    monkeypatch.setattr(
        plan_module, "_plan", Plan(loader, [*project.full, *keys], [*project.keys, *keys])
    )
    try:
        assert executor.migrate_schema(tenant.db_schema, "default") == keys
        assert {"ops_tag", "ops_widget", "ops_part"} <= set(tenant_storage(tenant.db_schema))
        executor._unapply_migration(tenant.db_schema, "default", keys[1])
        assert set(tenant_storage(tenant.db_schema)) & {"ops_widget", "ops_part"} == set()
    finally:
        _drop_strays()
