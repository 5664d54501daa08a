"""Dynamic against static int8 against fp32, for our bundles on mr and r8 (XNNPACK, ExecuTorch runtime).

    python bench/int8.py [--tasks mr r8] [--lengths 16 64 128 256] [--repeats 20] [--limit N]
                         [--only accuracy|latency]

For each set, our model (models/<task>/quarter with its plugins, compare.task_models) is exported
three times at 256 tokens: fp32, int8-dynamic (int8 weights, activations quantized per token at
run time) and int8-static (activation ranges observed on compare.CALIBRATION_TEXTS train texts).
- accuracy: the test split through the runner at k = 1, every layer run (no early exit), one text
  at a time;
- latency: embed -> every layer at k = 1 -> the last exit, at each length, every position a real
  token, the three bundles of both sets interleaved in one run (compare.latency_by_length), median
  and min-max over the rounds.
Writes docs/int8.json and prints the README table. Exporting takes a few minutes per bundle on
2 cores; bundles are cached (defaults.cached_export). `--only` runs one half and keeps the other
half of an existing docs/int8.json: accuracy can run on a busy machine, latency needs a quiet one.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import bundle_call, bundle_of, latency_by_length, task_models  # noqa: E402

from edge_variator import data as datasets  # noqa: E402
from edge_variator.files import write_json  # noqa: E402
from edge_variator.profile import run_summary  # noqa: E402
from edge_variator.runtime.policy import Decision  # noqa: E402
from edge_variator.runtime.runner import BundleRunner  # noqa: E402

KINDS = ("none", "int8-dynamic", "int8-static")
MAX_LENGTH = 256
OUT = Path(__file__).resolve().parent.parent / "docs" / "int8.json"


def run(tasks: list[str], lengths: list[int], repeats: int, limit: int | None, only: str | None = None,
        previous: dict | None = None) -> dict:
    runners, accuracy = {}, []
    for task in tasks:
        models = task_models(task, Path("runs"))
        if isinstance(models, str):
            raise SystemExit(f"{task}: {models}")
        data = datasets.load_benchmark(task)
        rows = data.test[:limit or None]
        for kind in KINDS:
            runner = BundleRunner(bundle_of(models, "ours", MAX_LENGTH, kind, data))
            runners[f"{task} {kind}"] = runner
            if only == "latency":
                continue
            every_layer = Decision(1, None, None, "every layer", False)
            summary = run_summary(runner, [e.text for e in rows], [e.label for e in rows], every_layer)
            accuracy.append({"task": task, "quantize": kind, "texts": len(rows),
                             "accuracy": summary["accuracy"]})
    if only == "accuracy":
        return {**(previous or {}), "max_length": MAX_LENGTH, "accuracy": accuracy}
    calls = {name: (bundle_call(runner, 1), MAX_LENGTH) for name, runner in runners.items()}
    latency = latency_by_length(calls, lengths, repeats, {})
    if only == "latency":
        accuracy = (previous or {}).get("accuracy", [])
    return {"max_length": MAX_LENGTH, "repeats": repeats, "accuracy": accuracy, "latency": latency}


def table(result: dict) -> str:
    """Accuracy per set and median ms per length, per quantization (the README's table)."""
    lengths = sorted({row["tokens"] for row in result["latency"]})
    tasks = list(dict.fromkeys(row["task"] for row in result["accuracy"]))
    accuracy = {(r["task"], r["quantize"]): r["accuracy"] for r in result["accuracy"]}
    median = {(r["config"], r["tokens"]): r["median_ms"] for r in result["latency"]}
    header = [f"{t} test accuracy" for t in tasks] + [f"{t} ms at {n}" for t in tasks for n in lengths]
    lines = ["| quantization | " + " | ".join(header) + " |", "|---" * (1 + len(header)) + "|"]
    for kind in KINDS:
        cells = [f"{100 * accuracy[t, kind]:.2f}%" for t in tasks]
        cells += [f"{median[f'{t} {kind}', n]:.2f}" for t in tasks for n in lengths]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["mr", "r8"])
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 128, 256])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--limit", type=int, help="the first N test texts only (a smoke run)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--only", choices=["accuracy", "latency"],
                        help="run one half; the other is kept from --out")
    args = parser.parse_args()
    previous = json.loads(args.out.read_text()) if args.only and args.out.is_file() else None
    result = run(args.tasks, args.lengths, args.repeats, args.limit, args.only, previous)
    write_json(args.out, result)
    if result.get("accuracy") and result.get("latency"):
        print(table(result))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
