"""Wall-clock timing of calls side by side: what profile.py and every benchmark measure with.

The calls are made in turn within each round, so a slow moment of a shared machine falls on all of
them alike rather than on one; the first `warmup` rounds are dropped. Compare the medians of one
run with each other, never with a fixed number.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence


def interleaved_ms(calls: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 3
                   ) -> dict[str, list[float]]:
    """Milliseconds of each call in each of `repeats` rounds after `warmup` rounds."""
    if repeats < 1 or warmup < 0:
        raise ValueError("repeats must be at least 1 and warmup at least 0")
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_index in range(warmup + repeats):
        for name, call in calls.items():
            began = time.perf_counter()
            call()
            if round_index >= warmup:
                times[name].append(1000 * (time.perf_counter() - began))
    return times


def spread(samples: Sequence[float]) -> dict[str, float]:
    """Median, 90th percentile, min and max of some timings, in ms."""
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return {"median_ms": statistics.median(ordered), "p90_ms": p90, "min_ms": ordered[0],
            "max_ms": ordered[-1]}
