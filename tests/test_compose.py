"""docker-compose.yml, checked structurally (no Docker engine needed).

The compose file must start PostgreSQL and Redis before the worker and the
web process, and set only variables that the example settings really read.
"""

from __future__ import annotations

import ast
import importlib.util
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
SETTINGS = ROOT / "worker" / "settings.py"

BACKING_SERVICES = ("postgres", "redis")
APP_SERVICES = ("worker", "web")


@pytest.fixture(scope="module")
def services() -> dict:
    compose = yaml.safe_load(COMPOSE.read_text())  # resolves the x-app anchor and `<<:` merges
    assert isinstance(compose, dict) and isinstance(compose.get("services"), dict)
    return compose["services"]


def environment_of(service: dict) -> dict[str, str]:
    """Return a service's environment, written as a mapping or as a KEY=VALUE list."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def command_of(service: dict) -> str:
    command = service.get("command", "")
    return shlex.join(command) if isinstance(command, list) else str(command)


def variables_read_by_settings() -> set[str]:
    """Return the environment variables worker/settings.py reads, from its source.

    Counts ``os.environ.get("X")``, ``os.environ["X"]``, ``os.getenv("X")``
    and ``"X" in os.environ``.
    """
    tree = ast.parse(SETTINGS.read_text())

    def is_environ(node: ast.AST) -> bool:
        return (
            isinstance(node, ast.Attribute)
            and node.attr == "environ"
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        )

    def literal(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        return None

    names: set[str] = set()
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if isinstance(func, ast.Attribute) and (
                (func.attr in ("get", "setdefault") and is_environ(func.value))
                or (
                    func.attr == "getenv"
                    and isinstance(func.value, ast.Name)
                    and func.value.id == "os"
                )
            ):
                key = literal(node.args[0])
        elif isinstance(node, ast.Subscript) and is_environ(node.value):
            key = literal(node.slice)
        elif (
            isinstance(node, ast.Compare)
            and len(node.ops) == 1
            and isinstance(node.ops[0], ast.In)
            and is_environ(node.comparators[0])
        ):
            key = literal(node.left)
        if key:
            names.add(key)
    return names


def load_settings(monkeypatch, env: dict[str, str]):
    """Import worker/settings.py afresh, as the container would, with ``env``."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("_compose_worker_settings", SETTINGS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_four_services_exist(services):
    for name in (*BACKING_SERVICES, *APP_SERVICES):
        assert name in services, f"docker-compose.yml has no {name!r} service"


@pytest.mark.parametrize("name", BACKING_SERVICES)
def test_backing_services_have_healthchecks(services, name):
    healthcheck = services[name].get("healthcheck")
    assert isinstance(healthcheck, dict) and healthcheck.get("test"), (
        f"{name} needs a healthcheck so that the app waits until it answers"
    )
    assert not healthcheck.get("disable", False)


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_wait_for_healthy_backing_services(services, name):
    depends_on = services[name].get("depends_on")
    assert isinstance(depends_on, dict), (
        f"{name}.depends_on must be a mapping with conditions, not {depends_on!r}"
    )
    for backing in BACKING_SERVICES:
        assert backing in depends_on, f"{name} does not depend on {backing}"
        assert depends_on[backing].get("condition") == "service_healthy", (
            f"{name} must wait for {backing} with condition: service_healthy"
        )


def test_settings_source_reads_the_service_variables():
    # The parser of the test itself: it must see the variables the settings document.
    read = variables_read_by_settings()
    assert {"DATABASE_URL", "CELERY_BROKER_URL"} <= read, read


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_environment_names_are_read_by_the_settings(services, name):
    env = environment_of(services[name])
    assert {"DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"} <= set(env), env
    # DJANGO_SETTINGS_MODULE is read by Django itself and names the settings module.
    assert env["DJANGO_SETTINGS_MODULE"] == "worker.settings"
    unread = set(env) - {"DJANGO_SETTINGS_MODULE"} - variables_read_by_settings()
    assert not unread, (
        f"{name} sets {sorted(unread)}, which worker/settings.py never reads "
        f"(it reads {sorted(variables_read_by_settings())})"
    )


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_environment_points_at_the_compose_services(services, name, monkeypatch):
    env = environment_of(services[name])
    postgres_env = environment_of(services["postgres"])
    database = urlsplit(env["DATABASE_URL"])
    assert database.hostname == "postgres" and (database.port or 5432) == 5432
    assert database.username == postgres_env.get("POSTGRES_USER", "postgres")
    assert database.password == postgres_env.get("POSTGRES_PASSWORD")
    assert database.path.lstrip("/") == postgres_env.get(
        "POSTGRES_DB", postgres_env.get("POSTGRES_USER", "postgres")
    )
    broker = urlsplit(env["CELERY_BROKER_URL"])
    assert broker.scheme == "redis" and broker.hostname == "redis"

    # And the settings turn these values into the right configuration.
    settings = load_settings(
        monkeypatch, {k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"}
    )
    default = settings.DATABASES["default"]
    assert default["ENGINE"] == "django.db.backends.postgresql"
    assert default["HOST"] == "postgres"
    assert env["CELERY_BROKER_URL"] == settings.CELERY_BROKER_URL


def test_worker_runs_the_celery_worker_of_the_example_project(services):
    command = command_of(services["worker"])
    assert "celery -A worker worker" in " ".join(command.split()), command


# -- docker-compose.citus.yml: the Citus cluster of docs/scaling.md and `make test-citus` --

CITUS_COMPOSE = ROOT / "docker-compose.citus.yml"
CITUS_NODES = ("coordinator", "worker1", "worker2")


@pytest.fixture(scope="module")
def citus_services() -> dict:
    compose = yaml.safe_load(CITUS_COMPOSE.read_text())
    return compose["services"]


def test_the_citus_cluster_is_a_coordinator_and_two_workers_of_one_citus_image(citus_services):
    images = {citus_services[name]["image"] for name in (*CITUS_NODES, "nodes")}
    assert len(images) == 1 and next(iter(images)).startswith("citusdata/citus:13.2")
    for name in CITUS_NODES:
        command = command_of(citus_services[name])
        # Every schema a distributed schema; online moves (logical replication) that
        # keep the writes of their switch-over (see tenancy._primitives.citus).
        assert "citus.enable_schema_based_sharding=on" in command
        assert "wal_level=logical" in command
        assert "synchronous_commit=off" not in command
        assert "max_worker_processes=32" in command  # daemons and replication workers
        assert citus_services[name]["healthcheck"]["test"]


def test_the_coordinator_is_published_where_make_test_citus_says(citus_services):
    (port,) = citus_services["coordinator"]["ports"]
    assert port == "127.0.0.1:${COORDINATOR_PORT:-5500}:5432"
    makefile = (ROOT / "Makefile").read_text()
    assert "TENANCY_TEST_CITUS=127.0.0.1:5500" in makefile
    assert all("ports" not in citus_services[name] for name in ("worker1", "worker2"))


def test_the_workers_are_registered_once_every_node_is_healthy(citus_services):
    nodes = citus_services["nodes"]
    assert nodes["depends_on"] == {name: {"condition": "service_healthy"} for name in CITUS_NODES}
    entrypoint = shlex.join(nodes["entrypoint"])
    assert "-h coordinator" in entrypoint and "-d postgres" in entrypoint
    command = " ".join(nodes["command"])
    assert "citus_set_coordinator_host('coordinator', 5432)" in command
    for worker in ("worker1", "worker2"):
        assert f"citus_add_node('{worker}', 5432)" in command
