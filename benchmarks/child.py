"""What every benchmark child process does first and last: set up Django, print the result.

A child prints exactly one JSON object, on its last line starting with ``{``,
which the harness parses (see :meth:`benchmarks.services.Environment.python`).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def setup() -> None:
    """Configure Django from ``DJANGO_SETTINGS_MODULE`` (set by the harness)."""
    import django

    django.setup()


def emit(result: dict[str, Any]) -> None:
    """Print the child's result for the harness."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def ms_since(started: float) -> float:
    """Milliseconds elapsed since ``started`` (a ``time.perf_counter()`` value)."""
    return (time.perf_counter() - started) * 1000
