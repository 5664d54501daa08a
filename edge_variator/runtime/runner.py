"""Run a bundle the way a phone does: tokenize, `embed`, then layer by layer at the policy's ratio,
asking the exit after each layer and stopping at the first confident one.

`BundleRunner` calls the methods of `model.pte` in the ExecuTorch runtime; the reference it must
agree with, the same loop over the PyTorch pieces, is export/reference.py's `TorchRunner`. Per-step
wall times come from the host clock (the PyPI ExecuTorch has no event tracer). Nothing here imports
the training stack (transformers, the trainers, coremltools): an app server embeds this alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edge_variator.runtime.bundle import load_manifest, open_program
from edge_variator.runtime.confidence import uncertainty
from edge_variator.runtime.policy import Decision, DeviceState, Policy
from edge_variator.tokenizer import TextError, Tokenizer


@dataclass
class RunResult:
    label: str
    label_index: int
    probabilities: list[float]
    exit_layer: int  # 1-based: how many layers ran
    layers: int  # how many the model has
    ratio: int
    threshold: float | None
    uncertainty: float
    truncated: bool  # the text was longer than the maximum and lost its tail
    tokens: int  # the padded length it ran at
    decision: Decision  # the policy's, for this state at this length (or the one given)
    step_ms: dict[str, float] = field(default_factory=dict)  # method -> wall time, in call order

    @property
    def total_ms(self) -> float:
        return sum(self.step_ms.values())


def as_text(text: str | bytes) -> str:
    """Text from an app may come as bytes: decode it as UTF-8 or say why not."""
    if isinstance(text, bytes):
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as error:
            bad = text[error.start:error.start + 4]
            raise TextError(f"the text is not valid UTF-8 (at byte {error.start}: {bad!r})") from None
    return text


class Runner:
    """The early-exit loop over named methods; subclasses say how a method is called."""

    def __init__(self, manifest: Mapping, tokenizer: Tokenizer, policy: Policy | None = None):
        self.manifest, self.tokenizer = manifest, tokenizer
        self.policy = policy or Policy.from_manifest(manifest)
        self.labels = manifest["model"]["labels"]
        self.exits_after = set(manifest["exits"]["after_layers"])
        self.criterion = manifest["exits"]["criterion"]

    def method(self, name: str) -> Callable[[list[torch.Tensor]], torch.Tensor]:
        raise NotImplementedError

    def run(self, text: str | bytes, state: DeviceState | None = None,
            decision: Decision | None = None) -> RunResult:
        """Classify one text under the policy's decision for `state` at the text's padded length (or
        a decision given outright)."""
        text = as_text(text)
        if isinstance(text, str) and not text.strip():
            raise TextError("empty text: there is nothing to classify")
        batch = self.tokenizer([text])
        ids, mask = batch.input_ids, batch.attention_mask
        if decision is None:
            state = state if state is not None else DeviceState(battery=1.0)
            decision = self.policy.decide(state, length=ids.shape[1])
        threshold = -1.0 if decision.threshold is None else decision.threshold  # None: never exit early
        steps: dict[str, float] = {}

        def call(name: str, inputs: list[torch.Tensor]) -> torch.Tensor:
            began = time.perf_counter()
            output = self.method(name)(inputs)
            steps[name] = 1000 * (time.perf_counter() - began)
            return output

        hidden = call("embed", [ids])
        layer_methods = self.manifest["ratios"][str(decision.ratio)]
        for index, name in enumerate(layer_methods):
            hidden = call(name, [hidden, mask])
            if index not in self.exits_after:
                continue
            logits = call(f"exit_{index}", [hidden, mask])[0]
            score = uncertainty(logits, self.criterion).item()
            if score < threshold or index == len(layer_methods) - 1:
                label = int(logits.argmax())
                return RunResult(self.labels[label], label, torch.softmax(logits.float(), -1).tolist(),
                                 index + 1, len(layer_methods), decision.ratio, decision.threshold, score,
                                 batch.truncated[0], ids.shape[1], decision, steps)
        raise AssertionError("unreachable: the bundle always has an exit after its last layer")


class BundleRunner(Runner):
    """A bundle's model.pte in the ExecuTorch runtime; methods load on first use."""

    def __init__(self, bundle_dir: str | Path, policy: Policy | None = None):
        bundle_dir = Path(bundle_dir)
        manifest = load_manifest(bundle_dir)
        tokenizer = Tokenizer(bundle_dir / "tokenizer", manifest["model"]["max_length"],
                              max_positions=manifest["model"]["max_length"])
        super().__init__(manifest, tokenizer, policy)
        self.bundle_dir = bundle_dir
        self.program = open_program(bundle_dir / manifest["files"]["executorch"]["path"])
        self.loaded: dict[str, object] = {}

    def preload(self, ratio: int) -> None:
        """Load every method a run at `ratio` calls, so that no text pays for loading one."""
        for name in ["embed", *self.manifest["ratios"][str(ratio)], *(f"exit_{i}" for i in self.exits_after)]:
            self.method(name)

    def method(self, name: str) -> Callable[[list[torch.Tensor]], torch.Tensor]:
        if name not in self.loaded:
            self.loaded[name] = self.program.load_method(name)
        executable = self.loaded[name]
        return lambda inputs: executable.execute(inputs)[0]


class BatchRun:
    """`edge-variator run`: a bundle loaded once, and every method the policy may call for `state`
    at any length with it (that time is `load_ms`, apart), then any number of texts, each timed warm
    and run at the policy's decision for its own padded length."""

    def __init__(self, bundle_dir: str | Path, state: DeviceState, calibrated: str | Path | None = None):
        from edge_variator.profile import load_calibrated_policy

        began = time.perf_counter()
        self.runner = BundleRunner(bundle_dir)  # reads and checks the bundle once
        if calibrated:
            manifest = self.runner.manifest
            self.runner.policy = Policy.from_manifest(manifest, load_calibrated_policy(calibrated, manifest))
        self.state, policy = state, self.runner.policy
        lengths = [None, *map(int, policy.table.get("latency_ms") or {})]
        for ratio in {policy.decide(state, length).ratio for length in lengths}:
            self.runner.preload(ratio)
        self.load_ms = 1000 * (time.perf_counter() - began)
        self.warm_ms: list[float] = []
        self.errors: list[str] = []
        self.ratios: dict[str, int] = {}  # texts run at each ratio

    def run(self, texts: Iterable[str | bytes]) -> Iterator[tuple[int, RunResult | str, float]]:
        """(index, result or the reason it was refused, wall ms with tokenizing) per text, as they come."""
        for index, text in enumerate(texts):
            began = time.perf_counter()
            try:
                result: RunResult | str = self.runner.run(text, self.state)
            except TextError as error:
                result = f"text {index}: {error}"
                self.errors.append(result)
            ms = 1000 * (time.perf_counter() - began)
            if isinstance(result, RunResult):
                self.warm_ms.append(ms)
                self.ratios[str(result.ratio)] = self.ratios.get(str(result.ratio), 0) + 1
            yield index, result, ms

    def record(self, index: int, result: RunResult | str, ms: float, steps: bool = False) -> dict:
        """One JSON line of `run`."""
        if isinstance(result, str):
            return {"index": index, "error": result}
        record = {"index": index, "label": result.label,
                  "probabilities": dict(zip(self.runner.labels, [round(p, 6) for p in result.probabilities],
                                            strict=True)),
                  "exit_layer": result.exit_layer, "layers": result.layers, "ratio": result.ratio,
                  "uncertainty": round(result.uncertainty, 6), "tokens": result.tokens,
                  "truncated": result.truncated, "ms": round(ms, 3)}
        if steps:
            record["steps_ms"] = {name: round(value, 3) for name, value in result.step_ms.items()}
        return record

    def summary(self) -> dict:
        """The last JSON line of `run`: the rule, texts per ratio, the load and the warm latencies."""
        warm = sorted(self.warm_ms)

        def quantile(q: float) -> float | None:
            return round(warm[min(len(warm) - 1, int(q * len(warm)))], 3) if warm else None

        return {"summary": {"texts": len(warm) + len(self.errors), "classified": len(warm),
                            "refused": len(self.errors), "rule": self.runner.policy.active_rule,
                            "ratios": dict(sorted(self.ratios.items(), key=lambda item: int(item[0]))),
                            "load_ms": round(self.load_ms, 3), "warm_ms_median": quantile(0.5),
                            "warm_ms_p90": quantile(0.9)}}


def format_run(state: DeviceState, result: RunResult, labels: list[str], steps: bool = False) -> str:
    """What `edge-variator run` prints: the device state, the policy's decision and the result."""
    decision = result.decision
    threshold = "none (every layer)" if decision.threshold is None else (
        f"{decision.threshold_name} = {decision.threshold:.4f}")
    probabilities = ", ".join(f"{label} {p:.3f}"
                              for label, p in zip(labels, result.probabilities, strict=True))
    lines = [f"device: battery {state.battery:.0%}{' charging' if state.charging else ''}"
             f"{' low-power' if state.low_power else ''}, thermal {state.thermal}"
             f"{f', budget {state.budget_ms:g} ms' if state.budget_ms else ''}",
             f"policy: rule {decision.rule!r} -> ratio k = {decision.ratio}, exit threshold {threshold}"
             f"{' (lowered: no faster at this length)' if decision.length_applied else ''}"
             f"{' (raised by the latency budget)' if decision.budget_applied else ''}",
             f"result: {result.label} ({probabilities}), exit after layer {result.exit_layer} of "
             f"{result.layers}, {result.tokens} tokens{' (truncated)' if result.truncated else ''}, "
             f"{result.total_ms:.1f} ms"]
    lines += [f"  {name:12} {ms:7.2f} ms" for name, ms in result.step_ms.items()] if steps else []
    return "\n".join(lines)


def format_summary(summary: dict) -> str:
    """The last line `run --format text` prints."""
    warm = "" if summary["warm_ms_median"] is None else (
        f"; warm per text: median {summary['warm_ms_median']:.2f} ms, p90 {summary['warm_ms_p90']:.2f} ms")
    return (f"{summary['classified']} of {summary['texts']} texts classified; bundle and methods loaded in "
            f"{summary['load_ms']:.0f} ms{warm}")
