"""Latency of a bundle's methods on a device: measure, store, import, plot.

A profile is one JSON format whoever measured it (this host through `executorch.runtime`, or the
Android and iOS demos on a phone), a device fact kept apart from the exported manifest, in the
bundle's profiles/<runtime>/<device>.json (docs/BUNDLE.md):

    {"format": "edge-variator-latency-profile", "version": 2,
     "runtime": "executorch", "runtime_version": "executorch 1.4.0 (xnnpack)",
     "device": "Pixel 8 (Tensor G3)",
     "program_sha256": "...",                              # files.<runtime>.sha256 of what was timed
     "warmup": 3, "repeats": 20,
     "methods": {"layer_0_k4": {"64": {"median_ms": 1.9, "p90_ms": 2.2}, ...}, ...}}

The policy calibrated from a profile is its own file beside it (<device>.policy.json).

From it come the latency of a whole run at each ratio and depth (`depth_latency`), the
`latency_ms` the policy's budget uses, and two plots: latency against depth per ratio, and the
accuracy-latency Pareto curve over ratios and exit thresholds measured through the runner.
"""

from __future__ import annotations

import io
import json
import platform
import re
import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from importlib.metadata import version
from pathlib import Path

import jsonschema
import torch

from edge_variator.files import write_bytes, write_json
from edge_variator.runtime.bundle import PROFILES, SCHEMA_PATH, load_manifest, open_program
from edge_variator.timing import interleaved_ms, spread

FORMAT = "edge-variator-latency-profile"
POLICY_FORMAT = "edge-variator-calibrated-policy"
RUNTIMES = ("executorch", "coreml")


class ProfileError(ValueError):
    """A latency profile that is malformed or does not belong to this bundle."""


def method_inputs(manifest: Mapping, name: str, length: int) -> list[torch.Tensor]:
    """Inputs of `name` at `length` tokens, all real (no padding: the worst case for that shape)."""
    ids = torch.full((1, length), 1000, dtype=torch.long)
    if name == "embed":
        return [ids]
    return [torch.randn(1, length, manifest["model"]["hidden"]), torch.ones_like(ids)]


def check_lengths(manifest: Mapping, lengths: Sequence[int]) -> None:
    """Raise ProfileError unless every length is one the bundle's methods take."""
    limit = manifest["model"]
    bad = [n for n in lengths
           if n % limit["pad_multiple"] or not limit["min_length"] <= n <= limit["max_length"]]
    if bad:
        raise ProfileError(f"lengths {bad} are not multiples of {limit['pad_multiple']} from "
                           f"{limit['min_length']} to {limit['max_length']}")


def measure(bundle_dir: str | Path, lengths: Sequence[int], repeats: int = 20, warmup: int = 3,
            methods: Sequence[str] | None = None) -> dict:
    """Time every method (or `methods`) at each length in the ExecuTorch runtime on this host.

    Methods are called in turn within each repeat, so a slow moment of a shared machine falls on
    all of them alike rather than on one.
    """
    manifest = load_manifest(bundle_dir)
    check_lengths(manifest, lengths)
    if repeats < 1 or warmup < 0:
        raise ProfileError("repeats must be at least 1 and warmup at least 0")
    names = list(methods or manifest["methods"])
    program = open_program(Path(bundle_dir) / manifest["files"]["executorch"]["path"])
    loaded = {name: program.load_method(name) for name in names}
    timings: dict[str, dict[str, dict]] = {name: {} for name in names}
    for length in lengths:
        calls = {name: partial(loaded[name].execute, method_inputs(manifest, name, length)) for name in names}
        for name, values in interleaved_ms(calls, repeats, warmup).items():
            summary = spread(values)
            timings[name][str(length)] = {"median_ms": summary["median_ms"], "p90_ms": summary["p90_ms"]}
    return {"format": FORMAT, "version": 2, "runtime": "executorch",
            "runtime_version": f"executorch {version('executorch')} (Python, XNNPACK)",
            "device": f"{platform.node()} ({platform.machine()}, {torch.get_num_threads()} threads)",
            "program_sha256": manifest["files"]["executorch"]["sha256"], "warmup": warmup, "repeats": repeats,
            "methods": timings}


def _follows(document: object, definition: str, what: str, form: str, version: int) -> None:
    """Raise ProfileError unless `document` is of this format and version and follows the schema."""
    known = isinstance(document, Mapping) and document.get("format") == form
    if known and document.get("version") != version:
        raise ProfileError(f"{what} of version {document.get('version')!r} is not version {version} "
                           "(an older edge-variator or app wrote it): make it again")
    schema = json.loads(SCHEMA_PATH.read_text())
    try:
        jsonschema.validate(document, {"$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"})
    except jsonschema.ValidationError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ProfileError(f"not {what} at {where}: {error.message}") from None


def check_program(document: Mapping, manifest: Mapping, runtime: str, what: str) -> None:
    """Raise ProfileError unless `document` was made on this bundle's `runtime` program."""
    if document["runtime"] != runtime:
        raise ProfileError(f"the {what} is for the bundle's {document['runtime']} program, "
                           f"not its {runtime} one")
    program = manifest["files"].get(runtime)
    if program is None:
        raise ProfileError(f"the bundle has no {runtime} program")
    if document["program_sha256"] != program["sha256"]:
        raise ProfileError(f"the {what} was made on another {program['path']} (program_sha256 differs); "
                           "profile this bundle")


def check_profile(profile: Mapping, manifest: Mapping | None = None, runtime: str = "executorch") -> None:
    """Raise ProfileError unless `profile` follows the format (the manifest schema's latency_profile)
    and, given a manifest, covers that bundle's methods and timed its `runtime` program."""
    _follows(profile, "latency_profile", "a latency profile", FORMAT, 2)
    if manifest is not None:
        check_program(profile, manifest, runtime, "latency profile")
        missing = sorted(set(manifest["methods"]) - set(profile["methods"]))
        if missing:
            raise ProfileError(f"the profile lacks methods this bundle has: {missing[:5]}")


def read_json(path: str | Path, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ProfileError(f"cannot read the {what} {path}: {error}") from None


def load_profile(path: str | Path, manifest: Mapping | None = None, runtime: str = "executorch") -> dict:
    """A profile file (from `measure` or from a phone), checked."""
    profile = read_json(path, "latency profile")
    check_profile(profile, manifest, runtime)
    return profile


def device_slug(device: str) -> str:
    """A device name as a file name: lower case, every run of other characters than a-z0-9 one '-'."""
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    return slug or "device"


def profile_path(bundle_dir: str | Path, runtime: str, device: str) -> Path:
    """Where a bundle keeps the profile of `runtime` on `device`; its calibrated policy is beside it."""
    return Path(bundle_dir) / PROFILES / runtime / f"{device_slug(device)}.json"


def save_profile(bundle_dir: str | Path, profile: Mapping) -> Path:
    """Write a checked profile into the bundle's profiles/ (the manifest is left as exported)."""
    check_profile(profile, load_manifest(bundle_dir, check_program=False), profile["runtime"])
    path = profile_path(bundle_dir, profile["runtime"], profile["device"])
    write_json(path, profile)
    return path


def check_calibrated_policy(document: Mapping, manifest: Mapping, runtime: str = "executorch") -> None:
    """Raise ProfileError (or PolicyError) unless `document` is a calibrated policy of this bundle's
    `runtime` program that its ratios and thresholds can carry out."""
    from edge_variator.runtime.policy import check_policy

    _follows(document, "calibrated_policy", "a calibrated policy", POLICY_FORMAT, 2)
    check_program(document, manifest, runtime, "calibrated policy")
    check_policy(document["policy"], [int(k) for k in manifest["ratios"]], manifest["exits"]["thresholds"])


def load_calibrated_policy(path: str | Path, manifest: Mapping, runtime: str = "executorch") -> dict:
    """The table of a calibrated policy file, checked against the bundle."""
    document = read_json(path, "calibrated policy")
    check_calibrated_policy(document, manifest, runtime)
    return document["policy"]


def profiled_lengths(profile: Mapping) -> list[int]:
    """The lengths at which every method was timed."""
    per_method = [set(map(int, rows)) for rows in profile["methods"].values()]
    return sorted(set.intersection(*per_method))


def depth_latency(profile: Mapping, manifest: Mapping, ratio: int, length: int) -> list[float]:
    """Median ms of a run that stops after layer 1, 2, ..., L at this ratio: embed, the layers, and
    every exit the runner asks on the way."""
    if str(length) not in profile["methods"]["embed"]:
        raise ProfileError(f"no timings at {length} tokens; profiled: {profiled_lengths(profile)}")

    def ms(name: str) -> float:
        return profile["methods"][name][str(length)]["median_ms"]

    exits, total, cumulative = set(manifest["exits"]["after_layers"]), ms("embed"), []
    for index, name in enumerate(manifest["ratios"][str(ratio)]):
        total += ms(name) + (ms(f"exit_{index}") if index in exits else 0.0)
        cumulative.append(total)
    return cumulative


def ratio_latency(profile: Mapping, manifest: Mapping, length: int) -> dict[str, float]:
    """Every layer at each ratio at `length` tokens."""
    return {k: round(depth_latency(profile, manifest, int(k), length)[-1], 3) for k in manifest["ratios"]}


def latency_table(profile: Mapping, manifest: Mapping) -> dict[str, dict[str, float]]:
    """ratio_latency at every profiled length: the policy's `latency_ms`, from which it picks the
    ratio for a text's length and checks a budget."""
    return {str(n): ratio_latency(profile, manifest, n) for n in profiled_lengths(profile)}


def plot_depth(profile: Mapping, manifest: Mapping, length: int, out: str | Path) -> Path:
    """PNG: median latency of a run stopping after each layer, one line per ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for k in sorted(manifest["ratios"], key=int):
        values = depth_latency(profile, manifest, int(k), length)
        axes.plot(range(1, len(values) + 1), values, marker="o", label=f"k = {k}")
    axes.set(xlabel="exit after layer", ylabel="latency (ms, median)", ylim=(0, None),
             title=f"{manifest['backbone']['id']}: {length} tokens, {profile['device']}")
    axes.legend()
    axes.grid(alpha=0.3)
    return save_png(figure, out)


def plot_pareto(rows: Sequence[Mapping], out: str | Path, title: str) -> Path:
    """PNG: accuracy against mean latency, a point per (ratio, threshold), the frontier drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for k in sorted({row["ratio"] for row in rows}):
        points = [row for row in rows if row["ratio"] == k]
        axes.scatter([p["mean_ms"] for p in points], [100 * p["accuracy"] for p in points], label=f"k = {k}")
    frontier = pareto_front(rows)
    axes.plot([p["mean_ms"] for p in frontier], [100 * p["accuracy"] for p in frontier], color="gray",
              linestyle="--", label="Pareto front")
    axes.set(xlabel="mean latency per text (ms)", ylabel="accuracy (%)", title=title)
    axes.legend()
    axes.grid(alpha=0.3)
    return save_png(figure, out)


def pareto_front(rows: Sequence[Mapping]) -> list[Mapping]:
    """The rows no other row beats on both accuracy and latency, fastest first."""
    front, best = [], -1.0
    for row in sorted(rows, key=lambda r: (r["mean_ms"], -r["accuracy"])):
        if row["accuracy"] > best:
            front.append(row)
            best = row["accuracy"]
    return front


def save_png(figure, out: str | Path) -> Path:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    write_bytes(out, buffer.getvalue())
    return Path(out)


def run_summary(runner, texts: Sequence[str], labels: Sequence[int], decision=None, state=None) -> dict:
    """Accuracy, mean latency, mean exit layer and texts per ratio of `texts` run one by one, under
    one decision, or under the runner's policy for `state` at each text's own length."""
    results = [runner.run(text, state=state, decision=decision) for text in texts]
    ratios = Counter(r.ratio for r in results)
    return {"ratio": decision.ratio if decision else ratios.most_common(1)[0][0],
            "ratios": {str(k): ratios[k] for k in sorted(ratios)},
            "threshold_name": (decision or results[0].decision).threshold_name or "none",
            "threshold": (decision or results[0].decision).threshold,
            "accuracy": sum(r.label_index == y for r, y in zip(results, labels, strict=True)) / len(texts),
            "mean_ms": statistics.fmean(r.total_ms for r in results),
            "mean_exit_layer": statistics.fmean(r.exit_layer for r in results)}


def pareto_rows(runner, texts: Sequence[str], labels: Sequence[int], ratios: Sequence[int] | None = None,
                thresholds: Mapping[str, float | None] | None = None) -> list[dict]:
    """run_summary for every ratio x threshold (None: every layer runs, that ratio's no-exit baseline)."""
    from edge_variator.runtime.policy import Decision

    manifest = runner.manifest
    ratios = ratios or sorted(int(k) for k in manifest["ratios"])
    thresholds = thresholds or {"none": None, **manifest["exits"]["thresholds"]}
    return [run_summary(runner, texts, labels,
                        Decision(ratio, threshold, None if threshold is None else name, "pareto", False))
            for ratio in ratios for name, threshold in thresholds.items()]


def calibrate_bundle(bundle_dir: str | Path, profile_file: str | Path, budgets: Mapping[str, float],
                     length: int | None = None, runtime: str = "executorch") -> tuple[dict, int, Path]:
    """The bundle's policy with each budgeted rule's ratio the largest-accuracy one that fits its
    budget at `length` tokens (default: the longest profiled) on the profiled device, written as its
    own file into the bundle's profiles/, beside the profile, atomically. A profile of another
    runtime or program is refused. Returns the table, the length and the file."""
    from edge_variator.runtime.policy import Policy, calibrate

    manifest = load_manifest(bundle_dir)
    profile = load_profile(profile_file, manifest, runtime)
    length = length or max(profiled_lengths(profile))
    ratios = sorted(int(k) for k in manifest["ratios"])
    table = calibrate(manifest["policy"], latency_table(profile, manifest), budgets, length)
    Policy(table, ratios, manifest["exits"]["thresholds"])  # refuses a table the bundle cannot carry out
    document = {"format": POLICY_FORMAT, "version": 2, "runtime": runtime, "device": profile["device"],
                "program_sha256": profile["program_sha256"], "length": length,
                "budgets": {name: float(ms) for name, ms in budgets.items()}, "policy": table}
    check_calibrated_policy(document, manifest, runtime)
    out = profile_path(bundle_dir, runtime, profile["device"]).with_suffix(".policy.json")
    write_json(out, document)
    return table, length, out


def format_profile(profile: Mapping, manifest: Mapping) -> str:
    """Median (p90) ms per method and length, then a whole run at every ratio."""
    lengths = profiled_lengths(profile)
    lines = [f"{profile['device']}, {profile.get('runtime', '')}: median (p90) ms per method",
             "method        " + "".join(f"{n:>19}" for n in lengths)]
    for name, rows in profile["methods"].items():
        cells = (f"{rows[str(n)]['median_ms']:9.3f} ({rows[str(n)]['p90_ms']:7.3f})" for n in lengths)
        lines.append(f"{name:14}" + "".join(cells))
    lines.append("every layer (embed + layers + exits asked on the way), median ms:")
    for k in sorted(manifest["ratios"], key=int):
        lines.append(f"k = {k:<10}" + "".join(f"{depth_latency(profile, manifest, int(k), n)[-1]:19.2f}"
                                              for n in lengths))
    return "\n".join(lines)


def format_pareto(rows: Sequence[Mapping], name: str) -> str:
    """pareto_rows as a table, each row's mean latency against k = 1 with every layer run."""
    baseline = next(r for r in rows if r["ratio"] == 1 and r["threshold"] is None)
    lines = [f"{name}: ratio x exit threshold through the runner (baseline: k = 1, every layer)",
             " k  threshold        accuracy   mean ms  vs base  mean exit layer"]
    for row in rows:
        threshold = "none" if row["threshold"] is None else f"{row['threshold_name']} {row['threshold']:.3f}"
        lines.append(f"{row['ratio']:2}  {threshold:15} {100 * row['accuracy']:8.2f}% {row['mean_ms']:9.2f} "
                     f"{row['mean_ms'] / baseline['mean_ms']:8.3f} {row['mean_exit_layer']:10.2f}")
    return "\n".join(lines)


def format_policy(bundle_dir: str | Path, table: Mapping, length: int, budgets: Mapping[str, float]) -> str:
    """A calibrated policy table, rule by rule, with the budgets it was fitted to."""
    lines = [f"policy for {bundle_dir}, budgets fitted at {length} tokens; every layer, median ms:"]
    for n, row in sorted(table["latency_ms"].items(), key=lambda item: int(item[0])):
        fastest = min(row, key=lambda k: (row[k], int(k)))
        lines.append(f"  {n:>4} tokens: " + ", ".join(f"k={k} {ms:.1f}" for k, ms in row.items())
                     + f" (fastest k = {fastest})")
    for rule in table["rules"]:
        budget = f" (budget {budgets[rule['name']]:g} ms)" if rule["name"] in budgets else ""
        lines.append(f"  {rule['name']:13} {json.dumps(rule['when']):48} -> k = {rule['ratio']}, "
                     f"threshold {rule['threshold']}{budget}")
    lines.append("  (at a length where a smaller ratio is as fast, the rule's ratio is lowered to it)")
    return "\n".join(lines)


def profile_bundle(bundle_dir: str | Path, lengths: Sequence[int], repeats: int = 20, warmup: int = 3,
                   imported: str | Path | None = None, out: str | Path | None = None, store: bool = True,
                   plots: str | Path | None = None, pareto_task: str | None = None, pareto_split: str = "dev",
                   pareto_limit: int | None = None, say: Callable[[str], None] = print) -> dict:
    """`edge-variator profile`: measure the bundle here (or read a profile `imported` from a phone),
    print it, write it to `out`, store it in the bundle's profiles/, plot latency against depth, and with
    `pareto_task` run that benchmark over every ratio x threshold. Returns the profile."""
    from edge_variator.data import load_benchmark
    from edge_variator.runtime.runner import BundleRunner

    manifest = load_manifest(bundle_dir)
    if imported:  # from a phone: the ExecuTorch or the Core ML program, checked against the one it names
        profile = read_json(imported, "latency profile")
        named = profile.get("runtime") if isinstance(profile, dict) else None
        check_profile(profile, manifest, named if named in RUNTIMES else "executorch")
    else:
        profile = measure(bundle_dir, lengths, repeats, warmup)
    say(format_profile(profile, manifest))
    if out:
        write_json(out, profile)
        say(f"profile: {out}")
    if store:
        say(f"stored in {save_profile(bundle_dir, profile)}")
    plots = Path(plots or Path("runs") / "profile" / Path(bundle_dir).resolve().name)
    length = max(profiled_lengths(profile))
    say(f"plot: {plot_depth(profile, manifest, length, plots / 'latency_vs_depth.png')}")
    if pareto_task:
        task = load_benchmark(pareto_task)
        rows = getattr(task, pareto_split)[:pareto_limit or None]
        pareto = pareto_rows(BundleRunner(bundle_dir), [e.text for e in rows], [e.label for e in rows])
        say(format_pareto(pareto, f"{task.name} {pareto_split} ({len(rows):,} texts)"))
        title = f"{task.name} {pareto_split}: {manifest['backbone']['id']}"
        say(f"plot: {plot_pareto(pareto, plots / 'pareto.png', title)}")
    return profile
