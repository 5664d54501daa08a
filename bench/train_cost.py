"""What each training stage costs, in seconds per 1,000 training texts, with and without its levers.

    python bench/train_cost.py --task mr --texts 400      # ~10 min on 2 cores
    python bench/train_cost.py --task r8 --texts 200      # at r8's 256 tokens

One epoch of each stage on the same seeded sample of training texts, at the set's recipe length
(scripts/train_all.py), one after another in this one run, so the before/after pairs share the
machine's state; dev and test are cut to 32 texts so the figures are training, not evaluation:
- teacher: LoRA fine-tuning;
- plugins end to end, the teacher's states recomputed at every step (the old recipe) and read from
  the cache (the cache's one forward pass over the texts shown apart: three ratios share it);
- plugins layer by layer (one epoch of every layer's FFN sub-block, and the forward passes that
  carry the compressed model's states from layer to layer);
- the multi-exit assistant, and the slender model's two distillation stages (pruning included);
- a torch thread count of 1 against the default, and torch.compile, on the teacher stage.
Prints a table and writes it as JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from train_all import QUARTER, RECIPES, teacher_dir  # noqa: E402

from edge_variator.data import load_benchmark  # noqa: E402
from edge_variator.train import (  # noqa: E402
    ExitTrainConfig,
    FinetuneConfig,
    PluginTrainConfig,
    SlenderConfig,
    finetune,
    train_multi_exit,
    train_plugins,
    train_slender,
)


def per_thousand(seconds: float, texts: int) -> float:
    return round(1000 * seconds / texts, 1)


def run(task: str, texts: int, work: Path) -> list[dict]:
    recipe = RECIPES[task]
    data = load_benchmark(task)
    data = replace(data, train=random.Random(0).sample(data.train, min(texts, len(data.train))),
                   dev=data.dev[:32], test=data.test[:32])
    n, length = len(data.train), recipe.max_length
    rows = []

    def timed(stage: str, lever: str, call) -> dict:
        started = time.perf_counter()
        result = call()
        seconds = time.perf_counter() - started
        rows.append({"stage": stage, "lever": lever, "seconds": round(seconds, 1),
                     "per_1000": per_thousand(seconds, n)})
        print(f"{stage:34} {lever:44} {rows[-1]['per_1000']:8.1f} s / 1,000 texts", flush=True)
        return result

    teacher = work / "teacher"
    config = FinetuneConfig(method="lora", epochs=1, max_length=length)
    timed("teacher (LoRA)", f"{torch.get_num_threads()} threads", lambda: finetune(data, teacher, config,
                                                                                   progress=False))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    timed("teacher (LoRA)", "1 thread", lambda: finetune(data, work / "teacher-1", config, progress=False))
    torch.set_num_threads(threads)
    timed("teacher (LoRA)", "torch.compile (compile time included)",
          lambda: finetune(data, work / "teacher-compiled", replace(config, compile=True), progress=False))
    source = teacher if RECIPES[task].teacher_epochs else teacher_dir(task)

    plain = PluginTrainConfig(epochs=1, max_length=length, cache_teacher=False)
    timed("plugins k=4, end to end", "teacher recomputed every step",
          lambda: train_plugins(source, data, work / "e2e" / "k4", 4, plain, progress=False))
    cached = replace(plain, cache_teacher=True, cache_dir=str(work / "states"))
    metrics = timed("plugins k=4, end to end", "teacher cached (cache built in this run)",
                    lambda: train_plugins(source, data, work / "cached" / "k4", 4, cached, progress=False))
    rows.append({"stage": "plugins: the cache's forward pass", "lever": "once for three ratios",
                 "seconds": metrics["seconds"]["teacher_cache"],
                 "per_1000": per_thousand(metrics["seconds"]["teacher_cache"], n)})
    timed("plugins k=4, end to end", "teacher cached (cache reused)",
          lambda: train_plugins(source, data, work / "reused" / "k4", 4, cached, progress=False))
    layerwise = replace(cached, epochs=0, layerwise_epochs=1)
    timed("plugins k=4, layer by layer", "1 epoch per layer (cache reused)",
          lambda: train_plugins(source, data, work / "layerwise" / "k4", 4, layerwise, progress=False))

    assistant = work / "assistant"
    timed("multi-exit assistant", "teacher logits cached (as before)",
          lambda: train_multi_exit(source, data, assistant, ExitTrainConfig(epochs=1, max_length=length),
                                   progress=False))
    slender = SlenderConfig(epochs=1, max_length=length, **QUARTER)
    timed("quarter: prune + hidden + exits", "1 epoch each",
          lambda: train_slender(assistant, data, work / "quarter", slender, progress=False))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--task", default="mr", choices=list(RECIPES))
    parser.add_argument("--texts", type=int, default=400, help="training texts per stage")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        rows = run(args.task, args.texts, Path(work))
    if args.out:
        args.out.write_text(json.dumps({"task": args.task, "texts": args.texts,
                                        "threads": torch.get_num_threads(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
