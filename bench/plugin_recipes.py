"""Plugin recipes side by side on one teacher and one ratio: accuracy and wall time of each.

    python bench/plugin_recipes.py                       # mr's shipped teacher, k = 4, all 8,454 texts
    python bench/plugin_recipes.py --task trec6 --teacher runs/full/trec6/teacher --ratio 8
    python bench/plugin_recipes.py --only layerwise3 layerwise6      # some of the recipes

- end to end: the old recipe, one epoch of every layer's MSE + the task loss, the teacher's states
  recomputed at every step;
- layer by layer, then one end-to-end epoch against the cached teacher (scripts/train_all.py's recipe:
  3 layer-wise epochs; also with 6);
- the same with the uncompressed model's predictions distilled (KL at T = 2) in the end-to-end epoch,
  beside the task loss or instead of it;
- the same, starting from plugins pre-trained on the union of the benchmarks' unlabelled training
  text (hidden-state MSE only, layer by layer, at 128 tokens; the pre-training's own time is shown
  apart, as it is paid once per backbone for every task).
Dev accuracy picks each recipe's best epoch, as in training; test accuracy is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from dataclasses import replace
from pathlib import Path

from edge_variator.data import general_corpus, load_benchmark
from edge_variator.defaults import SHIPPED_ADAPTER
from edge_variator.encoder import default_model_dir
from edge_variator.evaluation import evaluate_ratios
from edge_variator.files import write_json
from edge_variator.train import PluginTrainConfig, train_plugins

RECIPES = ("pretrained", "layerwise3", "layerwise6", "layerwise3-kl", "layerwise3-kl-only",
           "layerwise3-kl-only-3", "end-to-end")


def run(task: str, teacher: Path, ratio: int, texts: int | None, pretrain_texts: int, max_length: int,
        work: Path, only: tuple[str, ...] = RECIPES) -> list[dict]:
    data = load_benchmark(task)
    if texts:
        data = replace(data, train=random.Random(0).sample(data.train, min(texts, len(data.train))))
    base = PluginTrainConfig(max_length=max_length)  # each recipe builds its own teacher cache
    layerwise = replace(base, epochs=1, layerwise_epochs=3)
    corpus = general_corpus()
    corpus = replace(corpus, train=corpus.train[:pretrain_texts], dev=corpus.dev[:500])
    pretrained = work / "pretrained" / f"k{ratio}"

    def pretrain() -> dict:
        config = PluginTrainConfig(max_length=128, epochs=0, layerwise_epochs=2, ce_weight=0.0)
        train_plugins(default_model_dir(), corpus, pretrained, ratio, config, progress=False)
        return {"recipe": f"pre-training on {len(corpus.train):,} unlabelled texts (once per backbone)"}

    def recipe(name: str, config: PluginTrainConfig):
        def train() -> dict:
            out = work / name.replace(" ", "_").replace(",", "")
            metrics = train_plugins(teacher, data, out / f"k{ratio}", ratio, config, progress=False)
            scores = evaluate_ratios(teacher, out, data, "test", [ratio], max_length)
            best = max(metrics["history"], key=lambda h: h["dev_accuracy"])
            return {"recipe": name, "dev": best["dev_accuracy"], "test": scores[1]["accuracy"],
                    "test_k1": scores[0]["accuracy"],
                    "dev_per_epoch": [h["dev_accuracy"] for h in metrics["history"]]}
        return name, train

    stages = {"pretrained": [("pretraining", pretrain),
                             recipe("pre-trained, then layer by layer x3 + 1 end-to-end epoch",
                                    replace(layerwise, init_from=str(pretrained)))],
              "layerwise3": [recipe("layer by layer x3 + 1 end-to-end epoch", layerwise)],
              "layerwise6": [recipe("layer by layer x6 + 1 end-to-end epoch",
                                    replace(layerwise, layerwise_epochs=6))],
              "layerwise3-kl": [recipe("layer by layer x3 + 1 end-to-end epoch with KL to the teacher",
                                       replace(layerwise, kl_weight=1.0))],
              "layerwise3-kl-only": [recipe("layer by layer x3 + 1 end-to-end epoch, KL instead of labels",
                                            replace(layerwise, kl_weight=1.0, ce_weight=0.0))],
              "layerwise3-kl-only-3": [recipe("layer by layer x3 + 3 end-to-end epochs, KL instead of labels",
                                              replace(layerwise, epochs=3, kl_weight=1.0, ce_weight=0.0))],
              "end-to-end": [recipe("end to end, 1 epoch (old)",
                                    replace(base, epochs=1, cache_teacher=False))]}
    stages = [stage for key in only for stage in stages[key]]
    rows = []
    for name, stage in stages:
        done = work / "rows" / f"{name.replace(' ', '_').replace(',', '')}.json"
        if not done.is_file():  # a finished stage is kept; a stopped one resumes from its checkpoint
            marker = work / "started" / done.name
            resumed = marker.is_file()  # then its seconds cover this run only
            write_json(marker, {})
            started = time.perf_counter()
            row = stage()
            row.update(seconds=round(time.perf_counter() - started, 1), resumed=resumed)
            write_json(done, row)
        rows.append(json.loads(done.read_text()))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--task", default="mr")
    parser.add_argument("--teacher", type=Path, default=SHIPPED_ADAPTER)
    parser.add_argument("--ratio", type=int, default=4)
    parser.add_argument("--texts", type=int, default=None, help="a seeded subset of the training split")
    parser.add_argument("--pretrain-texts", type=int, default=16000)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--only", nargs="+", choices=RECIPES, default=list(RECIPES), help="these recipes")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    parser.add_argument("--work", type=Path, default=None,
                        help="where the recipes train (default: runs/plugin_recipes/<task>-k<ratio>); "
                        "rerunning the same command continues there, and it is removed at the end")
    args = parser.parse_args()
    work = args.work or Path("runs/plugin_recipes") / f"{args.task}-k{args.ratio}"
    rows = run(args.task, args.teacher, args.ratio, args.texts, args.pretrain_texts, args.max_length, work,
               tuple(args.only))
    print("| recipe | wall time | dev | test | test at k=1 |\n|---|---|---|---|---|")
    for row in rows:
        if "dev" in row:
            print(f"| {row['recipe']} | {row['seconds']:.0f} s{' (resumed)' * row['resumed']} | "
                  f"{100 * row['dev']:.2f} | "
                  f"{100 * row['test']:.2f} | {100 * row['test_k1']:.2f} |")
        else:
            print(f"| {row['recipe']} | {row['seconds']:.0f} s{' (resumed)' * row['resumed']} | | | |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
