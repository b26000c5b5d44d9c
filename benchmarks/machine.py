"""What the numbers were measured on: cores, memory, and the versions of everything involved."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import psycopg2

from benchmarks.services import pg_params


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as meminfo:
            kib = int(meminfo.readline().split()[1])
        return round(kib / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return None


def _postgresql() -> str:
    conn = psycopg2.connect(**pg_params())
    try:
        with conn.cursor() as cursor:
            cursor.execute("SHOW server_version")
            return str(cursor.fetchone()[0])
    finally:
        conn.close()


def _redis() -> str:
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout
    except OSError:
        return "not found"
    return next(
        (part.split("=", 1)[1] for part in out.split() if part.startswith("v=")), out.strip()
    )


def _git() -> dict[str, Any]:
    """The commit measured, and whether the library's files differed from it (a dirty tree)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "tenancy"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return {}
    return {"commit": commit, "tenancy_modified": bool(dirty)}


def describe() -> dict[str, Any]:
    return {
        **_git(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "django": _version("django"),
        "django-tenancy": _version("django-tenancy"),
        "django-tenants": _version("django-tenants"),
        "celery": _version("celery"),
        "psycopg2": _version("psycopg2-binary")
        if _version("psycopg2") == "not installed"
        else _version("psycopg2"),
        "postgresql": _postgresql(),
        "redis": _redis(),
    }
