"""The mr LoRA teacher with weight decay on every trainable tensor against matrices only (no decay on
biases and LayerNorm gains, nanoGPT's rule), side by side: same data, seed and schedule.

    python bench/lora_decay.py                    # both arms, all 8,454 texts: ~30 min on 2 cores
    python bench/lora_decay.py --max-train 2000   # a quicker look

The shipped default adapter (edge_variator/default/mr_lora) is the first arm's recipe: LoRA rank 8
on all-MiniLM-L6-v2, 2 epochs, 128 tokens, AdamW with weight decay 0.01. Prints dev and test
accuracy of both arms; a difference under a point is within the seed-to-seed spread of this set.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from edge_variator.data import load_benchmark
from edge_variator.train import FinetuneConfig, finetune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--max-train", type=int, help="a seeded subset of the training texts")
    parser.add_argument("--out", help="also write the two arms' metrics to this JSON file")
    args = parser.parse_args()
    data = load_benchmark("mr")
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, decay_all in (("decay on every tensor", True), ("matrices only", False)):
            config = FinetuneConfig(method="lora", epochs=2, max_length=128, max_train=args.max_train,
                                    decay_biases_and_norms=decay_all)
            metrics = finetune(data, Path(scratch) / name.replace(" ", "_"), config)
            rows[name] = {split: metrics[split] for split in ("dev", "test")} | {
                "train_seconds": metrics["train_seconds"]}
    print(f"mr LoRA teacher, {args.max_train or len(data.train):,} training texts, 2 epochs:")
    print("weight decay            dev acc  test acc  test F1   minutes")
    for name, row in rows.items():
        print(f"{name:22} {100 * row['dev']['accuracy']:8.2f} {100 * row['test']['accuracy']:9.2f} "
              f"{100 * row['test']['macro_f1']:8.2f} {row['train_seconds'] / 60:8.1f}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
