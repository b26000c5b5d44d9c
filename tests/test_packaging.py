"""What a user installs: the wheel holds the library only, its hard requirements are
Django and Celery, and the README's usage runs from it in a fresh virtual environment.

Also which PostgreSQL driver a leg of the suite runs on (``TENANCY_TEST_DRIVER``,
set by ``make test-psycopg3``), and ``LISTEN``/``NOTIFY`` on that driver.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import venv
from pathlib import Path

import pytest
from django.db import connection

from benchmarks.services import pg_connect

ROOT = Path(__file__).resolve().parent.parent

#: What stays out of the copy the wheel is built from: environments and build output.
_NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv*", "__pycache__", "*.pyc", "*.egg-info", "build", "dist",
    ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", "*.sqlite3",
)  # fmt: skip


def _run(command: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: int = 600):
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} exited {result.returncode}:\n"
        f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


def _clean_environment(venv_dir: Path) -> dict[str, str]:
    """The environment of a user's shell in a fresh venv: nothing of this suite's."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("DJANGO_", "TENANCY_", "CELERY_", "PYTHON", "VIRTUAL_ENV"))
    }
    env["PATH"] = f"{venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv_dir)
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _readme_usage() -> tuple[str, str, str]:
    """The README's Usage section: its settings, its models and the code using them."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Usage\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    declarations, usage = blocks[0], blocks[1]
    settings, models = declarations.split("# myapp/models.py\n", 1)
    return settings.replace("# settings.py\n", ""), models, usage


def _user_project(directory: Path) -> None:
    """A new Django project built from the README's Usage section, on SQLite, eager."""
    settings, models, usage = _readme_usage()
    before_delete, delete = usage.split("customer.delete()", 1)
    delete = "customer.delete()" + delete
    assert "INSTALLED_APPS = [..., " in settings  # the README elides Django's own apps
    settings = settings.replace("[..., ", '["django.contrib.auth", "django.contrib.contenttypes", ')
    (directory / "myapp").mkdir()
    (directory / "myapp" / "__init__.py").write_text("")
    (directory / "myapp" / "models.py").write_text(models)
    (directory / "settings.py").write_text(
        settings
        + textwrap.dedent(
            f"""
            SECRET_KEY = "packaging-test"
            USE_TZ = True
            DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
            DATABASES = {{"default": {{
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": {str(directory / "db.sqlite3")!r},
            }}}}
            TENANCY_EAGER = True
            """
        )
    )
    (directory / "usage.py").write_text(
        textwrap.dedent(
            """
            import os, sys, sysconfig
            os.environ["DJANGO_SETTINGS_MODULE"] = "settings"
            sys.path.insert(0, os.getcwd())
            import django
            django.setup()
            from django.core.management import call_command
            import tenancy
            site_packages = sysconfig.get_paths()["purelib"]
            assert tenancy.__file__.startswith(site_packages), tenancy.__file__
            call_command("migrate", verbosity=0)
            from myapp.models import Customer, Project, Report
            """
        )
        + before_delete
        + textwrap.dedent(
            """
            assert customer.state == "ready", customer.state
            assert TenantProject.objects.get().name == "first"
            assert Report.for_tenant(customer).objects.count() == 0
            """
        )
        + delete
        + textwrap.dedent(
            """
            assert not Customer.objects.exists()
            print("README usage ran from", tenancy.__file__)
            """
        )
    )


@pytest.mark.slow
def test_the_wheel_holds_the_library_only_and_the_readme_usage_runs_from_it(tmp_path):
    # Built from a copy of the working tree: no build/ or egg-info left in the clone.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_COPIED)
    wheels = tmp_path / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
         "-q", "-w", str(wheels), str(source)],
        cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = wheels.glob("django_tenancy-*.whl")

    venv_dir = tmp_path / "venv"
    venv.create(venv_dir, with_pip=True, clear=True)
    python = venv_dir / "bin" / "python"
    env = _clean_environment(venv_dir)
    # The wheel's own requirements only (Django, Celery): no extra, no driver, no broker client.
    _run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        cwd=tmp_path, env=env,
    )  # fmt: skip

    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        cwd=tmp_path, env=env,
    ).stdout.strip()  # fmt: skip
    (record,) = Path(purelib).glob("django_tenancy-*.dist-info/RECORD")
    top_level = {line.split("/", 1)[0] for line in record.read_text().splitlines() if line}
    assert top_level == {"tenancy", record.parent.name}, top_level
    for name in ("worker", "benchmarks", "tests", "scripts"):
        assert not (Path(purelib) / name).exists(), f"{name} was installed into site-packages"
    # The templates and the typing marker travel with the package.
    installed = {line.split(",", 1)[0] for line in record.read_text().splitlines()}
    assert "tenancy/py.typed" in installed
    assert "tenancy/templates/tenancy/not_ready.html" in installed
    # psycopg2 and redis are extras now, not hard requirements.
    missing = _run(
        [str(python), "-c",
         "import importlib.util as u; print([m for m in ('psycopg2', 'psycopg', 'redis') "
         "if u.find_spec(m) is None])"],
        cwd=tmp_path, env=env,
    ).stdout.strip()  # fmt: skip
    assert missing == "['psycopg2', 'psycopg', 'redis']"

    project = tmp_path / "project"
    project.mkdir()
    _user_project(project)
    # As a user would: makemigrations, then the code in a process of its own.
    manage = [str(python), "-m", "django", "makemigrations", "myapp", "--settings", "settings"]
    _run(manage, cwd=project, env={**env, "PYTHONPATH": str(project)})
    result = _run([str(python), "usage.py"], cwd=project, env=env, timeout=300)
    assert "README usage ran from " + purelib in result.stdout


def test_the_extras_name_the_drivers_and_the_broker_client():
    """psycopg 3, psycopg2 and redis are extras; `.[test]` brings what the suite needs."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sorted(project["dependencies"]) == ["Django>=5.2", "celery>=5.4"]
    extras = project["optional-dependencies"]
    assert extras["postgres"] == ["psycopg[binary]>=3.1.8"]
    assert extras["psycopg2"] == ["psycopg2-binary>=2.9.9"]
    assert any(r.startswith("redis") for r in extras["redis"])
    assert "django-tenancy[test-tools,psycopg2]" in extras["test"]
    assert "django-tenancy[redis]" in extras["test-tools"]
    assert not any("psycopg" in r for r in extras["test-tools"])


# -- the driver of this leg --


def _driver_module() -> str:
    connection.ensure_connection()
    return type(connection.connection).__module__.split(".", 1)[0]


@pytest.mark.postgresql
def test_the_leg_runs_on_the_driver_it_names(db):
    """``make test-psycopg3`` sets TENANCY_TEST_DRIVER=psycopg: Django's connections are
    psycopg 3's and psycopg2 cannot even be imported, so no test passes on psycopg2."""
    expected = os.environ.get("TENANCY_TEST_DRIVER")
    if expected is None:
        assert _driver_module() in {"psycopg", "psycopg2"}
        return
    assert _driver_module() == expected
    if expected == "psycopg":
        assert importlib.util.find_spec("psycopg2") is None


@pytest.mark.postgresql
def test_listen_wakes_a_waiter_on_notify_with_this_driver(transactional_db, settings):
    """The wait behind wait_until_ready() LISTENs on Django's own connection and wakes
    on a NOTIFY from another session well before its sleep ends, on either driver."""
    from tenancy._primitives import notify

    settings.TENANCY_LISTEN = True
    listener, owned = notify._listen("default")
    assert listener is not None and not owned
    try:

        def send() -> None:
            time.sleep(0.3)
            conn = pg_connect(connection.settings_dict["NAME"])
            conn.autocommit = True
            try:
                with conn.cursor() as cursor:
                    cursor.execute("SELECT pg_notify(%s, %s)", [notify.CHANNEL, "tenant_x"])
            finally:
                conn.close()

        sender = threading.Thread(target=send)
        started = time.monotonic()
        sender.start()
        assert notify._sleep(listener, 10) is True
        woke = time.monotonic() - started
        sender.join()
        assert 0.25 < woke < 5, f"woke after {woke:.2f}s"
        # Nothing is left to read: the next sleep lasts its whole time.
        started = time.monotonic()
        assert notify._sleep(listener, 0.3) is True
        assert time.monotonic() - started >= 0.25
    finally:
        notify._unlisten(listener, owned)


@pytest.mark.postgresql
def test_a_terminated_listener_is_let_go_with_this_driver(transactional_db, settings):
    """pg_terminate_backend() of the listening session: the sleep reports a broken
    listener (the wait goes on by polling) instead of raising or spinning."""
    from tenancy._primitives import notify

    settings.TENANCY_LISTEN = True
    listener, owned = notify._listen("default")
    assert listener is not None
    with listener.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    admin = pg_connect(connection.settings_dict["NAME"])
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        admin.close()
    started = time.monotonic()
    healthy = True
    while healthy and time.monotonic() - started < 5:
        healthy = notify._sleep(listener, 0.5)
    assert not healthy
    notify._forget(listener, owned, "default")
    connection.ensure_connection()  # Django opens a new connection afterwards
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


def test_the_suite_imports_no_driver_of_its_own():
    """Tests reach PostgreSQL through Django or benchmarks.services.pg_connect(), never by
    importing a driver: the psycopg 3 leg has no psycopg2, the psycopg2 leg no psycopg."""
    imports = re.compile(r"^\s*(?:import|from)\s+psycopg2?\b", re.M)
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if imports.search(path.read_text())
    ]
    assert offenders == [], "use benchmarks.services.pg_connect() / PgError instead"
