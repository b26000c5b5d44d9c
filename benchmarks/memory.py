"""Memory probes: Python allocations (tracemalloc) and the resident set of the process."""

from __future__ import annotations

import gc
import os
import resource


def rss_bytes() -> int:
    """Return the resident set size of this process now (Linux ``/proc``; else the peak)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def settle() -> None:
    """Collect garbage (cycles included) so measurements see only what is kept alive."""
    gc.collect()
    gc.collect()
