"""Train COST-EFF multi-exit and slender models and print the README's early-exit table.

    python scripts/slender_table.py --tasks mr            # assistant + two slender sizes (~40 min, 2 cores)
    python scripts/slender_table.py --tasks mr --ship     # ... and copy the quarter model into the package
    python scripts/slender_table.py --report              # the table from finished runs only

The quarter-width model also gets compression plugins for k = 2, 4, 8 (trained on it, frozen,
1 epoch) and is calibrated at each ratio: the two papers' savings combined, which
bench/compare.py exports and compares. Per task: the fine-tuned teacher (mr: the shipped LoRA
adapter; others: runs/teachers/<task>-lora from scripts/teacher_table.py) -> the full-width
multi-exit assistant -> two slender sizes pruned from it (r8 and 20ng, 256-token documents: the
quarter size only, on 2,000 training documents, 45 to 60 min each on one core). Each finished stage is
skipped on a rerun. Every multi-exit model is calibrated on dev for an accuracy drop of 1 and 2
points against its own last exit; the table reports test accuracy, mean exit layer and mean FLOPs
per example at those thresholds, FLOPs relative to the teacher.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

import torch

from edge_variator.cost import average_flops, parameter_count
from edge_variator.data import load_benchmark
from edge_variator.defaults import SHIPPED_ADAPTER, SHIPPED_SLENDER
from edge_variator.evaluation import calibrate_checkpoint
from edge_variator.exits import to_fp16
from edge_variator.plugins import RATIOS, PluginSet
from edge_variator.task import load_task
from edge_variator.train import (
    ExitTrainConfig,
    PluginTrainConfig,
    SlenderConfig,
    evaluate,
    train_multi_exit,
    train_plugins,
    train_slender,
)

RUNS = Path("runs/slender")
DROPS = (0.01, 0.02)
# task -> (teacher, assistant epochs, slender prediction epochs, max_length)
SETTINGS = {
    "mr": (SHIPPED_ADAPTER, 2, 3, 128),
    "trec6": (Path("runs/teachers/trec6-lora"), 2, 3, 128),
    "sms_spam": (Path("runs/teachers/sms_spam-lora"), 1, 2, 128),
    "r8": (Path("runs/teachers/r8-lora"), 2, 3, 256),
    "20ng": (Path("runs/teachers/20ng-lora"), 1, 2, 256),
}
# long documents on 2 cores: a seeded subset of the training set, as their teachers had, and one size
MAX_TRAIN = {"r8": 2000, "20ng": 2000}
# name -> (heads of 12, FFN neurons of 1536, word-embedding rank of 384)
SIZES = {"half": (6, 768, 128), "quarter": (3, 384, 64)}
ONLY_SIZES = {"r8": ("quarter",), "20ng": ("quarter",)}
# the slender size that also gets compression plugins (k = 2, 4, 8): what bench/compare.py exports
COMBINED = {task: "quarter" for task in SETTINGS}


def sizes(task: str) -> dict[str, tuple[int, int, int]]:
    return {name: size for name, size in SIZES.items() if name in ONLY_SIZES.get(task, SIZES)}


def train(task: str) -> None:
    teacher, assistant_epochs, slender_epochs, max_length = SETTINGS[task]
    data = load_benchmark(task)
    assistant = RUNS / task / "assistant"
    if not (assistant / "metrics.json").is_file():
        config = ExitTrainConfig(epochs=assistant_epochs, max_length=max_length,
                                 max_train=MAX_TRAIN.get(task))
        train_multi_exit(teacher, data, assistant, config)
    for name, (heads, neurons, rank) in sizes(task).items():
        if not (RUNS / task / name / "metrics.json").is_file():
            config = SlenderConfig(epochs=slender_epochs, max_length=max_length, heads=heads, neurons=neurons,
                                   embedding_rank=rank, max_train=MAX_TRAIN.get(task))
            train_slender(assistant, data, RUNS / task / name, config)
    if task in COMBINED:
        base = RUNS / task / COMBINED[task]
        to_fp16(base)  # the weights that ship; plugins are bound to exactly these
        for ratio in RATIOS:
            if not (base / "plugins" / f"k{ratio}" / "metrics.json").is_file():
                config = PluginTrainConfig(epochs=1, max_length=max_length, max_train=MAX_TRAIN.get(task))
                train_plugins(base, data, base / "plugins" / f"k{ratio}", ratio, config)


def measure(task: str) -> dict:
    teacher_path, _, _, max_length = SETTINGS[task]
    data = load_benchmark(task)
    teacher, tokenizer, _ = load_task(teacher_path)
    lengths = tokenizer.padded_lengths([e.text for e in data.test])
    teacher_flops = average_flops(teacher.encoder.config, lengths, len(data.labels))
    accuracy = evaluate(teacher, tokenizer, data.test)["accuracy"]
    rows = [{"model": "teacher", "threshold": None, "drop": None, "accuracy": accuracy,
             "parameters": parameter_count(teacher), "mean_exit": teacher.encoder.config.layers,
             "flops": 1.0}]
    for name in ("assistant", *sizes(task)):
        calibrated = calibrate_checkpoint(RUNS / task / name, data, list(DROPS))
        for row in calibrated["thresholds"]:
            rows.append({"model": name, "threshold": row["threshold"], "drop": row["max_drop"],
                         "accuracy": row["test"]["accuracy"], "parameters": calibrated["parameters"],
                         "mean_exit": row["test"]["mean_exit_layer"],
                         "flops": row["test"]["mean_flops"] / teacher_flops})
    if task in COMBINED:
        base = RUNS / task / COMBINED[task]
        for ratio in RATIOS:
            calibrated = calibrate_checkpoint(base, data, list(DROPS), ratio, base / "plugins")
            for row in calibrated["thresholds"]:
                rows.append({"model": f"{COMBINED[task]} + plugins k={ratio}", "threshold": row["threshold"],
                             "drop": row["max_drop"], "accuracy": row["test"]["accuracy"],
                             "parameters": calibrated["parameters"],
                             "mean_exit": row["test"]["mean_exit_layer"],
                             "flops": row["test"]["mean_flops"] / teacher_flops})
    result = {"task": task, "max_length": max_length, "test_examples": len(data.test),
              "mean_padded_tokens": statistics.mean(lengths), "rows": rows}
    (RUNS / task / "measured.json").write_text(json.dumps(result, indent=2))
    return result


def table(tasks: list[str]) -> str:
    lines = ["| task | model | exit threshold (dev drop) | test acc | % of teacher | parameters | "
             "mean exit layer | FLOPs vs teacher |", "|---|---|---|---|---|---|---|---|"]
    for task in tasks:
        path = RUNS / task / "measured.json"
        if not path.is_file():
            continue
        rows = json.loads(path.read_text())["rows"]
        teacher = rows[0]
        for row in rows:
            threshold = ("-" if row["threshold"] is None
                         else f"{row['threshold']:.3f} ({100 * row['drop']:.0f} pt)")
            lines.append(
                f"| {task} | {row['model']} | {threshold} | {100 * row['accuracy']:.1f} | "
                f"{100 * row['accuracy'] / teacher['accuracy']:.1f}% | {row['parameters'] / 1e6:.1f} M "
                f"({row['parameters'] / teacher['parameters']:.2f}) | {row['mean_exit']:.2f} | "
                f"{row['flops']:.3f} (1/{1 / row['flops']:.1f}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--report", action="store_true", help="only print the table of finished runs")
    parser.add_argument("--ship", action="store_true",
                        help=f"copy the mr quarter model (fp16, with plugins) into {SHIPPED_SLENDER}")
    args = parser.parse_args()
    torch.manual_seed(0)
    if not args.report:
        for task in args.tasks:
            train(task)
            measure(task)
            print(table([task]), flush=True)
    if args.ship:  # the fp16 quarter model, its calibrated thresholds and its plugins, as measured
        shutil.rmtree(SHIPPED_SLENDER, ignore_errors=True)
        shutil.copytree(RUNS / "mr" / COMBINED["mr"], SHIPPED_SLENDER)
        for plugin_dir in sorted((SHIPPED_SLENDER / "plugins").glob("k*")):
            metrics = (plugin_dir / "metrics.json").read_bytes()
            PluginSet.load(plugin_dir).save(plugin_dir)  # in the current format, same weights
            (plugin_dir / "metrics.json").write_bytes(metrics)
    print(table(args.tasks))


if __name__ == "__main__":
    main()
