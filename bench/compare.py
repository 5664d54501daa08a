"""Our bundles against what an engineer would otherwise ship: the same task model exported without us.

    python bench/compare.py [--lengths 16 64 128 256] [--repeats 20] [--tasks mr trec6 ...] [--quick]

On one machine, in one run, batch 1:
- **latency by length**, interleaved (each round calls every configuration once, in turn), median
  and min-max over the rounds, inputs of every position a real token: the uncompressed mr model
  (the shipped LoRA adapter on all-MiniLM-L6-v2, merged) in PyTorch eager, in ONNX Runtime (CPU;
  `torch.onnx.export(dynamo=True)`) fp32 and dynamically quantized int8, and in the ExecuTorch
  runtime (our export, k = 1, XNNPACK); and our mr bundle (the slender multi-exit model with its
  plugins) fp32 and int8 at k = 1, 2, 4, 8 through every layer. A GEMM of a layer's biggest shape
  (tokens x 384 @ 384 x 1536, torch.matmul) is the roofline, in the same rounds; GFLOP/s use the
  analytic FLOPs of cost.py.
- **accuracy and mean latency per text** on each data set's test split, one text at a time as an
  app runs them: its uncompressed task model in each runtime, and our bundle at every ratio x exit
  threshold through the runner (early exit included). The long-document sets (20ng, r8) run at 256
  tokens; 20ng on a seeded sample of TEST_SAMPLE test documents, the others on their whole test split.

Our models of each data set come from models/<task>/ (scripts/train_all.py --ship), else from the
older training scripts' runs/ (see task_models); a data set whose models are in neither is reported
as not run, with the command that makes them.
Bundles are exported once and cached (defaults.cached_export), about 3 minutes each on 2 cores.
`bench/report.py` turns the result into docs/RESULTS.md and plots.

No thread pool spins here: ONNX Runtime's sessions are made without spinning, and torch's OpenMP
threads sleep as soon as they are idle (OMP_WAIT_POLICY=PASSIVE, set before torch loads libgomp).
Left spinning, the pool that a PyTorch model or any torch op woke takes the cores from the
ExecuTorch call timed next (1.8x slower calls on 2 cores: bench/thread_spin.py); a phone app has
no torch at all.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp (see above)

import argparse
import gc
import json
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from edge_variator import data as datasets
from edge_variator.cost import encoder_flops, linear_flops
from edge_variator.defaults import (
    SHIPPED_ADAPTER,
    bundle_cache,
    cached_export,
    default_bundle,
    default_checkpoint,
)
from edge_variator.exits import is_multi_exit
from edge_variator.export.bundle import load_model as load_for_export
from edge_variator.export.bundle import needs_calibration
from edge_variator.profile import pareto_rows
from edge_variator.runtime.runner import BundleRunner
from edge_variator.task import load_task
from edge_variator.timing import interleaved_ms, spread
from edge_variator.tokenizer import Tokenizer

TEACHER = "uncompressed"
TASKS = ("mr", "trec6", "sms_spam", "20ng", "r8")
LONG_TASKS = {"20ng": 256, "r8": 256}  # max length; the others run at 128
# test documents per set when not all: 20ng's 7,521 at ~15 configurations would take an hour
TEST_SAMPLE = {"20ng": 2000}
SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "models"  # scripts/train_all.py --ship
CALIBRATION_TEXTS = 200  # train texts that calibrate the int8 bundle's activation ranges


@dataclass
class TaskModels:
    """What is compared on one data set."""

    task: str
    uncompressed: Path  # the fine-tuned task model: what an engineer would otherwise ship
    ours: Path  # our model: slender multi-exit, or the task model itself when only plugins were trained
    plugins: Path | None  # its plugin sets (k2/ k4/ k8/)
    max_length: int
    what: str  # how ours was made, for the report
    model_dir: Path  # the folder the report names (docs/results.json's model_dir)


def task_models(task: str, runs: Path, shipped: Path = SHIPPED_MODELS) -> TaskModels | str:
    """The models of `task`, or why there are none (with the command that trains them). The folder
    scripts/train_all.py ships (models/<task>/) comes first, then the older training scripts' runs/."""
    max_length = LONG_TASKS.get(task, 128)
    folder = shipped / task
    if is_multi_exit(folder / "quarter") and (folder / "quarter" / "plugins").is_dir():
        teacher = folder / "teacher" if (folder / "teacher" / "task.json").is_file() else SHIPPED_ADAPTER
        return TaskModels(task, teacher, folder / "quarter", folder / "quarter" / "plugins", max_length,
                          "its slender multi-exit model (1/4 width) with its k = 2, 4, 8 plugins, trained on "
                          f"the full training split by `python scripts/train_all.py --tasks {task} --ship`",
                          folder)
    if task == datasets.DEFAULT_TASK:
        ours, plugins = default_checkpoint()
        return TaskModels(task, SHIPPED_ADAPTER, ours, plugins, max_length,
                          "the shipped slender multi-exit model (1/4 width) with its k = 2, 4, 8 plugins",
                          ours)
    teacher, slender = runs / "teachers" / f"{task}-lora", runs / "slender" / task / "quarter"
    trains = f"`python scripts/train_all.py --tasks {task} --ship` trains it into {folder}"
    if not (teacher / "task.json").is_file():
        return f"no task model: {trains}"
    if is_multi_exit(slender) and (slender / "plugins").is_dir():
        return TaskModels(task, teacher, slender, slender / "plugins", max_length,
                          "its slender multi-exit model (1/4 width) with its k = 2, 4, 8 plugins, from "
                          f"`python scripts/slender_table.py --tasks {task}`", slender)
    if (runs / "plugins" / task).is_dir():
        return TaskModels(task, teacher, teacher, runs / "plugins" / task, max_length,
                          "its task model with k = 2, 4, 8 plugins only: no slender multi-exit model (so no "
                          "early exit) was trained for it", teacher)
    return f"no plugins or slender model: {trains}"


def bundle_of(models: TaskModels, kind: str, max_length: int, quantize: str = "none",
              data: datasets.TaskData | None = None) -> Path:
    """Our ("ours") or the uncompressed ("uncompressed", k = 1 only) export, cached by its export
    inputs (defaults.cached_export)."""
    checkpoint, plugins, ratios = ((models.ours, models.plugins, None) if kind == "ours"
                                   else (models.uncompressed, None, [1]))
    texts = [e.text for e in data.train[:CALIBRATION_TEXTS]] if needs_calibration(quantize) else []
    return cached_export(bundle_cache(), f"{models.task}-{kind}-{checkpoint.name}", checkpoint, plugins,
                         ratios,
                         max_length=max_length, quantize=quantize, calibration_texts=texts)[0]


def onnx_sessions(model: torch.nn.Module, max_length: int, folder: Path) -> dict:
    """ONNX Runtime sessions of the model, fp32 and dynamic int8 (weights int8, activations on the fly)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from torch.export import Dim

    folder.mkdir(parents=True, exist_ok=True)
    fp32, int8 = folder / "model.onnx", folder / "model.int8.onnx"
    ids = torch.full((1, 32), 1000)
    seq = 8 * Dim("blocks", min=2, max=max_length // 8)
    program = torch.onnx.export(model.eval(), (ids, torch.ones_like(ids)), dynamo=True, optimize=True,
                                dynamic_shapes=({1: seq}, {1: seq}), verbose=False)
    program.save(str(fp32))
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return {"onnxruntime fp32": onnx_session(fp32), "onnxruntime int8": onnx_session(int8)}


def onnx_session(path: Path):
    """A CPU session that does not spin: ORT's threads spin after each run by default, which steals
    the cores from whatever is timed next in the interleaved rounds; ExecuTorch's and torch's do not."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def bundle_call(runner: BundleRunner, ratio: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """embed -> every layer at `ratio` -> the last exit: the no-early-exit run of a bundle."""
    layers = runner.manifest["ratios"][str(ratio)]
    last_exit = f"exit_{len(layers) - 1}"

    def call(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = runner.method("embed")([ids])
        for name in layers:
            hidden = runner.method(name)([hidden, mask])
        return runner.method(last_exit)([hidden, mask])

    return call


def onnx_call(session) -> Callable[[torch.Tensor, torch.Tensor], np.ndarray]:
    names = [i.name for i in session.get_inputs()]
    return lambda ids, mask: session.run(None, {names[0]: ids.numpy(), names[1]: mask.numpy()})[0]


def eager_call(model: torch.nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def call(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(ids, mask)

    return call


def gemm_calls(max_length: int, folder: Path) -> dict[str, Callable[[torch.Tensor], object]]:
    """A layer's biggest GEMM (tokens x 384 @ 384 x 1536) in torch (the roofline), in XNNPACK through
    the ExecuTorch runtime and in ONNX Runtime (MLAS): where a runtime is slower on the whole model,
    whether its matmul kernels are."""
    from edge_variator.export.executorch import roofline_gemm, to_pte
    from edge_variator.export.pieces import sequence_dim
    from edge_variator.files import write_bytes
    from edge_variator.runtime.bundle import open_program

    folder.mkdir(parents=True, exist_ok=True)
    linear, program = roofline_gemm(384, 1536, max_length)
    write_bytes(folder / "gemm.pte", to_pte({"forward": program}))
    method = open_program(folder / "gemm.pte").load_method("forward")
    torch.onnx.export(linear, (torch.randn(1, 32, 384),), dynamo=True, verbose=False,
                      dynamic_shapes=({1: sequence_dim(max_length)},)).save(str(folder / "gemm.onnx"))
    session = onnx_session(folder / "gemm.onnx")
    name = session.get_inputs()[0].name
    weight = linear.weight.detach().T.contiguous()
    return {"gemm roofline": lambda x: x[0] @ weight,
            "gemm xnnpack": lambda x: method.execute([x]),
            "gemm onnxruntime": lambda x: session.run(None, {name: x.numpy()})}


def latency_by_length(calls: dict[str, tuple[Callable, int]], lengths: Sequence[int], repeats: int,
                      gemms: dict[str, Callable[[torch.Tensor], object]], warmup: int = 3) -> list[dict]:
    """Median and min-max ms per configuration and length; `calls` maps a name to (call, max length),
    `gemms` a name to a call on a (1, tokens, 384) input."""
    rows = []
    for length in lengths:
        ids, mask = torch.randint(1000, 2000, (1, length)), torch.ones(1, length, dtype=torch.long)
        active = {name: partial(call, ids, mask) for name, (call, limit) in calls.items() if length <= limit}
        hidden = torch.randn(1, length, 384)
        active.update({name: partial(gemm, hidden) for name, gemm in gemms.items()})
        times = interleaved_ms(active, repeats, warmup)
        for name in calls:
            if name not in active:
                rows.append({"config": name, "tokens": length, "median_ms": None,
                             "why": f"exported up to {calls[name][1]} tokens"})
        for name, samples in times.items():
            summary = spread(samples)
            rows.append({"config": name, "tokens": length, "median_ms": summary["median_ms"],
                         "min_ms": summary["min_ms"], "max_ms": summary["max_ms"]})
    return rows


def accuracy_rows(rows_in: Sequence, calls: dict[str, Callable], tokenizer: Tokenizer,
                  ours: dict[str, BundleRunner]) -> list[dict]:
    """Accuracy and mean ms per text (the model call alone, as the runner times its methods) of each
    call, then of each of our bundles (name prefix -> runner) at every ratio x exit threshold."""
    texts, labels = [e.text for e in rows_in], [e.label for e in rows_in]
    rows = []
    for name, call in calls.items():
        correct, elapsed = 0, []
        for text, label in zip(texts, labels, strict=True):
            batch = tokenizer([text])
            began = time.perf_counter()
            logits = call(batch.input_ids, batch.attention_mask)
            elapsed.append(1000 * (time.perf_counter() - began))
            correct += int(np.asarray(logits).argmax()) == label
        rows.append({"config": name, "accuracy": correct / len(texts), "mean_ms": statistics.fmean(elapsed)})
    for prefix, runner in ours.items():
        for row in pareto_rows(runner, texts, labels):
            exit_name = row["threshold_name"]
            suffix = "" if exit_name == "none" else f" exit {exit_name}"
            rows.append({"config": f"{prefix} k={row['ratio']}{suffix}",
                         "accuracy": row["accuracy"], "mean_ms": row["mean_ms"],
                         "mean_exit_layer": row["mean_exit_layer"]})
    return rows


def flops(row: dict, teacher_config, ours_config) -> int | None:
    """Analytic FLOPs of one run of the row's configuration at its length."""
    seq, name = row["tokens"], row["config"]
    if name.startswith("gemm"):
        return linear_flops(seq, 384, 1536)
    if name.startswith("ours"):
        return encoder_flops(ours_config, seq, 2, int(name.split("k=")[1]))["total"]
    return encoder_flops(teacher_config, seq, 2)["total"]


def compare_lengths(models: TaskModels, lengths: Sequence[int], repeats: int, quick: bool,
                    work: Path) -> list[dict]:
    """Latency by length of the mr model in every runtime, ours fp32 and int8 at every ratio."""
    teacher, tokenizer, _ = load_task(models.uncompressed)
    longest = max(lengths)
    sessions = onnx_sessions(teacher, max(longest, tokenizer.max_length), work / "onnx" / models.task)
    calls: dict[str, tuple[Callable, int]] = {"pytorch eager": (eager_call(teacher), 512)}
    calls.update({name: (onnx_call(session), longest) for name, session in sessions.items()})
    if quick:  # the shipped bundle, nothing exported
        bundles = {"ours": default_bundle()[0]}
    else:
        data = datasets.load_benchmark(models.task)
        exported = BundleRunner(bundle_of(models, "uncompressed", longest))
        calls[f"executorch {TEACHER} k=1"] = (bundle_call(exported, 1), longest)
        bundles = {"ours": bundle_of(models, "ours", longest),
                   "ours int8": bundle_of(models, "ours", longest, "int8", data)}
    for prefix, bundle in bundles.items():
        runner = BundleRunner(bundle)
        limit = runner.manifest["model"]["max_length"]
        for ratio in sorted(int(k) for k in runner.manifest["ratios"]):
            calls[f"{prefix} k={ratio}"] = (bundle_call(runner, ratio), limit)
    latency = latency_by_length(calls, lengths, repeats, gemm_calls(longest, work / "gemm"))
    ours_config = load_for_export(models.ours, models.plugins)[0].encoder.config
    for row in (r for r in latency if r["median_ms"] is not None):
        row["gflops"] = flops(row, teacher.encoder.config, ours_config) / row["median_ms"] / 1e6
    return latency


def compare_task(models: TaskModels, limit: int | None, quick: bool, work: Path) -> dict:
    """Accuracy and ms per text on `models.task`'s test split, every configuration."""
    data = datasets.load_benchmark(models.task)
    teacher, tokenizer, _ = load_task(models.uncompressed)
    tokenizer = Tokenizer(tokenizer.model_dir, models.max_length)
    sessions = onnx_sessions(teacher, models.max_length, work / "onnx" / models.task)
    calls: dict[str, Callable] = {"pytorch eager": eager_call(teacher)}
    calls.update({name: onnx_call(session) for name, session in sessions.items()})
    if quick:
        ours = {"ours": BundleRunner(default_bundle()[0])}
    else:
        ours = {"ours": BundleRunner(bundle_of(models, "ours", models.max_length))}
        if models.task == datasets.DEFAULT_TASK:  # one uncompressed export and one int8 bundle: mr's
            calls[f"executorch {TEACHER} k=1"] = bundle_call(
                BundleRunner(bundle_of(models, "uncompressed", models.max_length)), 1)
            ours["ours int8"] = BundleRunner(bundle_of(models, "ours", models.max_length, "int8", data))
    # a seeded sample, not the first texts: 20ng's and r8's own test splits are sorted by class
    test = random.Random(0).sample(data.test, limit) if limit and limit < len(data.test) else data.test
    return {"task": models.task, "texts": len(test), "of": len(data.test), "max_length": models.max_length,
            "ours": models.what, "model_dir": repo_relative(models.model_dir),
            "accuracy": accuracy_rows(test, calls, tokenizer, ours)}


def repo_relative(path: Path) -> str:
    """`path` relative to the repository when it is inside it (docs/results.json's model_dir)."""
    try:
        return str(path.resolve().relative_to(SHIPPED_MODELS.parent))
    except ValueError:
        return str(path)


def run(lengths: Sequence[int], repeats: int, limit: int | None, quick: bool, work: Path,
        tasks: Sequence[str] = TASKS, runs: Path = Path("runs")) -> dict:
    """Everything compare measures, as one JSON-able dict (what report.py writes up)."""
    started = time.perf_counter()
    found = {task: task_models(task, runs) for task in tasks}
    if quick:  # the shipped model only: nothing to export
        found = {task: (m if task == datasets.DEFAULT_TASK else "--quick runs the shipped mr model only")
                 for task, m in found.items()}
    mr = found.get(datasets.DEFAULT_TASK)
    if isinstance(mr, TaskModels) and not quick:  # one export of each mr bundle serves both measurements
        mr.max_length = max(mr.max_length, *lengths)
    latency = compare_lengths(mr, lengths, repeats, quick, work) if isinstance(mr, TaskModels) else []
    results = []
    for task, models in found.items():
        if isinstance(models, TaskModels):
            task_limit = limit or TEST_SAMPLE.get(task)
            results.append(compare_task(models, task_limit, quick, work))
            gc.collect()
    from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count

    return {"machine": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "executorch_threads": _threadpool_get_thread_count(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "libgomp's default"),
            "quick": quick, "repeats": repeats, "lengths": list(lengths),
            "latency": latency, "tasks": results,
            "not_run": {task: why for task, why in found.items() if isinstance(why, str)},
            "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 128, 256])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--limit", type=int, default=0,
                        help="a seeded sample of N test texts per data set (0: all; "
                        f"of 20ng, {TEST_SAMPLE['20ng']})")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--runs", default="runs", help="where the training scripts left the other models")
    parser.add_argument("--quick", action="store_true", help="the shipped mr bundle only, nothing exported")
    parser.add_argument("--out", default="runs/compare.json")
    args = parser.parse_args()
    result = run(args.lengths, args.repeats, args.limit, args.quick, Path(args.out).parent / "compare",
                 args.tasks, Path(args.runs))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps([t["accuracy"] for t in result["tasks"]], indent=1))
    print(f"wrote {args.out} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
