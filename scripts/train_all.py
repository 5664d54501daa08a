"""Train every stage of every set on its full training split, score it, and write the shipped folders.

    python scripts/train_all.py                         # all five sets, on the CPU
    python scripts/train_all.py --tasks r8 --ship       # one set, then copy it into models/r8/
    python scripts/train_all.py --device cuda           # the same recipe on a lent GPU
    python scripts/train_all.py --report                # the per-stage wall times of finished runs
    python scripts/train_all.py --recalibrate           # only the exit thresholds of finished sets, again
    python scripts/train_all.py --tasks 20ng --ship-unfinished  # a stopped LoRA teacher, to commit
    python scripts/train_all.py --tasks 20ng --refine-shipped   # refine a set shipped before that stage
    python scripts/train_all.py --tasks 20ng --slender-again    # the assistant on: today's recipe, again

Per set (runs/full/<task>/):
  teacher           LoRA fine-tune of all-MiniLM-L6-v2 (mr: the shipped adapter, as today)
  teacher/plugins   k = 2, 4, 8 on the frozen teacher: layer-wise fit, then one end-to-end epoch,
                    against the teacher's hidden states cached once for all three ratios
  assistant         the multi-exit teacher assistant (full width), from the teacher's cached logits
                    (20ng: its last exit starts as the teacher's own head, pooler and classifier)
  quarter           the COST-EFF slender model (3 of 12 heads, 384 of 1536 neurons, embedding
                    rank 64), fp16, with its own k = 2, 4, 8 plugins, calibrated on dev
  refined           (20ng) the quarter's exits distilled once more from the teacher's logits, where
                    the assistant fell short of the teacher; what the plugins and the report then use
  measured.json     test accuracy of every model and ratio, the calibrated exits, per-stage seconds
Every stage checkpoints every few minutes; rerunning the same command continues where it stopped,
and a finished stage is skipped. `--ship` copies what the report needs into models/<task>/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save

from edge_variator.data import load_benchmark
from edge_variator.defaults import SHIPPED_ADAPTER
from edge_variator.evaluation import calibrate_checkpoint, evaluate_ratios
from edge_variator.exits import load_multi_exit, to_fp16
from edge_variator.files import write_bytes, write_json
from edge_variator.plugins import RATIOS, PluginSet
from edge_variator.task import checkpoint_sha256
from edge_variator.train import (
    ExitTrainConfig,
    FinetuneConfig,
    PluginTrainConfig,
    RefineConfig,
    SlenderConfig,
    evaluate_exits,
    finetune,
    refine_exits,
    train_multi_exit,
    train_plugins,
    train_slender,
)

RUNS = Path("runs/full")
SHIPPED = Path("models")
DROPS = (0.01, 0.02)


@dataclass(frozen=True)
class Recipe:
    max_length: int
    teacher_epochs: int  # 0: the shipped teacher (mr)
    assistant_epochs: int
    slender_epochs: int  # prediction distillation, after `repr_epochs` of hidden-state distillation
    repr_epochs: int = 2
    layerwise_epochs: int = 3  # plugins: per layer, before the end-to-end epochs
    plugin_epochs: int = 1  # plugins: end-to-end epochs after the layer-wise fit
    plugin_kl: bool = False  # plugins: distil the teacher's predictions (KL) instead of the labels
    teacher_pooling: str = "cls"  # the shipped teachers were trained on BERT's pooler, before "mean" existed
    refine_epochs: int = 0  # the quarter's exits from the teacher's logits after it (0: no refine stage)
    between_epochs: int = 0  # the quarter: hidden-state distillation at each width before the last
    assistant_last_exit: str = "fresh"  # "teacher": the assistant's last exit starts as the teacher's head
    assistant_warm_exits: int = 0  # epochs the assistant's fresh exits first train alone, on the teacher
    assistant_early_exit_gradient: float = 1.0  # the share of its early exits' gradients the encoder gets


RECIPES = {
    # mr's k=4 teacher plugins (bench/plugin_recipes.py): the label loss lost 3.79 test points, KL
    # instead of it 3.03 after one end-to-end epoch and 2.46 after three, dev still rising
    "mr": Recipe(128, 0, 2, 6, plugin_epochs=5, plugin_kl=True),
    # trec6's quarter: 1 + 3 epochs gave 89.78% test at the last exit, 2 + 6 90.71% (dev still rising);
    # 3 + 10 reach 92.9% dev at its last exit (the teacher: 94.8). Refining it from the teacher for 3
    # epochs lifted exit 1 (79.4 -> 83.3% dev) but lowered the last (92.2), at 5e-5 as at 1e-4, and left
    # the mean over exits where it was (89.0): no refine. One epoch of hidden-state distillation at each
    # intermediate prune width (between_epochs=1) left the last exit at 92.9% dev and 91.45% test, as
    # without, and the mean over exits at 88.8% dev: not kept. 3 + 15 epochs: the last exit 92.75% dev
    # (one text under 10 epochs' 92.94, what chose 10), the mean over exits 89.2 (89.0): not kept
    "trec6": Recipe(128, 3, 2, 10, repr_epochs=3),
    "sms_spam": Recipe(128, 2, 1, 2, repr_epochs=1),
    "r8": Recipe(256, 5, 2, 6),
    # 20ng's assistant with fresh exits reached 87.1% dev at its last exit against the teacher's 90.7,
    # and capped the quarter (80.85% test against 84.80). Its last exit now starts as the teacher's own
    # head (pooler + classifier): 89.4% dev and 82.97% test at the last exit (fresh: 87.1 / 80.89), the
    # early exits as before. On 2,000 documents for one epoch (bench/assistant_head.py), the last exit
    # fell from the teacher's 90.8% dev to 88.5 and stayed at 90.9 with the early exits' gradients kept
    # out of the encoder: they are what pulls it down. Fresh exits first fitted alone for 5 epochs on
    # the frozen teacher, and a quarter of the early exits' gradients: the last exit 89.8% dev, the early
    # ones within 1.2 points of the whole gradient's (50-73%)
    "20ng": Recipe(256, 4, 2, 6, refine_epochs=3, assistant_last_exit="teacher", assistant_warm_exits=5,
                   assistant_early_exit_gradient=0.25),
}
QUARTER = {"heads": 3, "neurons": 384, "embedding_rank": 64}


class Costs:
    """costs.json: wall seconds per stage, over every run of it. A stopped run counts too: its time
    so far is written every minute and when it stops under "unfinished", and added to by the run that
    resumes it."""

    tick_seconds = 60.0

    def __init__(self, path: Path):
        self.path = path
        self.seconds = json.loads(path.read_text()) if path.is_file() else {}

    def save(self) -> None:
        write_json(self.path, self.seconds)

    def timed(self, name: str, done: Path, run) -> None:
        """Run a stage unless `done` exists, adding its wall time under `name`."""
        if done.is_file():
            return
        unfinished = self.seconds.setdefault("unfinished", {})
        before, started, stop = unfinished.get(name, 0.0), time.perf_counter(), threading.Event()

        def elapsed() -> float:
            return round(before + time.perf_counter() - started, 1)

        def tick() -> None:
            while not stop.wait(self.tick_seconds):
                unfinished[name] = elapsed()
                self.save()

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            run()
        except BaseException:  # stopped (Ctrl-C, an error): keep its time up to now, not to the last tick
            unfinished[name] = elapsed()
            raise
        finally:
            stop.set()
            ticker.join()
            self.save()
        unfinished.pop(name, None)
        if not unfinished:
            del self.seconds["unfinished"]
        self.seconds[name] = elapsed()
        self.save()


def teacher_dir(task: str) -> Path:
    return SHIPPED_ADAPTER if RECIPES[task].teacher_epochs == 0 else RUNS / task / "teacher"


def slender_dir(task: str) -> Path:
    """The slender model that gets plugins, is measured and ships: the refined quarter where the
    recipe refines it and dev's accuracy averaged over its exits rose (what every exit stage picks
    its best epoch by: early exit runs on all of them), else the quarter."""
    refined = RUNS / task / "refined" / "metrics.json"
    if RECIPES[task].refine_epochs and refined.is_file():
        metrics = json.loads(refined.read_text())
        after, before = metrics["dev_exit_accuracy"], metrics["dev_exit_accuracy_before"]
        if sum(after) / len(after) > sum(before) / len(before):
            return refined.parent
    return RUNS / task / "quarter"


def train_plugin_sets(checkpoint: Path, plugins_dir: Path, data, recipe: Recipe, device: str,
                      max_train: int | None, costs: Costs, name: str) -> None:
    """k = 2, 4, 8 on the frozen `checkpoint`, against its hidden states cached once for all three."""
    cache = plugins_dir.with_name(plugins_dir.name + ".states")
    for ratio in RATIOS:
        out = plugins_dir / f"k{ratio}"
        config = PluginTrainConfig(epochs=recipe.plugin_epochs, layerwise_epochs=recipe.layerwise_epochs,
                                   max_length=recipe.max_length, device=device, cache_dir=str(cache),
                                   max_train=max_train, kl_weight=float(recipe.plugin_kl),
                                   ce_weight=float(not recipe.plugin_kl))
        costs.timed(f"{name} plugins k={ratio}", out / "metrics.json",
                    lambda out=out, config=config, ratio=ratio: train_plugins(checkpoint, data, out, ratio,
                                                                              config))
    shutil.rmtree(cache, ignore_errors=True)


def adapter_to_fp16(teacher: Path) -> None:
    """Re-save a LoRA adapter in fp16 (the file ships), once, before any plugin is bound to its hash."""
    adapter = load_file(teacher / "adapter.safetensors")
    if any(tensor.dtype == torch.float32 for tensor in adapter.values()):
        buffer = save({name: tensor.half() for name, tensor in adapter.items()})
        write_bytes(teacher / "adapter.safetensors", buffer)


STAGES = ("teacher", "teacher-plugins", "assistant", "quarter", "refine", "quarter-plugins", "measure")


def train(task: str, device: str, max_train: int | None = None, stop_after: str = "measure") -> None:
    """Every stage of `task` up to and including `stop_after` (the rest is left for a later run)."""
    recipe = RECIPES[task]
    data = load_benchmark(task)
    root = RUNS / task
    restore_unfinished(task)
    costs = Costs(root / "costs.json")
    restore_shipped_teacher(task)
    if recipe.teacher_epochs:
        config = FinetuneConfig(method="lora", epochs=recipe.teacher_epochs, max_length=recipe.max_length,
                                pooling=recipe.teacher_pooling, device=device, max_train=max_train)
        costs.timed("teacher", root / "teacher" / "metrics.json",
                    lambda: finetune(data, root / "teacher", config))
        metrics = json.loads((root / "teacher" / "metrics.json").read_text())
        costs.seconds.setdefault("teacher", metrics["train_seconds"])  # trained by an earlier command
        adapter_to_fp16(root / "teacher")
        costs.save()
    if stop_after == "teacher":
        return
    teacher = teacher_dir(task)
    # the teacher's plugins live in runs/, beside it (mr's teacher is the shipped adapter)
    train_plugin_sets(teacher, root / "teacher" / "plugins", data, recipe, device, max_train, costs,
                      "teacher")
    if stop_after == "teacher-plugins":
        return
    slender_stages(task, data, device, max_train, costs, stop_after, lambda: teacher_scores(task, data))


def slender_stages(task: str, data, device: str, max_train: int | None, costs: Costs, stop_after: str,
                   teacher: Callable[[], list[dict]]) -> None:
    """The stages from the assistant on, up to and including `stop_after`; `teacher` gives the
    teacher's test scores at every ratio for measured.json, when the measure stage runs."""
    recipe, root = RECIPES[task], RUNS / task
    config = ExitTrainConfig(epochs=recipe.assistant_epochs, max_length=recipe.max_length, device=device,
                             max_train=max_train, last_exit=recipe.assistant_last_exit,
                             warm_exits_epochs=recipe.assistant_warm_exits,
                             early_exit_gradient=recipe.assistant_early_exit_gradient)
    costs.timed("assistant", root / "assistant" / "metrics.json",
                lambda: train_multi_exit(teacher_dir(task), data, root / "assistant", config))
    if stop_after == "assistant":
        return
    if (root / "quarter" / "exits.json").is_file():  # a quarter pruned from an assistant trained before
        source = json.loads((root / "quarter" / "exits.json").read_text())["distilled_from_sha256"]
        if source != checkpoint_sha256(root / "assistant"):
            raise SystemExit(f"{root / 'quarter'} was distilled from another assistant than "
                             f"{root / 'assistant'}: move it aside to train it again")
    config = SlenderConfig(epochs=recipe.slender_epochs, repr_epochs=recipe.repr_epochs,
                           between_epochs=recipe.between_epochs, max_length=recipe.max_length, device=device,
                           max_train=max_train, **QUARTER)
    costs.timed("quarter", root / "quarter" / "metrics.json",
                lambda: train_slender(root / "assistant", data, root / "quarter", config))
    to_fp16(root / "quarter")
    if stop_after == "quarter":
        return
    refine_and_plugins(task, data, device, max_train, costs, stop_after)
    if stop_after not in ("refine", "quarter-plugins"):
        costs.timed("measure", root / "measured.json",
                    lambda: write_json(root / "measured.json", measure(task, teacher())))


def refine_and_plugins(task: str, data, device: str, max_train: int | None, costs: Costs,
                       stop_after: str = "measure") -> None:
    """The stages after the quarter: its refinement from the teacher (where the recipe has one),
    then the k = 2, 4, 8 plugins of the slender model that ships."""
    recipe, root = RECIPES[task], RUNS / task
    if recipe.refine_epochs:
        config = RefineConfig(epochs=recipe.refine_epochs, max_length=recipe.max_length, device=device,
                              max_train=max_train)
        costs.timed("refine", root / "refined" / "metrics.json",
                    lambda: refine_exits(root / "quarter", teacher_dir(task), data, root / "refined", config))
        to_fp16(root / "refined")
    if stop_after == "refine":
        return
    slender = slender_dir(task)
    train_plugin_sets(slender, slender / "plugins", data, recipe, device, max_train, costs, "quarter")


def refine_shipped(task: str, device: str) -> None:
    """A set shipped before its recipe had a refine stage: its shipped quarter refined from its shipped
    teacher, new plugins on it, the slender model measured again and the set shipped again. The
    teacher, its plugins and the assistant are not trained again: their scores stay in measured.json."""
    root, shipped = RUNS / task, SHIPPED / task
    if not RECIPES[task].refine_epochs:
        raise SystemExit(f"{task}: its recipe has no refine stage")
    if json.loads((shipped / "quarter" / "exits.json").read_text())["distilled_from"].endswith("teacher"):
        raise SystemExit(f"{task}: models/{task}/quarter is refined already")
    if not (root / "quarter" / "metrics.json").is_file():
        shutil.copytree(shipped / "quarter", root / "quarter")  # with its plugins, should refining not pay
        shutil.copytree(shipped / "teacher", root / "teacher", dirs_exist_ok=True)
        shutil.copy(shipped / "costs.json", root / "costs.json")
        shutil.copy(shipped / "measured.json", root / "measured.json")
    data, costs = load_benchmark(task), Costs(root / "costs.json")
    refine_and_plugins(task, data, device, None, costs)
    scores = root / "refined.measured.json"
    costs.timed("measure refined", scores, lambda: write_json(scores, measure_slender(task, data)))
    measured = json.loads((root / "measured.json").read_text())
    write_json(root / "measured.json", {**measured, **json.loads(scores.read_text())})
    ship(task)


def slender_again(task: str, device: str, stop_after: str) -> None:
    """A shipped set's assistant, quarter, refinement and quarter plugins trained again with today's
    recipe (after it changed for them), measured and, once measured, shipped. The teacher and its
    plugins are not trained again: the teacher comes from models/<task>/, its test scores and its
    stages' wall times from the shipped measured.json and costs.json."""
    root, shipped = RUNS / task, SHIPPED / task
    measured = json.loads((shipped / "measured.json").read_text())
    if not (root / "costs.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        costs = json.loads((shipped / "costs.json").read_text())
        teacher_stages = {stage: t for stage, t in costs.items() if stage.startswith("teacher")}
        write_json(root / "costs.json", teacher_stages)
    restore_shipped_teacher(task)
    data, costs = load_benchmark(task), Costs(root / "costs.json")
    slender_stages(task, data, device, None, costs, stop_after, lambda: measured["teacher"])
    if stop_after == "measure":
        ship(task)


def measure(task: str, teacher: list[dict]) -> dict:
    """`teacher`'s scores (teacher_scores) with the test accuracy of every exit of the assistant and
    the quarter model, and the quarter model's calibrated early exit at every ratio (thresholds from dev)."""
    data, root = load_benchmark(task), RUNS / task
    assistant = load_multi_exit(root / "assistant")
    return {"task": task, "test_examples": len(data.test), "teacher": teacher,
            "assistant_test_exit_accuracy": evaluate_exits(assistant[0], assistant[1], data.test),
            **measure_slender(task, data)}


def measure_slender(task: str, data) -> dict:
    """Test accuracy of every exit of the shipped slender model (and, where it was refined, of the
    quarter before), and its calibrated early exit at every ratio."""
    def test_exits(folder: Path) -> list[float]:
        model, tokenizer, _ = load_multi_exit(folder)
        return evaluate_exits(model, tokenizer, data.test)

    root, slender = RUNS / task, slender_dir(task)
    scores = {"quarter_test_exit_accuracy": test_exits(slender)}
    if slender != root / "quarter":
        scores["quarter_before_refining_test_exit_accuracy"] = test_exits(root / "quarter")
    return {**scores, "quarter_calibrated": calibrated_exits(slender, data)}


def calibrated_exits(quarter: Path, data) -> dict:
    """Thresholds per drop at every ratio, from dev, scored on dev and test; ratio 1's go into
    the model's exits.json."""
    return {str(ratio): calibrate_checkpoint(quarter, data, list(DROPS), ratio,
                                             quarter / "plugins")["thresholds"] for ratio in (1, *RATIOS)}


def teacher_scores(task: str, data) -> list[dict]:
    """Test accuracy of the teacher at k = 1 and with each of its plugin sets in runs/."""
    return evaluate_ratios(teacher_dir(task), RUNS / task / "teacher" / "plugins", data, "test",
                           list(RATIOS), RECIPES[task].max_length)


def remeasure_teacher(task: str) -> dict:
    """Score the teacher's plugin sets in runs/ on test again (after they were retrained with another
    recipe) into measured.json, shipped and in runs/, without touching the rest."""
    plugins = RUNS / task / "teacher" / "plugins"
    unfinished = [f"k{ratio}" for ratio in RATIOS if not (plugins / f"k{ratio}" / "metrics.json").is_file()]
    if unfinished:
        raise SystemExit(f"{task}: the teacher's plugin sets {', '.join(unfinished)} are not finished "
                         f"in {plugins}")
    scores = teacher_scores(task, load_benchmark(task))
    for folder in (SHIPPED / task, RUNS / task):
        if (folder / "measured.json").is_file():
            measured = json.loads((folder / "measured.json").read_text())
            measured["teacher"] = scores
            write_json(folder / "measured.json", measured)
    return scores


def recalibrate(task: str) -> None:
    """Calibrate the finished quarter model again, shipped and in runs/, without training (after the
    calibration rule changed): its thresholds and measured.json's quarter_calibrated."""
    data = load_benchmark(task)
    for folder, slender in ((SHIPPED / task, SHIPPED / task / "quarter"), (RUNS / task, slender_dir(task))):
        if (folder / "measured.json").is_file():
            measured = json.loads((folder / "measured.json").read_text())
            measured["quarter_calibrated"] = calibrated_exits(slender, data)
            write_json(folder / "measured.json", measured)


UNFINISHED = "unfinished"  # models/<task>/unfinished/: stopped stages' checkpoints, for the next machine
COMMITTABLE_BYTES = 16 * 2**20  # a LoRA teacher's checkpoint and best adapter: ~7 MB; an assistant's: ~300


def ship_unfinished(task: str) -> list[str]:
    """models/<task>/unfinished/: each stopped stage's checkpoint (`<stage>.resume/`) with the folder it
    writes (its best epoch so far), each finished stage but the teacher, and costs.json, where they are
    small enough to commit, so that a session ending midway through a recipe that outlasts it loses
    nothing. Returns what it copied."""
    root, out = RUNS / task, SHIPPED / task / UNFINISHED
    shutil.rmtree(out, ignore_errors=True)
    shipped = []
    # the stopped stages, and the finished ones the shipped teacher/ lacks (its plugin sets: an hour
    # each on 20ng), which a fresh machine would otherwise train again
    resumes = {resume.with_name(resume.name.removesuffix(".resume")): resume
               for resume in root.rglob("*.resume")}
    finished = {metrics.parent: None for metrics in root.rglob("metrics.json")
                if metrics.parent != root / "teacher" and metrics.parent not in resumes}
    for stage, resume in sorted({**resumes, **finished}.items()):
        files = [*(f for f in (resume.rglob("*") if resume else []) if f.is_file()),
                 *(f for f in (stage.glob("*") if stage.is_dir() else []) if f.is_file())]
        if sum(f.stat().st_size for f in files) > COMMITTABLE_BYTES:
            continue  # stays in runs/: a session that ends first starts this stage over
        for file in files:
            target = out / file.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(file, target)
        shipped.append(str(stage.relative_to(root)))
    if shipped:
        shutil.copy(root / "costs.json", out / "costs.json")
    return shipped


def restore_unfinished(task: str) -> None:
    """On a machine without runs/<task>/: continue the stages a `--ship-unfinished` left in models/."""
    source, root = SHIPPED / task / UNFINISHED, RUNS / task
    if source.is_dir() and not root.exists():
        shutil.copytree(source, root)


def restore_shipped_teacher(task: str) -> None:
    """models/<task>/teacher/ into runs/, where runs/ lacks a finished one: a fresh machine continues."""
    shipped, root = SHIPPED / task / "teacher", RUNS / task / "teacher"
    if (shipped / "metrics.json").is_file() and not (root / "metrics.json").is_file():
        shutil.copytree(shipped, root, dirs_exist_ok=True)


def ship_teacher(task: str) -> None:
    """models/<task>/teacher/ alone, as soon as it exists: the first hour of a long set's recipe,
    kept for the next machine when the rest is not finished yet."""
    if RECIPES[task].teacher_epochs:
        shutil.rmtree(SHIPPED / task / "teacher", ignore_errors=True)
        shutil.rmtree(SHIPPED / task / UNFINISHED / "teacher", ignore_errors=True)
        shutil.rmtree(SHIPPED / task / UNFINISHED / "teacher.resume", ignore_errors=True)
        shutil.copytree(RUNS / task / "teacher", SHIPPED / task / "teacher",
                        ignore=shutil.ignore_patterns("plugins", "*.resume"))


def ship(task: str) -> None:
    """models/<task>/: the teacher's LoRA adapter, the fp16 quarter model with its thresholds and its
    fp16 plugins, as safetensors + JSON, within 15 MB. The teacher's own plugin sets (3 MB more) stay
    in runs/: measured.json holds their test scores."""
    root, out = RUNS / task, SHIPPED / task
    shutil.rmtree(out, ignore_errors=True)
    ship_teacher(task)
    slender = slender_dir(task)
    shutil.copytree(slender, out / "quarter", ignore=shutil.ignore_patterns("plugins"))
    for ratio in RATIOS:
        source, target = slender / "plugins" / f"k{ratio}", out / "quarter" / "plugins" / f"k{ratio}"
        metrics = (source / "metrics.json").read_bytes()
        PluginSet.load(source).save(target, dtype=torch.float16)
        (target / "metrics.json").write_bytes(metrics)
    shutil.copy(root / "measured.json", out / "measured.json")
    shutil.copy(root / "costs.json", out / "costs.json")


def report(tasks: list[str]) -> str:
    """Each finished stage's wall time, and per 1,000 training texts (the whole stage, all its epochs)."""
    lines = ["| set | training texts | stage | wall time | s per 1,000 texts |", "|---|---|---|---|---|"]
    for task in tasks:
        path = RUNS / task / "costs.json"
        if path.is_file():
            costs, texts = json.loads(path.read_text()), len(load_benchmark(task).train)
            unfinished = costs.pop("unfinished", {})
            lines += [f"| {task} | {texts:,} | {stage} | {seconds / 60:.1f} min | "
                      f"{1000 * seconds / texts:.0f} |" for stage, seconds in costs.items()]
            lines += [f"| {task} | {texts:,} | {stage} (unfinished) | {seconds / 60:.1f} min so far | |"
                      for stage, seconds in unfinished.items()]
            lines.append(f"| {task} | {texts:,} | **all** | **{sum(costs.values()) / 60:.1f} min**"
                         f"{' + unfinished' if unfinished else ''} | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--ship", action="store_true",
                        help="copy each finished set into models/<task>/ (with --stop-after: its teacher)")
    parser.add_argument("--ship-unfinished", action="store_true",
                        help="only copy the stopped stages' checkpoints that are small enough to commit into "
                             "models/<task>/unfinished/ (beside a running training, before a session ends); "
                             "a machine without runs/ continues them")
    parser.add_argument("--report", action="store_true", help="only print the wall times of finished stages")
    parser.add_argument("--recalibrate", action="store_true",
                        help="only calibrate each finished quarter model's exits again (models/ and runs/)")
    parser.add_argument("--remeasure-teacher", action="store_true",
                        help="only score the teacher's plugin sets in runs/ on test again, into "
                             "measured.json (after --stop-after teacher-plugins retrained them)")
    parser.add_argument("--refine-shipped", action="store_true",
                        help="only refine the shipped quarter of a set whose recipe gained a refine stage "
                             "after it shipped (from its shipped teacher), train its plugins again, measure "
                             "it and ship it")
    parser.add_argument("--slender-again", action="store_true",
                        help="only train a shipped set's assistant and everything after it again with "
                             "today's recipe, from its shipped teacher (whose plugins keep their shipped "
                             "scores), measure it and ship it; with --stop-after, stop after that stage")
    parser.add_argument("--stop-after", choices=STAGES, default="measure",
                        help="train up to this stage only; a later run continues from there")
    parser.add_argument("--max-train", type=int, help="a seeded subset of each training split (a smoke run)")
    parser.add_argument("--runs", type=Path, default=Path("runs/full"), help="where the runs go")
    args = parser.parse_args()
    global RUNS
    RUNS = args.runs
    if args.recalibrate:
        for task in args.tasks:
            recalibrate(task)
    elif args.remeasure_teacher:
        for task in args.tasks:
            print(task, json.dumps(remeasure_teacher(task)))
    elif args.refine_shipped:
        for task in args.tasks:
            refine_shipped(task, args.device)
    elif args.slender_again:
        for task in args.tasks:
            slender_again(task, args.device, args.stop_after)
    elif args.ship_unfinished:
        for task in args.tasks:
            print(f"{task}: {', '.join(ship_unfinished(task)) or 'no stopped stage small enough to commit'}")
    elif not args.report:
        for task in args.tasks:
            train(task, args.device, args.max_train, args.stop_after)
            if args.ship and args.stop_after == "measure":
                ship(task)
            elif args.ship:
                ship_teacher(task)
    print(report(args.tasks))


if __name__ == "__main__":
    main()
