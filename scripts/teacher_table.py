"""Fine-tune the all-MiniLM-L6-v2 teachers on every benchmark and print the README's table.

    python scripts/teacher_table.py                      # all tasks, full and LoRA (~1.5 h, 2 cores)
    python scripts/teacher_table.py --tasks mr --methods lora --ship   # the shipped default adapter
    python scripts/teacher_table.py --report             # the table from finished runs only

Each run writes runs/teachers/<task>-<method>/ (checkpoint + metrics.json); the table is made
from those files. The settings below are what fits a 2-core CPU: the long-text sets train on a
seeded 2,000-text subset at 128 tokens, and 20ng is tested on a seeded 2,000 of its 7,521.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from dataclasses import replace
from pathlib import Path

from edge_variator.data import BENCHMARKS, load_benchmark
from edge_variator.defaults import SHIPPED_ADAPTER
from edge_variator.encoder import default_model_dir
from edge_variator.tokenizer import Tokenizer
from edge_variator.train import FinetuneConfig, finetune

RUNS = Path("runs/teachers")

# task -> (epochs, max_length, max_train, max_test)
SETTINGS = {
    "mr": (2, 128, None, None),
    "trec6": (3, 128, None, None),
    "sms_spam": (2, 128, None, None),
    "r8": (2, 128, 2000, None),
    "20ng": (2, 128, 2000, 2000),
}


def token_stats(task: str) -> dict:
    data = load_benchmark(task)
    lengths = Tokenizer(default_model_dir()).length_stats([e.text for e in data.train])
    return {"train": len(data.train), "dev": len(data.dev), "test": len(data.test),
            "labels": len(data.labels), "mean_tokens": lengths["mean"], "p90_tokens": lengths["p90"]}


def run(task: str, method: str) -> dict:
    epochs, max_length, max_train, max_test = SETTINGS[task]
    data = load_benchmark(task)
    if max_test is not None:
        data = replace(data, test=random.Random(0).sample(data.test, max_test))
    config = FinetuneConfig(method=method, epochs=epochs, max_length=max_length,
                            max_train=max_train)
    return finetune(data, RUNS / f"{task}-{method}", config)


def table(tasks: list[str]) -> str:
    rows = ["| task | labels | train / dev / test | tokens mean / p90 | method | trained on | "
            "dev acc | test acc | test macro-F1 | train time |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for task in tasks:
        stats = token_stats(task)
        for method in ("full", "lora"):
            path = RUNS / f"{task}-{method}" / "metrics.json"
            if not path.is_file():
                continue
            m = json.loads(path.read_text())
            c = m["config"]
            rows.append(
                f"| {task} | {stats['labels']} | {stats['train']:,} / {stats['dev']:,} / "
                f"{stats['test']:,} | {stats['mean_tokens']:.0f} / {stats['p90_tokens']} | {method} | "
                f"{m['train_examples']:,} x {c['epochs']} ep @ {c['max_length']} tok | "
                f"{100 * m['dev']['accuracy']:.1f} | {100 * m['test']['accuracy']:.1f} "
                f"({m['test_examples']:,}) | {100 * m['test']['macro_f1']:.1f} | "
                f"{m['train_seconds'] / 60:.1f} min |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(SETTINGS), choices=list(BENCHMARKS))
    parser.add_argument("--methods", nargs="+", default=["lora", "full"], choices=["full", "lora"])
    parser.add_argument("--report", action="store_true", help="only print the table of finished runs")
    parser.add_argument("--ship", action="store_true",
                        help=f"copy the mr LoRA adapter into {SHIPPED_ADAPTER} (the demo's default)")
    args = parser.parse_args()
    if not args.report:
        for task in args.tasks:
            for method in args.methods:
                run(task, method)
                print(table([task]), flush=True)
    if args.ship:
        shutil.copytree(RUNS / "mr-lora", SHIPPED_ADAPTER, dirs_exist_ok=True)
    print(table(args.tasks))


if __name__ == "__main__":
    main()
