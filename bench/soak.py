"""Soak: many runner calls on one bundle, resident memory sampled as they go.

    python bench/soak.py [--bundle DIR] [--calls 10000] [--warmup 500]

Default bundle: the demo's (exported on first use). Texts cycle through the mr test set, device
states through the demo's four (so every ratio and threshold is exercised) and a few bad inputs
(empty text, invalid UTF-8, NaN battery) are fed in between, their errors caught, as an app would.
Prints resident memory (RSS) after the warm-up and at the end, and its growth.
"""

from __future__ import annotations

import argparse
import math
import resource
import time
from pathlib import Path

from edge_variator.data import load_benchmark
from edge_variator.defaults import default_bundle, demo_states
from edge_variator.runtime.policy import DeviceState, DeviceStateError
from edge_variator.runtime.runner import BundleRunner
from edge_variator.tokenizer import TextError


def rss_mb() -> float:
    """Current resident set size (Linux /proc; the peak from getrusage elsewhere)."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--bundle", help="a bundle folder (default: the demo's default bundle)")
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=500)
    args = parser.parse_args()
    bundle = Path(args.bundle) if args.bundle else default_bundle()[0]
    runner = BundleRunner(bundle)
    texts = [e.text for e in load_benchmark("mr").test]
    states = [state for _, state in demo_states()]
    bad_inputs = {97: "   ", 193: b"caf\xe9"}
    samples, errors, started = [], 0, time.perf_counter()
    for call in range(args.warmup + args.calls):
        if call == args.warmup:
            baseline, started = rss_mb(), time.perf_counter()
        try:
            if call % 997 == 0:
                DeviceState(battery=math.nan)
            runner.run(bad_inputs.get(call % 211, texts[call % len(texts)]), states[call % len(states)])
        except (TextError, DeviceStateError):
            errors += 1
        done = call - args.warmup + 1
        if done > 0 and (done % 1000 == 0 or done == args.calls):
            samples.append(rss_mb())
    seconds = time.perf_counter() - started
    print(f"{bundle}: {args.calls:,} runner calls after {args.warmup} warm-up calls, {seconds:.0f} s "
          f"({1000 * seconds / args.calls:.2f} ms a call), {errors} bad inputs refused with typed errors")
    sampled = ", ".join(f"{mb:.1f}" for mb in samples)
    print(f"RSS after warm-up {baseline:.1f} MB; every 1,000 calls: {sampled} MB")
    print(f"growth after warm-up: {100 * (samples[-1] - baseline) / baseline:+.2f}%")


if __name__ == "__main__":
    main()
