"""Exits: the runner's batch-1 early exit == batched decisions, the first confident exit wins,
calibration meets its target, gradient rescaling, checkpoints round-trip, and a tiny assistant run learns."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from conftest import toy_data
from safetensors.torch import load_file
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from edge_variator.cost import encoder_flops
from edge_variator.encoder import Encoder, EncoderConfig, ModelLoadError, additive_mask
from edge_variator.evaluation import exit_inputs, logits_of
from edge_variator.exits import (
    ExitsInfo,
    MultiExitModel,
    calibrate_threshold,
    exit_decisions,
    load_multi_exit,
    max_disagreements,
    save_multi_exit,
    uncertainty,
)
from edge_variator.export.reference import TorchRunner
from edge_variator.runtime.policy import Decision
from edge_variator.task import load_task
from edge_variator.tokenizer import Tokenizer
from edge_variator.train import (
    ExitTrainConfig,
    assistant_of,
    exit_distillation_loss,
    train_multi_exit,
    warm_exits,
)

CONFIG = EncoderConfig(vocab_size=30522, hidden=32, layers=4, heads=4, intermediate=64, max_positions=64)


def tiny_model(labels=3, seed=0, last_exit_pooler=None) -> MultiExitModel:
    torch.manual_seed(seed)
    return MultiExitModel(Encoder(CONFIG), [str(i) for i in range(labels)],
                          last_exit_pooler=last_exit_pooler).eval()


def test_first_confident_exit_answers_and_the_last_always_does():
    confident, unsure = [9.0, 0.0, 0.0], [0.1, 0.0, 0.05]
    logits = torch.tensor([[unsure, unsure], [confident, unsure], [unsure, unsure]])  # (exits, batch, labels)
    threshold = uncertainty(torch.tensor(confident)).item() + 1e-6
    layers, predictions = exit_decisions(logits, threshold)
    assert layers.tolist() == [2, 3]  # example 0 at its first confident exit; example 1 at the last
    assert predictions.tolist() == [0, 0]
    assert exit_decisions(logits, 0.0)[0].tolist() == [3, 3]
    assert exit_decisions(logits, math.inf)[0].tolist() == [1, 1]


def test_max_prob_criterion_and_unknown_criterion():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    assert uncertainty(logits, "max_prob").tolist() == pytest.approx([1 - 1 / (1 + math.exp(-2)), 0.5])
    assert uncertainty(logits, "entropy")[1].item() == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="criterion"):
        uncertainty(logits, "margin")


@pytest.mark.parametrize("criterion", ["entropy", "max_prob"])
def test_batch_of_one_decides_as_the_batched_sweep(criterion):
    model = tiny_model()
    # sharpen the exits so that the thresholds below split the examples over several layers
    with torch.no_grad():
        for head in model.exits:
            head.classifier.weight.mul_(40)
    tokenizer = Tokenizer(_tokenizer_dir(), 64)
    texts = ["a", "a short one", "a rather longer text with several more words in it", "yes", "no no no"]
    batch = tokenizer(texts)  # padded to the longest: the masked batch must decide as batch 1 does
    all_logits = model(batch.input_ids, batch.attention_mask)
    scores = uncertainty(all_logits, criterion)
    runner = TorchRunner(model, tokenizer, criterion=criterion)  # one text at a time, as a phone runs
    seen_layers = set()
    for threshold in scores.flatten().quantile(torch.tensor([0.2, 0.5, 0.8])).tolist():
        layers, predictions = exit_decisions(all_logits, threshold, criterion)
        seen_layers |= set(layers.tolist())
        for index, text in enumerate(texts):
            alone = runner.run(text, decision=Decision(1, threshold, "test", "test", False))
            assert (alone.exit_layer, alone.label_index) == (layers[index].item(), predictions[index].item())
    assert len(seen_layers) > 1  # the thresholds really split the texts over several exits


def _tokenizer_dir():
    from edge_variator.encoder import default_model_dir

    return default_model_dir()


def _deepening_logits(examples: int, labels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Five exits whose noise shrinks with depth: later exits are more often right."""
    torch.manual_seed(seed)
    truth = torch.randint(0, labels, (examples,))
    logits = torch.stack([torch.nn.functional.one_hot(truth, labels) * 2
                          + torch.randn(examples, labels) * (2.0 - 0.4 * i) for i in range(5)])
    return logits, truth


@pytest.mark.parametrize("max_drop", [0.02, 0.1])
def test_calibration_changes_at_most_the_allowed_share_of_answers(max_drop):
    logits, truth = _deepening_logits(400, 3, seed=1)
    threshold = calibrate_threshold(logits, max_drop)
    layers, predictions = exit_decisions(logits, threshold)
    changed = (predictions != logits[-1].argmax(-1)).sum().item()
    assert 0 <= changed <= max_disagreements(400, max_drop) < max_drop * 400
    # the accuracy lost is bounded by the answers changed
    reference = (logits[-1].argmax(-1) == truth).float().mean().item()
    assert (predictions == truth).float().mean().item() >= reference - changed / 400
    if max_drop >= 0.1:
        assert layers.float().mean() < 5  # a loose target lets examples leave early


def test_calibration_never_exits_early_when_the_set_cannot_show_the_target():
    logits, _ = _deepening_logits(400, 3, seed=1)
    assert calibrate_threshold(logits, 0.0) == 0.0
    assert calibrate_threshold(logits[:, :100], 0.01) == 0.0  # 100 texts cannot bound 1% at 90%


def test_the_changed_answers_bound_is_clopper_pearson():
    # zero changes bound the rate by 1 - 0.1 ** (1 / n): under 1% from 230 texts, not from 229
    assert max_disagreements(229, 0.01) == -1 and max_disagreements(230, 0.01) == 0
    # scipy.stats.beta.ppf(0.9, x + 1, n - x) <= m for the x returned, > m for x + 1 (checked beside it)
    assert max_disagreements(1056, 0.01) == 6 and max_disagreements(1056, 0.02) == 14
    assert max_disagreements(515, 0.02) == 5 and max_disagreements(100, 1.0) == 100


def test_calibration_stops_at_the_first_threshold_that_fails():
    """Fixed-sequence testing: a looser threshold that passes again after one failed is not taken."""
    # 230 texts allow no changed answer at 1%. Text 0's exit 2 is the most confident and wrong; a
    # looser threshold sends it out at exit 1, which agrees with the last exit again.
    agree = [[0.0, 9.0]] * 229
    logits = torch.tensor([[[0.0, 2.0]] + agree, [[9.0, 0.0]] + agree, [[0.0, 9.0]] + agree])
    looser = torch.nextafter(uncertainty(logits[0, :1], "entropy"), torch.tensor(1.0)).item()
    _, predictions = exit_decisions(logits, looser)
    assert (predictions == logits[-1].argmax(-1)).all()  # it would pass
    assert calibrate_threshold(logits, 0.01) == 0.0


def test_a_calibrated_threshold_lies_halfway_between_two_uncertainties_of_the_set():
    logits, _ = _deepening_logits(400, 3, seed=1)
    threshold = calibrate_threshold(logits, 0.1)
    scores = uncertainty(logits[:-1], "entropy").flatten().unique()
    below, above = scores[scores < threshold].max(), scores[scores > threshold].min()
    assert threshold == pytest.approx((below.item() + above.item()) / 2, abs=1e-6)
    assert (scores - threshold).abs().min() > 1e-5  # half a gap: a 1e-7 change of numerics decides alike


def test_calibration_picks_larger_thresholds_for_larger_drops():
    logits, _ = _deepening_logits(300, 2, seed=2)
    thresholds = [calibrate_threshold(logits, drop) for drop in (0.0, 0.01, 0.03, 0.1)]
    assert thresholds == sorted(thresholds)


def test_gradient_rescaling_shrinks_what_an_early_exit_sends_back():
    """Exit 1's loss reaches layer 1's weights at 1/L of its unscaled gradient."""
    model = tiny_model(labels=2)
    model.train()
    for module in model.modules():  # no dropout noise: both passes must see the same network
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    ids = torch.randint(1000, 2000, (2, 16))
    grads = {}
    for rescale in (True, False):
        model.zero_grad()
        model.rescale_gradients = rescale
        _, logits = model.forward_all(ids, torch.ones_like(ids))
        logits[0].sum().backward()
        grads[rescale] = model.encoder.layers[0].ffn.output.weight.grad.clone()
    torch.testing.assert_close(grads[True], grads[False] / CONFIG.layers)
    with torch.no_grad():  # forward values are untouched
        model.rescale_gradients = True
        model.eval()
        assert torch.equal(model.forward_all(ids, torch.ones_like(ids))[1], model(ids, torch.ones_like(ids)))


def test_the_early_exits_share_of_the_encoders_gradient_scales_only_their_part():
    """With early_exit_gradient a, the encoder's gradient is the last exit's plus a times the early
    exits'; the exit heads themselves still get their whole gradient, and the values are unchanged."""
    model = tiny_model(labels=2)
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    ids = torch.randint(1000, 2000, (2, 16))

    def gradients(share: float, last_only: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        model.zero_grad()
        model.early_exit_gradient = share
        _, logits = model.forward_all(ids, torch.ones_like(ids))
        (logits[-1] if last_only else logits).pow(2).sum().backward()
        return (model.encoder.layers[0].ffn.output.weight.grad.clone(),
                model.encoder.layers[-1].attention.query.weight.grad.clone(),
                model.exits[0].classifier.weight.grad.clone() if not last_only else None)

    whole, last = gradients(1.0), gradients(1.0, last_only=True)
    for share in (0.0, 0.25):
        scaled = gradients(share)
        for index in (0, 1):
            torch.testing.assert_close(scaled[index], last[index] + share * (whole[index] - last[index]))
        torch.testing.assert_close(scaled[2], whole[2])  # the head learns as before
    assert not torch.equal(whole[0], last[0])  # the early exits did pull on the encoder
    for bad, message in [({"early_exit_gradient": 1.5}, "a share"),
                         ({"early_exit_gradient": -0.1}, "a share"),
                         ({"warm_exits_epochs": -1}, "0 or more")]:
        with pytest.raises(ValueError, match=message):
            ExitTrainConfig(**bad)


@pytest.mark.parametrize("threshold,layers,pooler", [(math.inf, 1, None), (0.0, CONFIG.layers, None),
                                                    (math.inf, 1, "cls"), (0.0, CONFIG.layers, "cls")])
def test_exit_flops_match_the_flop_counter(threshold, layers, pooler):
    """A last exit with BERT's pooler pays for it, and only when it answers."""
    model = tiny_model(labels=3, last_exit_pooler=pooler)
    ids = torch.randint(1000, 2000, (1, 32))
    mask = torch.ones_like(ids)
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH), torch.no_grad():
        hidden, ran = model.encoder.embeddings(ids, torch.zeros_like(ids)), 0
        for layer, head in zip(model.encoder.layers, model.exits, strict=True):
            hidden, ran = layer(hidden, additive_mask(mask, hidden.dtype)), ran + 1
            if uncertainty(head(hidden, mask)[0]).item() < threshold:
                break
    assert ran == layers
    assert encoder_flops(CONFIG, 32, num_labels=3, exit_layer=layers,
                         last_exit_pooler=pooler is not None)["total"] == counter.get_total_flops()


@pytest.mark.parametrize("last_exit_pooler", [None, "cls", "mean"])
def test_save_load_round_trip_fp32_and_fp16(tmp_path, last_exit_pooler):
    model = tiny_model(last_exit_pooler=last_exit_pooler)
    tokenizer = Tokenizer(_tokenizer_dir(), 64)
    info = ExitsInfo(model.labels, 64, thresholds={"drop_1": 0.25})  # its last exit: from the model
    batch = tokenizer(["round trip", "another text"])
    expected = model(batch.input_ids, batch.attention_mask)
    for dtype, tolerance in ((torch.float32, 0.0), (torch.float16, 2e-2)):
        save_multi_exit(model, tokenizer, info, tmp_path / str(dtype), dtype=dtype)
        loaded, loaded_tokenizer, loaded_info = load_multi_exit(tmp_path / str(dtype))
        assert loaded_info == replace(info, last_exit_pooler=last_exit_pooler)
        # the encoder's own pooler, which no exit reads, is not stored (the shipped folders, written
        # before, still hold it and load: tests/test_models.py)
        assert not any(name.startswith("encoder.pooler.")
                       for name in load_file(tmp_path / str(dtype) / "model.safetensors"))
        again = loaded_tokenizer(["round trip", "another text"])
        assert torch.equal(again.input_ids, batch.input_ids)
        torch.testing.assert_close(loaded(again.input_ids, again.attention_mask), expected,
                                   atol=tolerance, rtol=tolerance)


def test_loading_weights_of_another_shape_is_refused(tmp_path):
    model = tiny_model()
    tokenizer = Tokenizer(_tokenizer_dir(), 64)
    save_multi_exit(model, tokenizer, ExitsInfo(model.labels, 64), tmp_path / "m")
    config = json.loads((tmp_path / "m" / "encoder.json").read_text())
    config["intermediate"] = 48
    (tmp_path / "m" / "encoder.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="does not fit"):
        load_multi_exit(tmp_path / "m")
    with pytest.raises(ModelLoadError, match="no exits.json"):
        load_multi_exit(tmp_path)


def test_an_assistant_can_start_its_last_exit_as_the_teachers_own_head(toy_teacher):
    """With last_exit "teacher" the last exit is the teacher's pooler and classifier: before any
    training it answers exactly as the teacher; the other exits are fresh."""
    teacher, tokenizer, _ = load_task(toy_teacher)
    batch = tokenizer([e.text for e in toy_data().dev[:8]])
    expected = teacher.eval()(batch.input_ids, batch.attention_mask)
    model = assistant_of(teacher, ExitTrainConfig(last_exit="teacher")).eval()
    assert model.last_exit_pooler == teacher.pooling == "cls"
    assert torch.equal(model(batch.input_ids, batch.attention_mask)[-1], expected)
    assert all(head.dense is None for head in model.exits[:-1])
    fresh = assistant_of(teacher, ExitTrainConfig()).eval()
    assert fresh.last_exit_pooler is None and fresh.exits[-1].dense is None
    with pytest.raises(ValueError, match="last_exit must be one of"):
        assistant_of(teacher, ExitTrainConfig(last_exit="pooler"))
    with pytest.raises(ValueError, match="needs a task model's head"):
        assistant_of(fresh, ExitTrainConfig(last_exit="teacher"))


@pytest.mark.parametrize("last_exit", ["fresh", "teacher"])
def test_tiny_assistant_run_lowers_the_loss_and_trains_every_exit(toy_teacher, tmp_path, last_exit):
    data = toy_data()
    config = ExitTrainConfig(epochs=3, batch_size=16, lr=1e-2, max_length=32, last_exit=last_exit)
    metrics = train_multi_exit(toy_teacher, data, tmp_path / "assistant", config, progress=False)
    first, last = metrics["history"][0]["losses"], metrics["history"][-1]["losses"]
    assert sum(last) / len(last) < 0.8 * sum(first) / len(first)
    assert len(metrics["test_exit_accuracy"]) == 2
    model, tokenizer, info = load_multi_exit(tmp_path / "assistant")
    assert info.distilled_from == str(toy_teacher)
    assert info.last_exit_pooler == ("cls" if last_exit == "teacher" else None) == model.last_exit_pooler
    logits = logits_of(model, tokenizer, data.dev)
    labels = torch.tensor([e.label for e in data.dev])
    assert (logits.argmax(-1) == labels).float().mean(1).tolist() == metrics["dev_exit_accuracy"]


def test_warm_exits_fit_the_fresh_heads_alone_on_the_frozen_teachers_states(toy_teacher):
    """The warm-up trains the fresh exits on cached pooled states (exit_inputs: what each head reads,
    equal to pooling the encoder's states), lowers their loss, and moves neither the encoder nor the
    teacher's head."""
    teacher, tokenizer, _ = load_task(toy_teacher)
    data = toy_data()
    config = ExitTrainConfig(last_exit="teacher", warm_exits_epochs=4, batch_size=16, max_length=32,
                             exit_lr=1e-2)
    model = assistant_of(teacher, config)
    inputs = exit_inputs(model, tokenizer, data.train)
    batch = tokenizer([e.text for e in data.train[:5]])
    states = model.forward_all(batch.input_ids, batch.attention_mask)[0]
    assert torch.allclose(inputs[1, :5], model.exits[1].pool(states[2], batch.attention_mask), atol=1e-5)
    targets, labels = logits_of(teacher, tokenizer, data.train), torch.tensor([e.label for e in data.train])
    def head_loss() -> float:
        with torch.no_grad():
            return exit_distillation_loss(model.exits[0].eval().classify(inputs[0])[None], targets, labels,
                                          config).item()

    before, untrained = {name: tensor.clone() for name, tensor in model.state_dict().items()}, head_loss()
    losses = warm_exits(model.exits[:-1], inputs, targets, labels, config)
    assert len(losses) == 4 and losses == sorted(losses, reverse=True)
    assert head_loss() < 0.8 * untrained
    after = model.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed == {"exits.0.classifier.weight", "exits.0.classifier.bias"}


def test_warm_exits_start_the_joint_stage_nearer_the_teacher(toy_teacher, tmp_path):
    data = toy_data()
    config = ExitTrainConfig(epochs=1, batch_size=16, lr=1e-2, max_length=32, last_exit="teacher",
                             warm_exits_epochs=3)
    warm = train_multi_exit(toy_teacher, data, tmp_path / "warm", config, progress=False)
    cold = train_multi_exit(toy_teacher, data, tmp_path / "cold", replace(config, warm_exits_epochs=0),
                            progress=False)
    assert sum(warm["history"][0]["losses"][:3]) < sum(cold["history"][0]["losses"][:3])
    assert warm["config"]["warm_exits_epochs"] == 3
