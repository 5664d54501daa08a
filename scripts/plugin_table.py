"""Train compression plugins (k = 2, 4, 8) on frozen teachers and print the README's plugin table.

    python scripts/plugin_table.py --tasks mr           # the shipped default task (~12 min, 2 cores)
    python scripts/plugin_table.py --tasks mr --ship    # ... and copy its plugins into the package
    python scripts/plugin_table.py --report             # the table from finished runs only

Teachers: mr uses the shipped LoRA adapter; other tasks use runs/teachers/<task>-lora from
scripts/teacher_table.py. The 20ng and r8 teachers are fine-tuned at 128 tokens; their plugins are
trained at 256 and every ratio, k = 1 included, is scored at 256, so the rows compare like with like.
Each task's test split is scored at every ratio; latency is the median batch-1 forward time in PyTorch over
the same sample of test texts, the ratios interleaved text by text so load drift hits all alike.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from edge_variator.cost import parameter_count
from edge_variator.data import load_benchmark
from edge_variator.defaults import SHIPPED_ADAPTER, SHIPPED_PLUGINS
from edge_variator.evaluation import evaluate_ratios
from edge_variator.plugins import RATIOS, PluginSet, attach, set_ratio
from edge_variator.task import checkpoint_sha256, load_task
from edge_variator.tokenizer import Tokenizer
from edge_variator.train import PluginTrainConfig, train_plugins

RUNS = Path("runs/plugins")
# task -> (teacher, epochs, max_length, max_train, max_test)
SETTINGS = {
    "mr": (SHIPPED_ADAPTER, 1, 128, None, None),
    "trec6": (Path("runs/teachers/trec6-lora"), 3, 128, None, None),
    "20ng": (Path("runs/teachers/20ng-lora"), 1, 256, 2000, 2000),  # test: the teacher table's 2,000
    "r8": (Path("runs/teachers/r8-lora"), 1, 256, 2000, None),
}
LATENCY_SAMPLE = 100


def train(task: str) -> None:
    teacher, epochs, max_length, max_train, _ = SETTINGS[task]
    data = load_benchmark(task)
    for ratio in RATIOS:
        if (RUNS / task / f"k{ratio}" / "metrics.json").is_file():  # finished on an earlier run
            continue
        config = PluginTrainConfig(epochs=epochs, max_length=max_length, max_train=max_train)
        train_plugins(teacher, data, RUNS / task / f"k{ratio}", ratio, config)


def measure(task: str) -> dict:
    """Test accuracy, FLOPs and PyTorch latency at k = 1, 2, 4, 8, all in this one run."""
    teacher, _, max_length, _, max_test = SETTINGS[task]
    data = load_benchmark(task)
    if max_test is not None:  # the same seeded sample as scripts/teacher_table.py
        data = replace(data, test=random.Random(0).sample(data.test, max_test))
    ratios = [1, *RATIOS]
    rows = {row["ratio"]: row for row in
            evaluate_ratios(teacher, RUNS / task, data, "test", list(RATIOS), max_length)}

    model, tokenizer, _ = load_task(teacher)
    tokenizer = Tokenizer(tokenizer.model_dir, max_length)
    sha = checkpoint_sha256(teacher)
    backbone = parameter_count(model)
    rows[1]["added_parameters"] = 0.0
    for ratio in RATIOS:
        plugin_set = PluginSet.load(RUNS / task / f"k{ratio}")
        attach(model.encoder, plugin_set, sha)
        rows[ratio]["added_parameters"] = parameter_count(plugin_set) / backbone
    latency = {ratio: [] for ratio in ratios}
    sample = random.Random(0).sample(data.test, min(LATENCY_SAMPLE, len(data.test)))
    with torch.inference_mode():
        for example in sample:
            batch = tokenizer([example.text])
            for ratio in ratios:
                set_ratio(model.encoder, ratio)
                started = time.perf_counter()
                model(batch.input_ids, batch.attention_mask)
                latency[ratio].append(1000 * (time.perf_counter() - started))
    for ratio in ratios:
        rows[ratio]["latency_ms"] = statistics.median(latency[ratio])
    result = {"task": task, "max_length": max_length, "test_examples": len(data.test),
              "mean_padded_tokens": statistics.mean(tokenizer.padded_lengths([e.text for e in data.test])),
              "ratios": rows}
    (RUNS / task / "measured.json").write_text(json.dumps(result, indent=2))
    return result


def table(tasks: list[str]) -> str:
    lines = ["| task | max tokens (mean padded) | k | test acc | vs k=1 | added params | FLOPs vs k=1 | "
             "latency vs k=1 (PyTorch) |", "|---|---|---|---|---|---|---|---|"]
    for task in tasks:
        path = RUNS / task / "measured.json"
        if not path.is_file():
            continue
        result = json.loads(path.read_text())
        rows = {int(k): v for k, v in result["ratios"].items()}
        for ratio, row in rows.items():
            lines.append(
                f"| {task} | {result['max_length']} ({result['mean_padded_tokens']:.0f}) | {ratio} | "
                f"{100 * row['accuracy']:.1f} | {100 * (row['accuracy'] - rows[1]['accuracy']):+.1f} | "
                f"{100 * row['added_parameters']:.2f}% | {row['flops']:.2f} | "
                f"{row['latency_ms'] / rows[1]['latency_ms']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--report", action="store_true", help="only print the table of finished runs")
    parser.add_argument("--ship", action="store_true",
                        help=f"copy the mr plugins into {SHIPPED_PLUGINS} (the demo's default)")
    args = parser.parse_args()
    if not args.report:
        for task in args.tasks:
            train(task)
            measure(task)
            print(table([task]), flush=True)
    if args.ship:
        for ratio in RATIOS:
            shutil.copytree(RUNS / "mr" / f"k{ratio}", SHIPPED_PLUGINS / f"k{ratio}", dirs_exist_ok=True)
    print(table(args.tasks))


if __name__ == "__main__":
    main()
