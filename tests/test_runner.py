"""The runner over a real tiny bundle in the ExecuTorch runtime, against the PyTorch pieces and the
batched exit decisions of exits.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import RUNNER_TEXTS as TEXTS
from conftest import tiny_model

from edge_variator.exits import exit_decisions, uncertainty
from edge_variator.export.reference import TorchRunner
from edge_variator.plugins import set_ratio
from edge_variator.runtime.bundle import load_manifest
from edge_variator.runtime.policy import Decision, DeviceState, DeviceStateError, default_policy
from edge_variator.runtime.runner import BundleRunner, Runner
from edge_variator.tokenizer import TextError

EXIT_VECTORS = json.loads((Path(__file__).parent / "vectors" / "exits.json").read_text())


def decision(ratio: int, threshold: float | None) -> Decision:
    return Decision(ratio, threshold, None if threshold is None else "drop_1", "test", False)


@pytest.mark.parametrize("ratio", [1, 2])
def test_bundle_runner_makes_the_decisions_of_the_batched_pytorch_model(tiny_bundle, tiny_tokenizer,
                                                                         tiny_threshold, ratio):
    runner = BundleRunner(tiny_bundle)
    model = tiny_model()
    set_ratio(model.encoder, ratio)
    batch = tiny_tokenizer(TEXTS)
    with torch.no_grad():
        layers, labels = exit_decisions(model(batch.input_ids, batch.attention_mask), tiny_threshold)
    results = [runner.run(text, decision=decision(ratio, tiny_threshold)) for text in TEXTS]
    assert [r.exit_layer for r in results] == layers.tolist()
    assert [r.label_index for r in results] == labels.tolist()
    assert 0 < sum(r.exit_layer == 1 for r in results) < len(TEXTS)  # the threshold splits the texts


def test_bundle_runner_equals_the_torch_runner_under_every_device_state(tiny_bundle, tiny_tokenizer):
    bundle = BundleRunner(tiny_bundle)
    reference = TorchRunner(tiny_model(), tiny_tokenizer, load_manifest(tiny_bundle))
    states = [DeviceState(battery=1.0), DeviceState(battery=0.1),
              DeviceState(battery=0.9, thermal="critical")]
    for state in states:
        for text in TEXTS[:8]:
            got, expected = bundle.run(text, state), reference.run(text, state)
            assert (got.ratio, got.exit_layer, got.label) == (
                expected.ratio, expected.exit_layer, expected.label)
            torch.testing.assert_close(torch.tensor(got.probabilities), torch.tensor(expected.probabilities),
                                       atol=1e-4, rtol=1e-4)
    assert {bundle.run(TEXTS[0], state).ratio for state in states} == {1, 2}


def test_run_result_reports_the_steps_it_took(tiny_bundle):
    result = BundleRunner(tiny_bundle).run(TEXTS[0], decision=decision(2, None))
    assert result.exit_layer == result.layers == 2
    assert list(result.step_ms) == ["embed", "layer_0_k2", "exit_0", "layer_1_k2", "exit_1"]
    assert result.total_ms > 0 and result.tokens == 16 and not result.truncated
    assert sum(result.probabilities) == pytest.approx(1.0, abs=1e-5)
    assert result.label in ("no", "yes")


def test_an_eager_threshold_stops_after_the_first_layer(tiny_bundle):
    result = BundleRunner(tiny_bundle).run(TEXTS[0], decision=decision(1, 10.0))
    assert result.exit_layer == 1 and "layer_1_k1" not in result.step_ms


def test_text_past_the_maximum_is_truncated_and_flagged(tiny_bundle):
    result = BundleRunner(tiny_bundle).run("word " * 500)
    assert result.truncated and result.tokens == 64


def test_bad_input_raises_typed_errors(tiny_bundle):
    runner = BundleRunner(tiny_bundle)
    with pytest.raises(TextError, match="empty"):
        runner.run("   ")
    with pytest.raises(TextError, match="UTF-8"):
        runner.run(b"caf\xe9 au lait")
    assert runner.run("caf\u00e9 au lait".encode()).label in ("no", "yes")
    with pytest.raises(DeviceStateError, match="battery"):
        runner.run("fine", DeviceState(battery=float("nan")))


class LogitsRunner(Runner):
    """The runner's loop with each exit answering given logits: what the Kotlin and Swift ports check."""

    def __init__(self, run: dict, tokenizer):
        layers = [f"layer_{i}_k1" for i in range(run["layers"])]
        manifest = {"model": {"labels": [str(i) for i in range(len(run["logits"][0]))]},
                    "exits": {"after_layers": run["after_layers"], "criterion": run["criterion"],
                              "thresholds": {}},
                    "ratios": {"1": layers}, "policy": default_policy([1], {})}
        super().__init__(manifest, tokenizer)
        self.logits = dict(zip(run["after_layers"], run["logits"], strict=True))

    def method(self, name):
        if name.startswith("exit_"):
            return lambda inputs: torch.tensor([self.logits[int(name[5:])]], dtype=torch.float64)
        return lambda inputs: inputs[0]


@pytest.mark.parametrize("run", EXIT_VECTORS["runs"], ids=lambda run: f"{run['criterion']}: {run['name']}")
def test_the_runner_loop_stops_where_the_shared_exit_vectors_say(run, tiny_tokenizer):
    result = LogitsRunner(run, tiny_tokenizer).run("a text", decision=decision(1, run["threshold"]))
    assert (result.exit_layer, result.label_index) == (run["expect"]["exit_layer"], run["expect"]["label"])
    assert result.uncertainty == pytest.approx(run["expect"]["score"], abs=1e-12)


@pytest.mark.parametrize("case", EXIT_VECTORS["scores"],
                         ids=lambda case: f"{case['criterion']} {case['logits'][:3]}")
def test_uncertainty_is_what_the_shared_exit_vectors_say(case):
    logits = torch.tensor(case["logits"], dtype=torch.float64)
    assert uncertainty(logits, case["criterion"]).item() == pytest.approx(case["score"], abs=1e-12)
    assert int(logits.argmax()) == case["label"]


@pytest.mark.slow
def test_the_default_bundle_decides_like_pytorch_on_the_mr_dev_set():
    """Every dev text under every demo state: same exit layer and label as the PyTorch pieces."""
    from edge_variator.data import load_benchmark
    from edge_variator.defaults import default_bundle, default_checkpoint, demo_states
    from edge_variator.export.bundle import load_model

    bundle, _ = default_bundle()
    runner = BundleRunner(bundle)
    reference = TorchRunner(load_model(*default_checkpoint())[0], runner.tokenizer, runner.manifest)
    texts = [e.text for e in load_benchmark("mr").dev]
    for _, state in demo_states():
        decision = runner.policy.decide(state)
        differing = []
        for text in texts:
            got, expected = runner.run(text, decision=decision), reference.run(text, decision=decision)
            # calibration puts each threshold halfway between two dev uncertainties: no tie to break
            if (got.exit_layer, got.label_index) != (expected.exit_layer, expected.label_index):
                differing.append((text[:40], got.exit_layer, expected.exit_layer, got.uncertainty))
        assert not differing, (decision, differing[:5])


TRAINING_STACK = ("transformers", "coremltools", "edge_variator.train", "edge_variator.task",
                  "edge_variator.exits", "edge_variator.encoder", "edge_variator.plugins",
                  "edge_variator.export")


def test_the_runtime_runs_a_bundle_without_the_training_stack(tiny_bundle):
    """An app server embeds edge_variator.runtime: it loads and runs a bundle, and imports none of
    transformers, coremltools, the trainers or the export code."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from edge_variator.runtime.runner import BundleRunner\n"
        "from edge_variator.runtime.policy import DeviceState\n"
        f"result = BundleRunner({str(tiny_bundle)!r}).run('a fine film', DeviceState(battery=0.2))\n"
        f"stack = {TRAINING_STACK!r}\n"
        "loaded = sorted({m for m in sys.modules for p in stack if m == p or m.startswith(p + '.')})\n"
        "print(result.label, result.exit_layer, loaded)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("[]"), done.stdout


def test_a_methods_output_outlives_its_next_call(tiny_bundle):
    """The runtime copies outputs out of the method's own buffers without a torch op (which would
    wake torch's thread pool beside XNNPACK's): the next call must not overwrite what the last gave."""
    from edge_variator.runtime.bundle import open_program

    method = open_program(tiny_bundle / "model.pte").load_method("layer_0_k1")
    hidden, mask = torch.randn(1, 16, 32), torch.ones(1, 16, dtype=torch.long)
    [first] = method.execute([hidden, mask])
    kept = first.clone()
    [second] = method.execute([torch.randn(1, 16, 32), mask])
    assert torch.equal(first, kept) and not torch.equal(first, second)
    assert first.data_ptr() != second.data_ptr()
