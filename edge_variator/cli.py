"""`edge-variator`: a thin command line over the library."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from edge_variator import data as datasets
from edge_variator.cost import average_flops, parameter_count
from edge_variator.encoder import ModelLoadError

SHIPPED_ADAPTER = Path(__file__).parent / "default" / "mr_lora"
SHIPPED_PLUGINS = Path(__file__).parent / "default" / "mr_plugins"  # k2/, k4/, k8/ on that adapter
SHIPPED_SLENDER = Path(__file__).parent / "default" / "mr_slender"  # multi-exit, 1/4 width, fp16
SHIPPED_BUNDLES = Path(__file__).parent / "default" / "bundles"  # default_bundle_name() -> its export


def cmd_data(args: argparse.Namespace) -> None:
    if args.action == "list":
        for name, spec in datasets.BENCHMARKS.items():
            cached = all(f.cache_path.is_file() for f in spec.files)
            print(f"{name:10} {'cached ' if cached else 'remote '} {spec.description}")
    elif args.action == "fetch":
        for name in args.names or list(datasets.BENCHMARKS):
            for path in datasets.fetch(name):
                print(f"{name}: {path} (sha256 verified)")
    else:
        for name in args.names or [datasets.DEFAULT_TASK]:
            inspect(datasets.load(name), args.examples)


def inspect(task: datasets.TaskData, examples: int) -> None:
    from edge_variator.encoder import default_model_dir
    from edge_variator.tokenizer import Tokenizer

    tokenizer = Tokenizer(default_model_dir())
    print(f"{task.name}: {len(task.labels)} labels {task.labels}")
    for split in datasets.SPLITS:
        rows = task.split(split)
        stats = tokenizer.length_stats([e.text for e in rows])
        counts = [sum(e.label == i for e in rows) for i in range(len(task.labels))]
        print(f"  {split:5} {len(rows):6,} examples, tokens mean {stats['mean']:.0f} "
              f"p90 {stats['p90']}, per label {counts}")
    for example in task.train[:examples]:
        print(f"  [{task.labels[example.label]}] {example.text[:120]}")


def load_task_data(args: argparse.Namespace) -> datasets.TaskData:
    columns = {k: getattr(args, k) for k in ("text_column", "label_column", "text_pair_column")
               if getattr(args, k, None) is not None}
    return datasets.load(args.task, seed=args.seed, **columns)


def cmd_finetune(args: argparse.Namespace) -> None:
    from edge_variator.train import FinetuneConfig, finetune

    config = FinetuneConfig(method=args.method, epochs=args.epochs, batch_size=args.batch_size,
                            lr=args.lr, max_length=args.max_length, seed=args.seed,
                            max_train=args.max_train)
    metrics = finetune(load_task_data(args), args.out, config, model_dir=args.model)
    if metrics:
        print(json.dumps({k: metrics[k] for k in ("dev", "test", "train_seconds")}, indent=2))
        print(f"saved {args.out}")


def evaluate_checkpoint(checkpoint: Path, task: datasets.TaskData, split: str) -> dict:
    from edge_variator.task import load_task
    from edge_variator.train import evaluate

    model, tokenizer, info = load_task(checkpoint)
    if info.labels != task.labels:
        raise SystemExit(f"{checkpoint} predicts {info.labels}, but {task.name} has {task.labels}")
    rows = task.split(split)
    lengths = tokenizer.token_lengths([e.text for e in rows])
    padded = tokenizer.padded_lengths([e.text for e in rows])
    started = time.perf_counter()
    metrics = evaluate(model, tokenizer, rows)
    return {
        **metrics,
        "examples": len(rows),
        "seconds": time.perf_counter() - started,
        "parameters": parameter_count(model),
        "flops_per_example": average_flops(model.encoder.config, padded, len(task.labels)),
        "truncated": sum(n > tokenizer.max_length for n in lengths),
    }


def print_evaluation(name: str, split: str, result: dict) -> None:
    print(f"{name} {split}: accuracy {100 * result['accuracy']:.2f}%  "
          f"macro-F1 {100 * result['macro_f1']:.2f}%  ({result['examples']:,} examples, "
          f"{result['truncated']} truncated, {result['seconds']:.1f} s)")
    print(f"  parameters {result['parameters'] / 1e6:.1f} M, "
          f"{result['flops_per_example'] / 1e9:.3f} GFLOPs per example (analytic, mean)")


def cmd_eval(args: argparse.Namespace) -> None:
    task = load_task_data(args)
    print_evaluation(task.name, args.split, evaluate_checkpoint(Path(args.checkpoint), task, args.split))


def bundle_cache() -> Path:
    return Path(os.environ.get("EDGE_VARIATOR_BUNDLES", Path.home() / ".cache" / "edge-variator" / "bundles"))


def default_checkpoint() -> tuple[Path, Path]:
    """What the default bundle is exported from: the slender multi-exit mr model and its plugins, or
    the mr adapter and its plugins on an install without the slender model."""
    from edge_variator.exits import is_multi_exit

    if is_multi_exit(SHIPPED_SLENDER):
        return SHIPPED_SLENDER, SHIPPED_SLENDER / "plugins"
    return SHIPPED_ADAPTER, SHIPPED_PLUGINS


def weights_key(checkpoint: Path, plugins: Path | None) -> str:
    """12 hex digits of a hash of a checkpoint and its plugin sets: a bundle named with it was exported
    from exactly these weights."""
    import hashlib

    from edge_variator.files import file_sha256
    from edge_variator.task import checkpoint_sha256

    key = hashlib.sha256(checkpoint_sha256(checkpoint).encode())
    for path in sorted(Path(plugins).rglob("*.safetensors")) if plugins else []:
        key.update(file_sha256(path).encode())
    return key.hexdigest()[:12]


def default_bundle_name() -> str:
    """`<checkpoint>-<weights_key>` of the default checkpoint and its plugin sets."""
    checkpoint, plugins = default_checkpoint()
    return f"{checkpoint.name}-{weights_key(checkpoint, plugins)}"


def model_to_export(checkpoint: Path, plugins: Path | None, ratios: list[int] | None,
                    max_length: int | None = None):
    """export.bundle.load_model, its tokenizer cut at `max_length` (the longest input the bundle takes)
    when given."""
    from edge_variator.export.bundle import load_model
    from edge_variator.tokenizer import Tokenizer

    model, tokenizer, source = load_model(checkpoint, plugins, ratios)
    if max_length:
        tokenizer = Tokenizer(tokenizer.model_dir, max_length)
    return model, tokenizer, source


def cached_export(out: Path, checkpoint: Path, plugins: Path | None, ratios: list[int] | None = None,
                  rebuild: bool = False, shipped: Path | None = None, max_length: int | None = None,
                  quantize: str = "none", calibration_texts: Sequence[str] = ()) -> tuple[Path, str]:
    """The bundle of `checkpoint` (+ plugins) at `out`: reused when it is there and was exported from
    these weights, else copied from `shipped` when that one is (into `out`, because `profile` writes
    into the manifest), else exported (at `max_length` if given, int8 from `calibration_texts` if
    `quantize` says so). `out`'s name must tell apart what the weights do not (ratios, length,
    quantization). Returns the folder and "cached", "shipped" or "exported"."""
    import shutil

    from edge_variator.export.bundle import write_bundle
    from edge_variator.files import atomic_directory
    from edge_variator.runtime.bundle import BundleError, load_manifest
    from edge_variator.task import checkpoint_sha256

    sha = checkpoint_sha256(checkpoint)
    if not rebuild:
        for origin, candidate in (("cached", out), ("shipped", shipped)):
            if candidate is None:
                continue
            try:
                load_manifest(candidate, expected_sha256=sha)
            except BundleError:
                continue  # absent, stale or damaged
            if candidate != out:
                with atomic_directory(out) as tmp:
                    shutil.copytree(candidate, tmp, dirs_exist_ok=True)
            return out, origin
    model, tokenizer, source = model_to_export(checkpoint, plugins, ratios, max_length)
    write_bundle(model, tokenizer, source, out, quantize=quantize, calibration_texts=calibration_texts)
    return out, "exported"


def default_bundle(rebuild: bool = False) -> tuple[Path, str]:
    """The bundle of default_checkpoint(): the one in the cache, else the one shipped with the
    install (exporting 31 methods takes about 8 minutes on 2 cores), else exported from the shipped
    weights (cached_export)."""
    checkpoint, plugins = default_checkpoint()
    name = default_bundle_name()
    return cached_export(bundle_cache() / name, checkpoint, plugins, rebuild=rebuild,
                         shipped=SHIPPED_BUNDLES / name)


def demo_states():
    from edge_variator.runtime.policy import DeviceState

    return [("full battery, nominal", DeviceState(battery=1.0)),
            ("50%, fair", DeviceState(battery=0.5, thermal="fair")),
            ("15%, serious", DeviceState(battery=0.15, thermal="serious")),
            ("low power, critical", DeviceState(battery=0.3, low_power=True, thermal="critical"))]


def cmd_demo(args: argparse.Namespace) -> None:
    from edge_variator.profile import (
        measure,
        pareto_rows,
        plot_depth,
        plot_pareto,
        run_summary,
        store_in_bundle,
    )
    from edge_variator.runtime.bundle import load_manifest
    from edge_variator.runtime.runner import BundleRunner

    started = time.perf_counter()
    task = datasets.load_benchmark(datasets.DEFAULT_TASK)
    bundle, origin = default_bundle(args.rebuild)
    manifest = load_manifest(bundle)
    model = manifest["model"]
    print(f"bundle {bundle} ({origin}, {time.perf_counter() - started:.0f} s): "
          f"{manifest['backbone']['id']}, {model['layers']} layers x {model['hidden']} wide, "
          f"{model['heads']} heads, FFN {model['intermediate']}, ratios "
          f"{sorted(map(int, manifest['ratios']))}, {len(manifest['exits']['after_layers'])} exits, "
          f"model.pte {manifest['files']['executorch']['bytes'] / 1e6:.1f} MB")
    profile = measure(bundle, args.lengths, repeats=args.repeats)
    manifest = store_in_bundle(bundle, profile, manifest["policy"])
    print_profile(profile, manifest)
    rows = task.test[:args.limit or None]
    texts, labels = [e.text for e in rows], [e.label for e in rows]
    runner = BundleRunner(bundle)
    print(f"{task.name} test ({len(texts):,} texts) through the runner, one text at a time:")
    print("device state              rule          k  threshold        accuracy  mean ms  mean exit layer")
    for name, state in demo_states():
        decision = runner.policy.decide(state)
        row = run_summary(runner, texts, labels, decision)
        threshold = ("none" if decision.threshold is None
                     else f"{decision.threshold_name} {decision.threshold:.3f}")
        print(f"{name:25} {decision.rule:13} {decision.ratio:2}  {threshold:15} "
              f"{100 * row['accuracy']:8.2f}% {row['mean_ms']:8.2f} {row['mean_exit_layer']:10.2f}")
    plots = Path(args.plots)
    pareto = pareto_rows(runner, texts, labels)
    print_pareto(pareto, f"{task.name} test ({len(texts):,} texts)")
    depth_png = plot_depth(profile, manifest, max(args.lengths), plots / "latency_vs_depth.png")
    pareto_png = plot_pareto(pareto, plots / "pareto.png", f"{task.name} test: {manifest['backbone']['id']}")
    print(f"plots: {depth_png}, {pareto_png}")
    print(f"demo finished in {time.perf_counter() - started:.0f} s")


def cmd_plugins_train(args: argparse.Namespace) -> None:
    from edge_variator.task import resolve_base
    from edge_variator.train import PluginTrainConfig, train_plugins

    pretraining = args.task == "general"
    task = datasets.general_corpus(args.seed) if pretraining else load_task_data(args)
    for ratio in args.ratios:
        config = PluginTrainConfig(
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, max_length=args.max_length,
            seed=args.seed, max_train=args.max_train, hidden_loss=args.hidden_loss,
            mse_weight=args.mse_weight, ce_weight=0.0 if pretraining else args.ce_weight,
            bottleneck=args.bottleneck, layers=args.layers,
            init_from=str(Path(args.init_from) / f"k{ratio}") if args.init_from else None)
        out = Path(args.out) / f"k{ratio}"
        metrics = train_plugins(resolve_base(args.checkpoint), task, out, ratio, config)
        if not metrics:  # another torchrun rank: rank 0 reports
            continue
        last = metrics["history"][-1]
        print(f"k={ratio}: {metrics['plugin_parameters']:,} parameters "
              f"({100 * metrics['plugin_parameters'] / metrics['backbone_parameters']:.2f}% of the "
              f"backbone), last dev {({k: v for k, v in last.items() if k.startswith('dev_')})}, "
              f"{metrics['train_seconds']:.0f} s -> {out}")


def evaluate_ratios(checkpoint: Path, plugins_dir: Path, task: datasets.TaskData, split: str,
                    ratios: list[int], max_length: int | None = None) -> list[dict]:
    """Accuracy, macro-F1 and FLOPs relative to k = 1 of a checkpoint at k = 1 and each ratio."""
    from edge_variator.plugins import PluginSet, attach, cost_arguments, set_ratio
    from edge_variator.task import checkpoint_sha256, load_task
    from edge_variator.tokenizer import Tokenizer
    from edge_variator.train import evaluate

    model, tokenizer, info = load_task(checkpoint)
    tokenizer = Tokenizer(tokenizer.model_dir, max_length or info.max_length)
    sha = checkpoint_sha256(checkpoint)
    for ratio in ratios:
        attach(model.encoder, PluginSet.load(plugins_dir / f"k{ratio}"), sha)
    rows = task.split(split)
    padded = tokenizer.padded_lengths([e.text for e in rows])
    config = model.encoder.config
    base_flops = average_flops(config, padded, len(task.labels))
    results = []
    for ratio in [1, *ratios]:
        set_ratio(model.encoder, ratio)
        flops = average_flops(config, padded, len(task.labels), **cost_arguments(model.encoder, ratio))
        results.append({"ratio": ratio, **evaluate(model, tokenizer, rows), "flops": flops / base_flops})
    return results


def print_ratios(name: str, split: str, results: list[dict]) -> None:
    print(f"{name} {split} at each compression ratio k (FFN on n/k merged vectors):")
    print("  k  accuracy  macro-F1  FLOPs vs k=1")
    for row in results:
        print(f"  {row['ratio']}  {100 * row['accuracy']:7.2f}  {100 * row['macro_f1']:8.2f}  "
              f"{row['flops']:11.3f}")


def cmd_plugins_eval(args: argparse.Namespace) -> None:
    task = load_task_data(args)
    results = evaluate_ratios(Path(args.checkpoint), Path(args.plugins), task, args.split, args.ratios,
                              args.max_length)
    print_ratios(task.name, args.split, results)


def cmd_slender_train(args: argparse.Namespace) -> None:
    from edge_variator.exits import is_multi_exit
    from edge_variator.task import resolve_base
    from edge_variator.train import ExitTrainConfig, SlenderConfig, train_multi_exit, train_slender

    task = load_task_data(args)
    loop = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
            "max_length": args.max_length, "seed": args.seed, "max_train": args.max_train,
            "temperature": args.temperature, "soft_weight": args.soft_weight, "exit_lr": args.exit_lr}
    pooling = {"pooling": args.pooling}
    source = resolve_base(args.checkpoint)
    if is_multi_exit(source):  # an assistant: slenderize it
        config = SlenderConfig(**loop, heads=args.heads, neurons=args.neurons,
                               embedding_rank=args.embedding_rank,
                               prune_steps=args.prune_steps, repr_epochs=args.repr_epochs)
        metrics = train_slender(source, task, args.out, config)
    else:  # a fine-tuned teacher: train the full-width multi-exit assistant
        metrics = train_multi_exit(source, task, args.out, ExitTrainConfig(**loop, **pooling))
    print(f"{metrics['parameters'] / 1e6:.2f} M parameters; test accuracy per exit: "
          + " ".join(f"{100 * a:.1f}" for a in metrics["test_exit_accuracy"]) + f" -> {args.out}")


def early_exit_metrics(model, tokenizer, rows: list, threshold: float, criterion: str,
                       ratio: int = 1) -> dict:
    """Accuracy, mean exit layer and mean FLOPs per example of early exit at `threshold` (with
    the model's plugins running at `ratio`, which the caller has set)."""
    import torch

    from edge_variator.exits import exit_decisions
    from edge_variator.plugins import cost_arguments
    from edge_variator.train import exit_logits

    layers, predictions = exit_decisions(exit_logits(model, tokenizer, rows), threshold, criterion)
    labels = torch.tensor([e.label for e in rows])
    padded = tokenizer.padded_lengths([e.text for e in rows])
    return {"accuracy": (predictions == labels).float().mean().item(),
            "mean_exit_layer": layers.float().mean().item(),
            "mean_flops": average_flops(model.encoder.config, padded, len(model.labels),
                                        exit_layers=layers.tolist(), **cost_arguments(model.encoder, ratio))}


def calibrate_checkpoint(checkpoint: Path, task: datasets.TaskData, drops: list[float],
                         ratio: int = 1, plugins_dir: Path | None = None) -> dict:
    """Thresholds meeting each accuracy drop on dev, scored on test. At ratio 1 they are written
    into exits.json; at a plugin ratio (plugins_dir/k{ratio}) they are only returned."""
    import torch

    from edge_variator.exits import calibrate_threshold, load_multi_exit, save_thresholds
    from edge_variator.plugins import PluginSet, attach, set_ratio
    from edge_variator.task import checkpoint_sha256
    from edge_variator.train import exit_logits

    model, tokenizer, info = load_multi_exit(checkpoint)
    if info.labels != task.labels:
        raise SystemExit(f"{checkpoint} predicts {info.labels}, but {task.name} has {task.labels}")
    if ratio != 1:
        attach(model.encoder, PluginSet.load(plugins_dir / f"k{ratio}"), checkpoint_sha256(checkpoint))
        set_ratio(model.encoder, ratio)
    dev_logits = exit_logits(model, tokenizer, task.dev)
    dev_labels = torch.tensor([e.label for e in task.dev])
    rows = []
    for drop in drops:
        threshold = calibrate_threshold(dev_logits, dev_labels, drop, info.criterion)
        rows.append({"max_drop": drop, "threshold": threshold, **{
            split: early_exit_metrics(model, tokenizer, task.split(split), threshold, info.criterion, ratio)
            for split in ("dev", "test")}})
    if ratio == 1:
        save_thresholds(checkpoint, {f"drop_{100 * row['max_drop']:g}": row["threshold"] for row in rows})
    return {"parameters": parameter_count(model), "thresholds": rows}


def cmd_slender_calibrate(args: argparse.Namespace) -> None:
    task = load_task_data(args)
    result = calibrate_checkpoint(Path(args.checkpoint), task, [d / 100 for d in args.drops])
    print(f"{task.name}: thresholds calibrated on dev ({len(task.dev):,}), "
          f"scored on test ({len(task.test):,});"
          f" written to {args.checkpoint}/exits.json")
    print("  drop  threshold  dev acc  test acc  mean exit  GFLOPs/example")
    for row in result["thresholds"]:
        print(f"  {100 * row['max_drop']:4.1f}  {row['threshold']:9.4f}  "
              f"{100 * row['dev']['accuracy']:7.2f}  "
              f"{100 * row['test']['accuracy']:8.2f}  {row['test']['mean_exit_layer']:9.2f}  "
              f"{row['test']['mean_flops'] / 1e9:14.3f}")


def cmd_slender_eval(args: argparse.Namespace) -> None:
    from edge_variator.exits import load_multi_exit
    from edge_variator.train import evaluate_exits

    task = load_task_data(args)
    model, tokenizer, info = load_multi_exit(args.checkpoint)
    rows = task.split(args.split)
    config = model.encoder.config
    print(f"{task.name} {args.split}: {parameter_count(model) / 1e6:.2f} M parameters, "
          f"encoder {config.heads} heads x {config.head_dim}, "
          f"FFN {config.intermediate}, embedding rank {config.embedding_rank or '-'}")
    print("  accuracy per exit (all layers run): "
          + " ".join(f"{100 * a:.1f}" for a in evaluate_exits(model, tokenizer, rows)))
    thresholds = dict(info.thresholds)
    if args.threshold is not None:
        thresholds = {"--threshold": args.threshold}
    for name, threshold in thresholds.items():
        result = early_exit_metrics(model, tokenizer, rows, threshold, info.criterion)
        print(f"  {name} ({threshold:.4f}): accuracy {100 * result['accuracy']:.2f}%, mean exit layer "
              f"{result['mean_exit_layer']:.2f}, {result['mean_flops'] / 1e9:.3f} GFLOPs per example")


def cmd_export(args: argparse.Namespace) -> None:
    from edge_variator.export.bundle import write_bundle

    checkpoint, plugins = Path(args.checkpoint), args.plugins
    if args.checkpoint == "default":
        checkpoint, plugins = SHIPPED_ADAPTER, plugins or SHIPPED_PLUGINS
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    model, tokenizer, source = model_to_export(checkpoint, plugins, args.ratios, args.max_length)
    texts = []
    if args.quantize == "int8":
        task = load_task_data(args)
        texts = [e.text for e in task.train[:args.calibration_texts]]
    started = time.perf_counter()
    manifest = write_bundle(model, tokenizer, source, args.out, formats, args.quantize, args.coreml_compress,
                            texts)
    files = manifest["files"]
    print(f"bundle {args.out}: {len(manifest['methods'])} methods, "
          f"ratios {sorted(manifest['ratios'], key=int)}, exits after layers "
          f"{manifest['exits']['after_layers']}, {time.perf_counter() - started:.0f} s")
    for kind in ("executorch", "coreml"):
        if kind in files:
            print(f"  {files[kind]['path']}: {files[kind]['bytes'] / 1e6:.1f} MB ({files[kind]['quantize']})")


def device_state(args: argparse.Namespace):
    from edge_variator.runtime.policy import DeviceState, thermal_from_android

    thermal = thermal_from_android(args.android_thermal) if args.android_thermal is not None else args.thermal
    return DeviceState(battery=args.battery, charging=args.charging, low_power=args.low_power,
                       thermal=thermal, budget_ms=args.budget_ms)


def cmd_run(args: argparse.Namespace) -> None:
    from edge_variator.runtime.runner import BundleRunner

    runner = BundleRunner(args.bundle)
    state = device_state(args)
    decision = runner.policy.decide(state)
    result = runner.run(args.text, decision=decision)
    threshold = "none (every layer)" if decision.threshold is None else (
        f"{decision.threshold_name} = {decision.threshold:.4f}")
    print(f"device: battery {state.battery:.0%}{' charging' if state.charging else ''}"
          f"{' low-power' if state.low_power else ''}, thermal {state.thermal}"
          f"{f', budget {state.budget_ms:g} ms' if state.budget_ms else ''}")
    print(f"policy: rule {decision.rule!r} -> ratio k = {decision.ratio}, exit threshold {threshold}"
          f"{' (raised by the latency budget)' if decision.budget_applied else ''}")
    probabilities = ", ".join(f"{label} {p:.3f}" for label, p in zip(runner.labels, result.probabilities,
                                                                     strict=True))
    print(f"result: {result.label} ({probabilities}), "
          f"exit after layer {result.exit_layer} of {result.layers}, "
          f"{result.tokens} tokens{' (truncated)' if result.truncated else ''}, {result.total_ms:.1f} ms")
    if args.steps:
        for name, ms in result.step_ms.items():
            print(f"  {name:12} {ms:7.2f} ms")


def print_profile(profile: dict, manifest: dict) -> None:
    from edge_variator.profile import depth_latency, profiled_lengths

    lengths = profiled_lengths(profile)
    print(f"{profile['device']}, {profile.get('runtime', '')}: median (p90) ms per method")
    print("method        " + "".join(f"{n:>19}" for n in lengths))
    for name, rows in profile["methods"].items():
        cells = "".join(f"{rows[str(n)]['median_ms']:9.3f} ({rows[str(n)]['p90_ms']:7.3f})" for n in lengths)
        print(f"{name:14}{cells}")
    print("every layer (embed + layers + exits asked on the way), median ms:")
    for k in sorted(manifest["ratios"], key=int):
        cells = "".join(f"{depth_latency(profile, manifest, int(k), n)[-1]:19.2f}" for n in lengths)
        print(f"k = {k:<10}{cells}")


def print_pareto(rows: list[dict], name: str) -> None:
    baseline = next(r for r in rows if r["ratio"] == 1 and r["threshold"] is None)
    print(f"{name}: ratio x exit threshold through the runner (baseline: k = 1, every layer)")
    print(" k  threshold        accuracy   mean ms  vs base  mean exit layer")
    for row in rows:
        threshold = "none" if row["threshold"] is None else f"{row['threshold_name']} {row['threshold']:.3f}"
        print(f"{row['ratio']:2}  {threshold:15} {100 * row['accuracy']:8.2f}% {row['mean_ms']:9.2f} "
              f"{row['mean_ms'] / baseline['mean_ms']:8.3f} {row['mean_exit_layer']:10.2f}")


def cmd_profile(args: argparse.Namespace) -> None:
    from edge_variator.profile import (
        load_profile,
        measure,
        pareto_rows,
        plot_depth,
        plot_pareto,
        profiled_lengths,
        store_in_bundle,
    )
    from edge_variator.runtime.bundle import load_manifest
    from edge_variator.runtime.runner import BundleRunner

    manifest = load_manifest(args.bundle)
    if args.import_profile:
        profile = load_profile(args.import_profile, manifest)
    else:
        profile = measure(args.bundle, args.lengths, args.repeats, args.warmup)
    print_profile(profile, manifest)
    if args.out:
        from edge_variator.files import write_json

        write_json(args.out, profile)
        print(f"profile: {args.out}")
    if not args.no_store:
        manifest = store_in_bundle(args.bundle, profile, manifest["policy"])
        print(f"stored in {Path(args.bundle) / 'manifest.json'}")
    plots = Path(args.plots or Path("runs") / "profile" / Path(args.bundle).resolve().name)
    length = max(profiled_lengths(profile))
    print(f"plot: {plot_depth(profile, manifest, length, plots / 'latency_vs_depth.png')}")
    if args.pareto_task:
        task = datasets.load_benchmark(args.pareto_task)
        rows_ = getattr(task, args.pareto_split)[:args.pareto_limit or None]
        rows = pareto_rows(BundleRunner(args.bundle), [e.text for e in rows_], [e.label for e in rows_])
        print_pareto(rows, f"{task.name} {args.pareto_split} ({len(rows_):,} texts)")
        title = f"{task.name} {args.pareto_split}: {manifest['backbone']['id']}"
        print(f"plot: {plot_pareto(rows, plots / 'pareto.png', title)}")


def cmd_calibrate(args: argparse.Namespace) -> None:
    from edge_variator.profile import load_profile, profiled_lengths, ratio_latency, store_in_bundle
    from edge_variator.runtime.bundle import load_manifest
    from edge_variator.runtime.policy import Policy, calibrate, default_policy

    manifest = load_manifest(args.bundle)
    profile = load_profile(args.profile, manifest)
    length = args.length or max(profiled_lengths(profile))
    budgets = {}
    for item in args.budget:
        name, _, value = item.partition("=")
        try:
            budgets[name] = float(value)
        except ValueError:
            raise ValueError(f"--budget takes RULE=MS (e.g. serious=20), not {item!r}") from None
    ratios = sorted(int(k) for k in manifest["ratios"])
    table = manifest["policy"] or default_policy(ratios, manifest["exits"]["thresholds"])
    table = calibrate(table, ratio_latency(profile, manifest, length), budgets)
    Policy(table, ratios, manifest["exits"]["thresholds"])  # refuses a table the bundle cannot carry out
    store_in_bundle(args.bundle, profile, table)
    print(f"policy for {args.bundle} from {profile['device']} at {length} tokens "
          f"(every layer: {', '.join(f'k={k} {ms:.1f} ms' for k, ms in table['latency_ms'].items())}):")
    for rule in table["rules"]:
        budget = f" (budget {budgets[rule['name']]:g} ms)" if rule["name"] in budgets else ""
        print(f"  {rule['name']:13} {json.dumps(rule['when']):48} -> k = {rule['ratio']}, "
              f"threshold {rule['threshold']}{budget}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-variator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="list, fetch or inspect the benchmarks")
    data.add_argument("action", choices=["list", "fetch", "inspect"])
    data.add_argument("names", nargs="*", help="benchmark names or CSV/JSONL paths (inspect)")
    data.add_argument("--examples", type=int, default=3, help="examples to print (inspect)")
    data.set_defaults(run=cmd_data)

    def add_task_arguments(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--task", default=datasets.DEFAULT_TASK,
                         help="a benchmark name or a CSV/JSONL file")
        sub.add_argument("--text-column")
        sub.add_argument("--text-pair-column")
        sub.add_argument("--label-column")
        sub.add_argument("--seed", type=int, default=0)

    finetune = commands.add_parser("finetune", help="fine-tune a classifier (the teacher)")
    add_task_arguments(finetune)
    finetune.add_argument("--out", required=True, help="checkpoint folder to write")
    finetune.add_argument("--method", choices=["full", "lora"], default="full")
    finetune.add_argument("--model", help="Hugging Face BERT folder (default: all-MiniLM-L6-v2)")
    finetune.add_argument("--epochs", type=int, default=3)
    finetune.add_argument("--batch-size", type=int, default=32)
    finetune.add_argument("--lr", type=float)
    finetune.add_argument("--max-length", type=int, default=128)
    finetune.add_argument("--max-train", type=int, help="train on a seeded subset of this size")
    finetune.set_defaults(run=cmd_finetune)

    evaluate = commands.add_parser("eval", help="accuracy, macro-F1, parameters and FLOPs")
    evaluate.add_argument("checkpoint")
    add_task_arguments(evaluate)
    evaluate.add_argument("--split", choices=list(datasets.SPLITS), default="dev")
    evaluate.set_defaults(run=cmd_eval)

    plugins = commands.add_parser("plugins", help="Variator compression plugins: train or eval")
    plugin_commands = plugins.add_subparsers(dest="plugins_command", required=True)
    plugin_train = plugin_commands.add_parser(
        "train", help="train plugins for one or several ratios on a frozen checkpoint")
    plugin_train.add_argument("checkpoint", help="task checkpoint; a backbone folder (or 'default') "
                              "with --task general pre-trains on the benchmarks' unlabelled train text")
    add_task_arguments(plugin_train)
    plugin_train.add_argument("--ratios", type=int, nargs="+", default=[2, 4, 8])
    plugin_train.add_argument("--out", required=True, help="folder for k{ratio}/ plugin sets")
    plugin_train.add_argument("--epochs", type=int, default=2)
    plugin_train.add_argument("--batch-size", type=int, default=32)
    plugin_train.add_argument("--lr", type=float)
    plugin_train.add_argument("--max-length", type=int, default=128)
    plugin_train.add_argument("--max-train", type=int)
    plugin_train.add_argument("--hidden-loss", choices=["all", "last"], default="all")
    plugin_train.add_argument("--mse-weight", type=float, default=1.0)
    plugin_train.add_argument("--ce-weight", type=float, default=1.0)
    plugin_train.add_argument("--bottleneck", type=int, default=64)
    plugin_train.add_argument("--layers", type=int, nargs="+", help="layers to plug (default all)")
    plugin_train.add_argument("--init-from", help="pre-trained plugins folder (with k{ratio}/)")
    plugin_train.set_defaults(run=cmd_plugins_train)
    plugin_eval = plugin_commands.add_parser("eval", help="accuracy and FLOPs at every ratio")
    plugin_eval.add_argument("checkpoint")
    plugin_eval.add_argument("plugins", help="folder with k{ratio}/ plugin sets")
    add_task_arguments(plugin_eval)
    plugin_eval.add_argument("--ratios", type=int, nargs="+", default=[2, 4, 8])
    plugin_eval.add_argument("--split", choices=list(datasets.SPLITS), default="dev")
    plugin_eval.add_argument("--max-length", type=int)
    plugin_eval.set_defaults(run=cmd_plugins_eval)

    slender = commands.add_parser("slender", help="COST-EFF multi-exit and slender models")
    slender_commands = slender.add_subparsers(dest="slender_command", required=True)
    slender_train = slender_commands.add_parser(
        "train", help="a teacher checkpoint -> the full-width multi-exit assistant; an assistant -> "
                      "a width-pruned (slender) multi-exit model")
    slender_train.add_argument("checkpoint", help="fine-tuned task checkpoint, or a multi-exit assistant")
    add_task_arguments(slender_train)
    slender_train.add_argument("--out", required=True)
    slender_train.add_argument("--heads", type=int, default=3, help="heads kept per layer")
    slender_train.add_argument("--neurons", type=int, default=384, help="FFN neurons kept per layer")
    slender_train.add_argument("--embedding-rank", type=int, default=64, help="word-embedding SVD rank")
    slender_train.add_argument("--prune-steps", type=int, default=3)
    slender_train.add_argument("--repr-epochs", type=int, default=1)
    slender_train.add_argument("--epochs", type=int, default=2)
    slender_train.add_argument("--batch-size", type=int, default=32)
    slender_train.add_argument("--lr", type=float)
    slender_train.add_argument("--max-length", type=int, default=128)
    slender_train.add_argument("--max-train", type=int)
    slender_train.add_argument("--temperature", type=float, default=2.0)
    slender_train.add_argument("--soft-weight", type=float, default=0.5)
    slender_train.add_argument("--exit-lr", type=float, default=1e-3, help="learning rate of the exit heads")
    slender_train.add_argument("--pooling", choices=["mean", "cls"], default="mean",
                               help="what each exit reads (assistant only; slender models keep it)")
    slender_train.set_defaults(run=cmd_slender_train)
    slender_eval = slender_commands.add_parser("eval", help="per-exit accuracy and early exit")
    slender_eval.add_argument("checkpoint")
    add_task_arguments(slender_eval)
    slender_eval.add_argument("--split", choices=list(datasets.SPLITS), default="dev")
    slender_eval.add_argument("--threshold", type=float, help="(default: the calibrated ones)")
    slender_eval.set_defaults(run=cmd_slender_eval)
    slender_calibrate = slender_commands.add_parser(
        "calibrate", help="entropy thresholds for given accuracy drops on dev, into exits.json")
    slender_calibrate.add_argument("checkpoint")
    add_task_arguments(slender_calibrate)
    slender_calibrate.add_argument("--drops", type=float, nargs="+", default=[0.5, 1.0, 2.0],
                                   help="accuracy points one may lose against running every layer")
    slender_calibrate.set_defaults(run=cmd_slender_calibrate)

    export = commands.add_parser("export", help="a checkpoint (+ plugins) -> bundle/ with model.pte, "
                                                "model.mlpackage, tokenizer, manifest.json")
    export.add_argument("checkpoint", help="task or multi-exit checkpoint; 'default': the shipped mr "
                                           "adapter and its plugins")
    export.add_argument("--plugins", help="folder with k{ratio}/ plugin sets trained on that checkpoint")
    export.add_argument("--ratios", type=int, nargs="+", help="plugin ratios to include (default: all found)")
    export.add_argument("--out", required=True, help="bundle folder (replaced atomically)")
    export.add_argument("--format", default="executorch", help="executorch[,coreml]")
    export.add_argument("--quantize", choices=["none", "int8"], default="none")
    export.add_argument("--coreml-compress", choices=["none", "int8"], default="none")
    export.add_argument("--max-length", type=int,
                        help="longest input the bundle takes (default: the checkpoint's)")
    export.add_argument("--calibration-texts", type=int, default=200,
                        help="int8: train texts to calibrate on")
    add_task_arguments(export)
    export.set_defaults(run=cmd_export)

    run = commands.add_parser("run", help="classify a text with a bundle under a device state")
    run.add_argument("bundle")
    run.add_argument("text")
    run.add_argument("--battery", type=float, default=1.0, help="battery level from 0 to 1")
    run.add_argument("--charging", action="store_true")
    run.add_argument("--low-power", action="store_true")
    run.add_argument("--thermal", default="nominal", help="nominal, fair, serious or critical")
    run.add_argument("--android-thermal", type=int,
                     help="Android THERMAL_STATUS_* (0-6) instead of --thermal")
    run.add_argument("--budget-ms", type=float, help="latency budget (uses the bundle's latency profile)")
    run.add_argument("--steps", action="store_true", help="print each method's wall time")
    run.set_defaults(run=cmd_run)

    profile = commands.add_parser("profile", help="time every method of a bundle; plots; accuracy-latency")
    profile.add_argument("bundle")
    profile.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 128])
    profile.add_argument("--repeats", type=int, default=20)
    profile.add_argument("--warmup", type=int, default=3)
    profile.add_argument("--import", dest="import_profile", help="a profile measured elsewhere (a phone)")
    profile.add_argument("--out", help="also write the profile to this JSON file")
    profile.add_argument("--no-store", action="store_true", help="leave the bundle's manifest as it is")
    profile.add_argument("--plots", help="folder for the PNG plots (default: runs/profile/<bundle>)")
    profile.add_argument("--pareto-task", help="a benchmark: accuracy vs latency over ratios x thresholds")
    profile.add_argument("--pareto-split", default="dev", choices=["dev", "test"])
    profile.add_argument("--pareto-limit", type=int, help="the first N texts only")
    profile.set_defaults(run=cmd_profile)

    calibrate = commands.add_parser("calibrate",
                                    help="the policy's ratios from a latency profile and budgets")
    calibrate.add_argument("bundle")
    calibrate.add_argument("--profile", required=True,
                           help="a profile JSON (edge-variator profile --out, or a phone)")
    calibrate.add_argument("--budget", nargs="+", default=[], metavar="RULE=MS",
                           help="latency budget per policy rule, e.g. fair=40 serious=20 critical=10")
    calibrate.add_argument("--length", type=int,
                           help="tokens the budgets hold for (default: the longest profiled)")
    calibrate.set_defaults(run=cmd_calibrate)

    demo = commands.add_parser("demo", help="the default model and task, end to end: bundle, profile, "
                                            "the runner under four device states")
    demo.add_argument("--rebuild", action="store_true", help="export the default bundle again")
    demo.add_argument("--lengths", type=int, nargs="+", default=[16, 32, 64], help="profiled lengths")
    demo.add_argument("--repeats", type=int, default=10)
    demo.add_argument("--limit", type=int, help="the first N test texts only")
    demo.add_argument("--plots", default="runs/demo", help="folder for the PNG plots")
    demo.set_defaults(run=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> None:
    from edge_variator.runtime.bundle import BundleError

    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (datasets.DataError, ModelLoadError, BundleError, ValueError, OSError) as error:
        sys.exit(f"edge-variator {args.command}: {error}")


if __name__ == "__main__":
    main()
