"""`edge-variator demo`: the default model and task end to end. The shipped bundle (or its cached or
fresh export) is profiled, then the test set runs through the runner under four device states and
over every ratio x threshold, with the latency and accuracy-latency plots."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from edge_variator import data as datasets
from edge_variator.defaults import default_bundle, demo_states
from edge_variator.profile import (
    format_pareto,
    format_profile,
    latency_table,
    measure,
    pareto_rows,
    plot_depth,
    plot_pareto,
    run_summary,
    save_profile,
)
from edge_variator.runtime.bundle import load_manifest
from edge_variator.runtime.policy import Policy, calibrate
from edge_variator.runtime.runner import BundleRunner


def run_demo(rebuild: bool = False, lengths: Sequence[int] = (16, 32, 64), repeats: int = 10,
             limit: int | None = None, plots: str | Path = "runs/demo",
             say: Callable[[str], None] = print) -> None:
    started = time.perf_counter()
    task = datasets.load_benchmark(datasets.DEFAULT_TASK)
    bundle, origin = default_bundle(rebuild)
    manifest = load_manifest(bundle)
    model = manifest["model"]
    say(f"bundle {bundle} ({origin}, {time.perf_counter() - started:.0f} s): "
        f"{manifest['backbone']['id']}, {model['layers']} layers x {model['hidden']} wide, "
        f"{model['heads']} heads, FFN {model['intermediate']}, ratios "
        f"{sorted(map(int, manifest['ratios']))}, {len(manifest['exits']['after_layers'])} exits, "
        f"model.pte {manifest['files']['executorch']['bytes'] / 1e6:.1f} MB")
    profile = measure(bundle, lengths, repeats=repeats)
    save_profile(bundle, profile)
    say(format_profile(profile, manifest))
    rows = task.test[:limit or None]
    texts, labels = [e.text for e in rows], [e.label for e in rows]
    # This host's profile makes the manifest's policy length-aware: a rule's ratio is used only at
    # lengths where it is faster than the smaller ones (no budgets: the rules' ratios stay).
    table = calibrate(manifest["policy"], latency_table(profile, manifest), {}, max(lengths))
    runner = BundleRunner(bundle, Policy.from_manifest(manifest, table))
    say(f"{task.name} test ({len(texts):,} texts) through the runner, one text at a time, the policy "
        "following each text's length on this host's profile:")
    say("device state              rule          k wanted  texts per k  threshold        accuracy  mean ms"
        "  mean exit layer")
    for name, state in demo_states():
        wanted = runner.policy.decide(state)
        row = run_summary(runner, texts, labels, state=state)
        threshold = "none" if row["threshold"] is None else f"{row['threshold_name']} {row['threshold']:.3f}"
        per_ratio = " ".join(f"{k}:{n}" for k, n in row["ratios"].items())
        wanted_ratio = next(rule["ratio"] for rule in table["rules"] if rule["name"] == wanted.rule)
        say(f"{name:25} {wanted.rule:13} {wanted_ratio:8}  {per_ratio:11}  {threshold:15} "
            f"{100 * row['accuracy']:8.2f}% {row['mean_ms']:8.2f} {row['mean_exit_layer']:10.2f}")
    plots = Path(plots)
    pareto = pareto_rows(runner, texts, labels)
    say(format_pareto(pareto, f"{task.name} test ({len(texts):,} texts)"))
    depth_png = plot_depth(profile, manifest, max(lengths), plots / "latency_vs_depth.png")
    pareto_png = plot_pareto(pareto, plots / "pareto.png", f"{task.name} test: {manifest['backbone']['id']}")
    say(f"plots: {depth_png}, {pareto_png}")
    say(f"demo finished in {time.perf_counter() - started:.0f} s")
