"""`edge-variator run` from a cold process: its start-up, the one-time load and the warm latency.

    python bench/run_startup.py [--bundle DIR] [--rounds 5] [--texts 100]

Default bundle: the demo's (the shipped mr slender model with its plugins). Each round starts
`edge-variator run` twice as a user would, once with one text as an argument and once with
`--texts` mr test texts on stdin, and reads the process's wall time from outside and the load and
warm per-text times from its summary line; then, side by side, the import that opening a
program used to cost (`executorch.runtime`, whose wrapper imports all of `executorch.exir`) against
the compiled extension the runtime now opens programs with. Prints the medians over rounds. Run it
on a quiet machine: it times whole processes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from edge_variator.data import load_benchmark
from edge_variator.defaults import default_bundle


def run(bundle: str, texts: list[str], as_arguments: bool) -> tuple[float, dict]:
    """Wall seconds of one `edge-variator run` process and its summary."""
    command = ["edge-variator", "run", bundle, *(texts if as_arguments else [])]
    began = time.perf_counter()
    result = subprocess.run(command, input=None if as_arguments else "\n".join(texts) + "\n",
                            capture_output=True, text=True, check=True)
    wall = time.perf_counter() - began
    return wall, json.loads(result.stdout.splitlines()[-1])["summary"]


IMPORTS = {"import torch + executorch.runtime (before)": "import torch, executorch.runtime",
           "import torch + the compiled extension (now)":
               "import torch; from executorch.extension.pybindings import _portable_lib"}


def import_seconds(statement: str) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, capture_output=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--bundle", help="a bundle folder (default: the demo's)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--texts", type=int, default=100, help="mr test texts on stdin per batch run")
    args = parser.parse_args()
    bundle = args.bundle or str(default_bundle()[0])
    texts = [e.text for e in load_benchmark("mr").test[:args.texts]]
    rows = {"one text (argument)": [], f"{len(texts)} texts (stdin)": []}
    for _ in range(args.rounds):  # interleaved, so drift hits both alike
        rows["one text (argument)"].append(run(bundle, texts[:1], True))
        rows[f"{len(texts)} texts (stdin)"].append(run(bundle, texts, False))
    print(f"`edge-variator run` on {bundle}, median of {args.rounds} rounds")
    print("| input | process wall time | bundle + methods load | warm per text (median / p90) |")
    print("|---|---|---|---|")
    for name, runs in rows.items():
        wall = statistics.median(w for w, _ in runs)
        load = statistics.median(s["load_ms"] for _, s in runs)
        median = statistics.median(s["warm_ms_median"] for _, s in runs)
        p90 = statistics.median(s["warm_ms_p90"] for _, s in runs)
        print(f"| {name} | {wall:.2f} s | {load:.0f} ms | {median:.2f} / {p90:.2f} ms |")
    seconds = {name: [] for name in IMPORTS}
    for _ in range(args.rounds):
        for name, statement in IMPORTS.items():
            seconds[name].append(import_seconds(statement))
    print("\n| a fresh process's | median wall time |\n|---|---|")
    for name, values in seconds.items():
        print(f"| {name} | {statistics.median(values):.2f} s |")


if __name__ == "__main__":
    main()
