"""The physical limit: the workload's DDL replayed raw with psycopg2, one transaction per schema.

The SQL is rendered once by Django's own schema editor in ``collect_sql``
mode (the final state of the migration history, the state before its last
migration, and that last AddField), then executed per schema as one batch:
``CREATE SCHEMA``, a transaction-local ``search_path`` and the statements.
No ORM, no migration state, no bookkeeping: what no library can beat.

``python -m benchmarks.raw --single S --fleet N`` (settings ``benchmarks.settings.raw``).
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from benchmarks import child


def state_sql(key: tuple[str, str] | None) -> list[str]:
    """Return the CREATE statements of the crm tables at the state after ``key`` (None: the end)."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    state = loader.project_state(key) if key is not None else loader.project_state()
    models = [m for m in state.apps.get_models() if m._meta.app_label == "crm"]
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        for model in models:
            editor.create_model(model)
    return _statements(editor.collected_sql)


def migration_sql(key: tuple[str, str]) -> list[str]:
    """Return the SQL of one migration, as ``sqlmigrate`` renders it."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connection, ignore_no_migrations=True)
    migration = loader.graph.nodes[key]
    return _statements(loader.collect_sql([(migration, False)]))


def _statements(collected: list[str]) -> list[str]:
    skipped = ("BEGIN;", "COMMIT;")
    return [s for s in collected if s.strip() and s not in skipped and not s.startswith("--")]


def last_two_migrations() -> tuple[tuple[str, str], tuple[str, str]]:
    """Return the keys of the crm app's second-to-last and last migrations."""
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    keys = sorted(k for k in loader.graph.nodes if k[0] == "crm")
    return keys[-2], keys[-1]


class Replayer:
    """Replays statements in schemas over one psycopg2 connection."""

    def __init__(self) -> None:
        from django.db import connection

        params = connection.get_connection_params()
        import psycopg2

        self.conn = psycopg2.connect(**params)

    def create(self, schema: str, sql: str) -> float:
        """Create ``schema`` with its tables in one transaction; return milliseconds."""
        started = time.perf_counter()
        with self.conn, self.conn.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{schema}"; SET LOCAL search_path TO "{schema}";\n{sql}')
        return child.ms_since(started)

    def alter(self, schema: str, sql: str) -> float:
        """Run ``sql`` in ``schema`` in one transaction; return milliseconds."""
        started = time.perf_counter()
        with self.conn, self.conn.cursor() as cursor:
            cursor.execute(f'SET LOCAL search_path TO "{schema}";\n{sql}')
        return child.ms_since(started)

    def close(self) -> None:
        self.conn.close()


def burst(schemas: list[str], sql: str, threads: int) -> float:
    """Create ``schemas`` over ``threads`` connections at once; return the wall time (s)."""
    parts = [schemas[i::threads] for i in range(threads)]
    replayers = [Replayer() for _ in parts]

    def run(replayer: Replayer, part: list[str]) -> None:
        for schema in part:
            replayer.create(schema, sql)

    workers = [
        threading.Thread(target=run, args=pair) for pair in zip(replayers, parts, strict=True)
    ]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    for replayer in replayers:
        replayer.close()
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", type=int, default=20, help="schemas created one at a time")
    parser.add_argument("--fleet", type=int, default=100, help="schemas of the burst and AddField")
    parser.add_argument("--threads", type=int, default=2, help="connections of the burst")
    args = parser.parse_args(argv)
    child.setup()

    before_last, last = last_two_migrations()
    final = state_sql(None)
    previous = state_sql(before_last)
    add_field = migration_sql(last)
    result: dict[str, Any] = {
        "statements_final": len(final),
        "statements_previous": len(previous),
        "add_field_sql": add_field,
    }
    replayer = Replayer()
    final_sql = "\n".join(final)
    replayer.create("raw_warmup", final_sql)
    result["single_ms"] = [replayer.create(f"raw_one_{i}", final_sql) for i in range(args.single)]

    fleet = [f"raw_fleet_{i}" for i in range(args.fleet)]
    result["burst_s"] = burst(fleet, "\n".join(previous), args.threads)
    result["burst_threads"] = args.threads
    alter_sql = "\n".join(add_field)
    result["add_field_ms"] = [replayer.alter(schema, alter_sql) for schema in fleet]
    replayer.close()
    child.emit(result)


if __name__ == "__main__":
    main()
