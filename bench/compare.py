"""Our bundle against what an engineer would otherwise ship: the same task model exported without us.

    python bench/compare.py [--lengths 16 64 128 256] [--repeats 20] [--limit N] [--quick]

On one machine, in one run, batch 1:
- **latency by length**, interleaved (each round calls every configuration once, in turn), median
  and min-max over the rounds, inputs of every position a real token:
  the uncompressed mr model (the shipped LoRA adapter on all-MiniLM-L6-v2, merged) in PyTorch
  eager, in ONNX Runtime (CPU; `torch.onnx.export(dynamo=True)`) fp32 and dynamically quantized
  int8, and in the ExecuTorch runtime (our export, k = 1, XNNPACK); and our default bundle (the
  slender multi-exit model with its plugins) at k = 1, 2, 4, 8 through every layer. A GEMM of a
  layer's biggest shape (tokens x 384 @ 384 x 1536, torch.matmul) is the roofline, in the same
  rounds; GFLOP/s use the analytic FLOPs of cost.py.
- **accuracy and mean latency per text** on the mr test split, one text at a time as an app runs
  them: the uncompressed model in each runtime, and our bundle at every ratio x exit threshold
  through the runner (early exit included).

`bench/report.py` turns the result into docs/RESULTS.md and plots.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from edge_variator import data as datasets
from edge_variator.cli import SHIPPED_ADAPTER, bundle_cache, cached_export, default_bundle, default_checkpoint
from edge_variator.cost import encoder_flops, linear_flops
from edge_variator.export.bundle import load_model as load_for_export
from edge_variator.profile import pareto_rows
from edge_variator.runtime.runner import BundleRunner
from edge_variator.task import checkpoint_sha256, load_task

TEACHER = "uncompressed"


def onnx_sessions(model: torch.nn.Module, max_length: int, folder: Path) -> dict:
    """ONNX Runtime sessions of the model, fp32 and dynamic int8 (weights int8, activations on the fly)."""
    import onnxruntime
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
    options = onnxruntime.SessionOptions()
    # ORT's threads spin after each run by default, which steals the cores from whatever is timed
    # next in the interleaved rounds; ExecuTorch's and torch's threads do not
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return {name: onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            for name, path in (("onnxruntime fp32", fp32), ("onnxruntime int8", int8))}


def teacher_bundle(rebuild: bool = False) -> Path:
    """The uncompressed model exported by us at k = 1 (cached beside the default bundle)."""
    out = bundle_cache() / f"{SHIPPED_ADAPTER.name}-k1-{checkpoint_sha256(SHIPPED_ADAPTER)[:12]}"
    return cached_export(out, SHIPPED_ADAPTER, None, [1], rebuild)[0]


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


def latency_by_length(calls: dict[str, tuple[Callable, int]], lengths: Sequence[int], repeats: int,
                      warmup: int = 3) -> list[dict]:
    """Median and min-max ms per configuration and length; `calls` maps a name to (call, max length)."""
    rows = []
    for length in lengths:
        ids, mask = torch.randint(1000, 2000, (1, length)), torch.ones(1, length, dtype=torch.long)
        gemm = (torch.randn(length, 384), torch.randn(384, 1536))
        active = {name: call for name, (call, limit) in calls.items() if length <= limit}
        active["gemm roofline"] = lambda ids, mask, gemm=gemm: gemm[0] @ gemm[1]
        times: dict[str, list[float]] = {name: [] for name in active}
        for round_index in range(warmup + repeats):
            for name, call in active.items():
                began = time.perf_counter()
                call(ids, mask)
                if round_index >= warmup:
                    times[name].append(1000 * (time.perf_counter() - began))
        for name in calls:
            if name not in active:
                rows.append({"config": name, "tokens": length, "median_ms": None,
                             "why": f"exported up to {calls[name][1]} tokens"})
        for name, samples in times.items():
            rows.append({"config": name, "tokens": length, "median_ms": statistics.median(samples),
                         "min_ms": min(samples), "max_ms": max(samples)})
    return rows


def accuracy_rows(task: datasets.TaskData, calls: dict[str, Callable], tokenizer, runner: BundleRunner,
                  limit: int | None) -> list[dict]:
    """Accuracy and mean ms per text (the model call alone, as the runner times its methods)."""
    rows_in = task.test[:limit or None]
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
    for row in pareto_rows(runner, texts, labels):
        exit_name = row["threshold_name"]
        suffix = "" if exit_name == "none" else f" exit {exit_name}"
        rows.append({"config": f"ours k={row['ratio']}{suffix}",
                     "accuracy": row["accuracy"], "mean_ms": row["mean_ms"],
                     "mean_exit_layer": row["mean_exit_layer"]})
    return rows


def flops(row: dict, teacher_config, ours_config) -> int | None:
    """Analytic FLOPs of one run of the row's configuration at its length."""
    seq, name = row["tokens"], row["config"]
    if name == "gemm roofline":
        return linear_flops(seq, 384, 1536)
    if name.startswith("ours k="):
        return encoder_flops(ours_config, seq, 2, int(name.split("=")[1]))["total"]
    return encoder_flops(teacher_config, seq, 2)["total"]


def run(lengths: Sequence[int], repeats: int, limit: int | None, quick: bool, work: Path) -> dict:
    """Everything compare measures, as one JSON-able dict (what report.py writes up)."""
    started = time.perf_counter()
    teacher, tokenizer, _ = load_task(SHIPPED_ADAPTER)
    teacher.eval()
    bundle, _ = default_bundle()
    ours = BundleRunner(bundle)
    ours_max = ours.manifest["model"]["max_length"]
    sessions = onnx_sessions(teacher, max(max(lengths), tokenizer.max_length), work / "onnx")
    calls: dict[str, tuple[Callable, int]] = {"pytorch eager": (eager_call(teacher), 512)}
    calls.update({name: (onnx_call(session), max(lengths)) for name, session in sessions.items()})
    if not quick:  # our export of the uncompressed model: 8 methods, about 2 min to lower once
        exported = BundleRunner(teacher_bundle())
        calls[f"executorch {TEACHER} k=1"] = (bundle_call(exported, 1),
                                               exported.manifest["model"]["max_length"])
    for ratio in sorted(int(k) for k in ours.manifest["ratios"]):
        calls[f"ours k={ratio}"] = (bundle_call(ours, ratio), ours_max)
    latency = latency_by_length(calls, lengths, repeats)
    ours_model = load_for_export(*default_checkpoint())[0]
    for row in (r for r in latency if r["median_ms"] is not None):
        row["gflops"] = flops(row, teacher.encoder.config, ours_model.encoder.config) / row["median_ms"] / 1e6
    task = datasets.load_benchmark(datasets.DEFAULT_TASK)
    accuracy_calls = {name: call for name, (call, _) in calls.items() if not name.startswith("ours")}
    accuracy = accuracy_rows(task, accuracy_calls, tokenizer, ours, limit)
    return {"machine": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(), "quick": quick, "repeats": repeats,
            "task": task.name, "texts": len(task.test[:limit or None]),
            "latency": latency, "accuracy": accuracy, "seconds": time.perf_counter() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 128, 256])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--limit", type=int, default=0, help="first N test texts (0: all)")
    parser.add_argument("--quick", action="store_true", help="skip exporting the uncompressed model")
    parser.add_argument("--out", default="runs/compare.json")
    args = parser.parse_args()
    result = run(args.lengths, args.repeats, args.limit, args.quick, Path(args.out).parent / "compare")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result["accuracy"], indent=1))
    print(f"wrote {args.out} in {result['seconds']:.0f} s")


if __name__ == "__main__":
    main()
