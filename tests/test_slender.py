"""Slenderization: pruning equals zeroing, importance sees what matters, SVD is the best low rank,
the slender model saves/loads and exports, and each training stage lowers its loss."""

from __future__ import annotations

import pytest
import torch
from conftest import toy_data
from torch.export import Dim, export

from edge_variator.cost import parameter_count
from edge_variator.encoder import Encoder, EncoderConfig
from edge_variator.evaluation import logits_of
from edge_variator.exits import MultiExitModel, load_multi_exit
from edge_variator.slender import Importance, Width, factorize_embeddings, prune, taylor_importance
from edge_variator.task import load_task
from edge_variator.train import (
    ExitTrainConfig,
    RefineConfig,
    SlenderConfig,
    refine_exits,
    soft_distillation_loss,
    train_multi_exit,
    train_slender,
)

CONFIG = EncoderConfig(vocab_size=500, hidden=32, layers=3, heads=4, intermediate=64, max_positions=64)


def tiny_model(seed=0) -> MultiExitModel:
    torch.manual_seed(seed)
    return MultiExitModel(Encoder(CONFIG), ["a", "b"]).eval()


def inputs(length=24):
    ids = torch.randint(1, 500, (2, length))
    mask = torch.ones_like(ids)
    mask[1, -5:] = 0
    return ids, mask


def random_importance(seed=1) -> Importance:
    generator = torch.Generator().manual_seed(seed)
    return Importance([torch.rand(CONFIG.heads, generator=generator) for _ in range(CONFIG.layers)],
                      [torch.rand(CONFIG.intermediate, generator=generator) for _ in range(CONFIG.layers)])


def test_pruned_model_equals_the_full_model_with_those_weights_zeroed():
    model, importance = tiny_model(), random_importance()
    pruned = prune(model, keep_heads=2, keep_neurons=20, importance=importance)
    zeroed = tiny_model()
    head_dim = CONFIG.head_dim
    with torch.no_grad():
        for index, layer in enumerate(zeroed.encoder.layers):
            for head in importance.heads[index].topk(CONFIG.heads - 2, largest=False).indices:
                layer.attention.output.weight[:, head * head_dim:(head + 1) * head_dim] = 0
            dropped = importance.neurons[index].topk(CONFIG.intermediate - 20, largest=False).indices
            layer.ffn.intermediate.weight[dropped] = 0
            layer.ffn.intermediate.bias[dropped] = 0  # GELU(0) = 0: the neuron contributes nothing
    ids, mask = inputs()
    expected_states, expected_logits = zeroed.forward_all(ids, mask)
    states, logits = pruned.forward_all(ids, mask)
    for got, want in zip(states, expected_states, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits, expected_logits, atol=1e-5, rtol=1e-5)
    config = pruned.encoder.config
    assert (config.heads, config.head_dim, config.intermediate) == (2, head_dim, 20)
    assert pruned.encoder.layers[0].attention.query.weight.shape == (2 * head_dim, CONFIG.hidden)


def test_taylor_importance_is_zero_for_heads_and_neurons_that_do_nothing():
    model = tiny_model()
    head_dim = CONFIG.head_dim
    with torch.no_grad():
        model.encoder.layers[1].attention.output.weight[:, 2 * head_dim:3 * head_dim] = 0  # head 2 muted
        model.encoder.layers[0].ffn.output.weight[:, 7] = 0  # neuron 7's output dropped
    ids, mask = inputs()
    labels = torch.tensor([0, 1])

    def loss(m, batch):
        return torch.nn.functional.cross_entropy(m(*batch).flatten(0, 1), labels.repeat(CONFIG.layers))

    importance = taylor_importance(model, [(ids, mask)] * 2, loss)
    assert importance.heads[1][2] == 0 and (importance.heads[1][[0, 1, 3]] > 0).all()
    # the neuron's input row still gets no gradient: nothing downstream reads it
    assert importance.neurons[0][7] == 0 and (importance.neurons[0] > 0).sum() > CONFIG.intermediate // 2
    assert all(p.grad is None for p in model.parameters())


def test_embedding_factorization_is_the_best_rank_r_approximation():
    model = tiny_model()
    full = model.encoder.embeddings.word_embeddings.weight.detach().double()
    factorized = factorize_embeddings(model, rank=8)
    embeddings = factorized.encoder.embeddings
    product = embeddings.word_embeddings.weight.double() @ embeddings.word_projection.weight.double().T
    singular = torch.linalg.svdvals(full)
    # Eckart-Young: the error of the best rank-8 approximation is the norm of the dropped singular values
    torch.testing.assert_close(torch.linalg.norm(full - product), singular[8:].norm(), rtol=1e-4, atol=1e-6)
    assert factorized.encoder.config.embedding_rank == 8
    ids, mask = inputs()
    assert factorized(ids, mask).shape == (CONFIG.layers, 2, 2)


def test_width_steps_go_down_evenly_and_factorize_at_the_end():
    steps = Width(heads=3, neurons=384, embedding_rank=64).steps(
        EncoderConfig(vocab_size=10, hidden=384, layers=6, heads=12, intermediate=1536), 3)
    assert steps == [Width(9, 1152, None), Width(6, 768, None), Width(3, 384, 64)]


def test_slender_sizes_are_counts_or_fractions_of_the_backbone():
    minilm = EncoderConfig(vocab_size=10, hidden=384, layers=6, heads=12, intermediate=1536)
    assert Width.of(minilm, 0.25, 0.25, 1 / 6) == Width(3, 384, 64) == Width.of(minilm, 3, 384, 64)
    bert_base = EncoderConfig(vocab_size=10, hidden=768, layers=12, heads=12, intermediate=3072)
    assert Width.of(bert_base, 0.25, 0.25, 1 / 6) == Width(3, 768, 128)
    assert Width.of(CONFIG, 0.01, 0.5, None) == Width(1, CONFIG.intermediate // 2, None)  # at least one head


@pytest.mark.parametrize(("sizes", "message"), [((13, 384, 64), "heads: a count from 1 to 12"),
                                                 ((3, 0, 64), "neurons: a count from 1 to 1536"),
                                                 ((3, 384, 2.5), "embedding_rank: a count")])
def test_a_slender_size_the_backbone_cannot_have_is_refused(sizes, message):
    minilm = EncoderConfig(vocab_size=10, hidden=384, layers=6, heads=12, intermediate=1536)
    with pytest.raises(ValueError, match=message):
        Width.of(minilm, *sizes)


def test_a_slender_model_exports_with_a_dynamic_length():
    model = factorize_embeddings(prune(tiny_model(), 2, 16, random_importance()), rank=8)
    seq = 8 * Dim("blocks", min=2, max=8)
    ids, mask = inputs(24)
    program = export(model, (ids, mask), dynamic_shapes=({1: seq}, {1: seq}))
    for length in (16, 40):
        ids, mask = inputs(length)
        torch.testing.assert_close(program.module()(ids, mask), model(ids, mask))


def test_tiny_runs_of_every_stage_lower_their_losses(toy_teacher, tmp_path):
    data = toy_data()
    loop = {"batch_size": 16, "lr": 1e-2, "max_length": 32}
    assistant = tmp_path / "assistant"
    train_multi_exit(toy_teacher, data, assistant, ExitTrainConfig(epochs=2, **loop), progress=False)
    config = SlenderConfig(epochs=3, repr_epochs=2, heads=2, neurons=24, embedding_rank=16, prune_steps=2,
                           importance_batches=2, **loop)
    metrics = train_slender(tmp_path / "assistant", data, tmp_path / "slender", config, progress=False)

    representation = metrics["representation"]
    assert representation[-1]["train_loss"] < 0.8 * representation[0]["train_loss"]
    prediction = metrics["history"]
    assert prediction[-1]["train_loss"] < prediction[0]["train_loss"]
    assert [step["heads"] for step in metrics["pruning_steps"]] == [3, 2]
    model, _, info = load_multi_exit(tmp_path / "slender")
    assert (model.encoder.config.heads, model.encoder.config.intermediate) == (2, 24)
    assert model.encoder.config.embedding_rank == 16
    assert info.distilled_from == str(tmp_path / "assistant")
    assert metrics["parameters"] < 0.6 * parameter_count(load_multi_exit(tmp_path / "assistant")[0])


def test_distilling_between_prune_steps_recovers_each_width_before_the_next(toy_assistant, tmp_path):
    loop = {"batch_size": 16, "lr": 1e-2, "max_length": 32}
    config = SlenderConfig(epochs=1, repr_epochs=1, between_epochs=3, heads=1, neurons=16, embedding_rank=16,
                           prune_steps=3, importance_batches=2, **loop)
    metrics = train_slender(toy_assistant, toy_data(), tmp_path / "slender", config, progress=False)

    assert [step["heads"] for step in metrics["pruning_steps"]] == [3, 2, 1]
    between = metrics["representation_between_steps"]
    assert len(between) == 2  # at the first two widths, not the last (the representation stage follows it)
    for epochs in between:
        assert [e["epoch"] for e in epochs] == [1, 2, 3]
        assert epochs[-1]["train_loss"] < 0.8 * epochs[0]["train_loss"], epochs
    model = load_multi_exit(tmp_path / "slender")[0]
    assert (model.encoder.config.heads, model.encoder.config.intermediate) == (1, 16)
    assert model.last_exit_pooler == "cls" and model.exits[-1].dense is not None  # the assistant's, kept
    assert not (tmp_path / "slender.resume").exists()


def test_refining_from_the_teacher_brings_every_exit_closer_to_it(toy_teacher, toy_assistant, tmp_path):
    """The slender model learnt from a one-epoch assistant; refining distils its exits from the
    fine-tuned teacher itself, so they move towards the teacher's predictions."""
    data = toy_data()
    loop = {"batch_size": 16, "lr": 1e-2, "max_length": 32}
    slender = SlenderConfig(epochs=1, repr_epochs=1, heads=2, neurons=24, embedding_rank=16, prune_steps=1,
                            importance_batches=2, **loop)
    train_slender(toy_assistant, data, tmp_path / "slender", slender, progress=False)
    metrics = refine_exits(tmp_path / "slender", toy_teacher, data, tmp_path / "refined",
                           RefineConfig(epochs=3, **loop), progress=False)

    teacher, tokenizer, _ = load_task(toy_teacher)
    target = logits_of(teacher, tokenizer, data.train)

    def distance_to_teacher(folder):
        model = load_multi_exit(folder)[0]
        return [soft_distillation_loss(exit_logits, target, 2.0).item()
                for exit_logits in logits_of(model, tokenizer, data.train)]

    before, after = distance_to_teacher(tmp_path / "slender"), distance_to_teacher(tmp_path / "refined")
    assert all(a < b for a, b in zip(after, before, strict=True)), (before, after)
    info = load_multi_exit(tmp_path / "refined")[2]
    assert (info.distilled_from, info.thresholds) == (str(toy_teacher), {})  # calibrated again after
    assert len(metrics["dev_exit_accuracy_before"]) == len(metrics["dev_exit_accuracy"]) == 2
    assert not (tmp_path / "refined.resume").exists()


def test_refining_refuses_a_multi_exit_teacher_or_a_plain_student(toy_teacher, toy_assistant, tmp_path):
    data = toy_data()
    with pytest.raises(ValueError, match="multi-exit model: refine from the fine-tuned task teacher"):
        refine_exits(toy_assistant, toy_assistant, data, tmp_path / "out", RefineConfig())
    with pytest.raises(ValueError, match="is not a multi-exit model"):
        refine_exits(toy_teacher, toy_teacher, data, tmp_path / "out", RefineConfig())


def test_plugins_train_on_a_multi_exit_model_and_early_exit_runs_compressed(toy_teacher, tmp_path):
    from edge_variator.evaluation import calibrate_checkpoint, early_exit_metrics
    from edge_variator.plugins import PluginSet, attach, set_ratio
    from edge_variator.task import checkpoint_sha256
    from edge_variator.train import PluginTrainConfig, train_plugins

    data = toy_data()
    train_multi_exit(toy_teacher, data, tmp_path / "assistant",
                     ExitTrainConfig(epochs=1, batch_size=16, lr=1e-2, max_length=32), progress=False)
    # a bottleneck of 8: at this toy width (32, FFN 64) a 64-wide adapter would cost more than it saves
    config = PluginTrainConfig(epochs=2, batch_size=16, lr=1e-2, max_length=32, bottleneck=8)
    plugins = tmp_path / "plugins"
    metrics = train_plugins(tmp_path / "assistant", data, plugins / "k2", 2, config, progress=False)
    assert len(metrics["history"][-1]["dev_exit_accuracy"]) == 2
    losses = [loss for epoch in metrics["history"] for loss in epoch["losses"]]
    assert sum(losses[-3:]) < sum(losses[:3])
    # the same exits at ratio 2 cost less: every layer's FFN runs on half the vectors
    model, tokenizer, _ = load_multi_exit(tmp_path / "assistant")
    every_layer = early_exit_metrics(model, tokenizer, data.test, 0.0, "entropy")
    attach(model.encoder, PluginSet.load(plugins / "k2"), checkpoint_sha256(tmp_path / "assistant"))
    set_ratio(model.encoder, 2)
    every_layer_k2 = early_exit_metrics(model, tokenizer, data.test, 0.0, "entropy", ratio=2)
    assert every_layer["mean_exit_layer"] == every_layer_k2["mean_exit_layer"] == 2
    assert every_layer_k2["mean_flops"] < 0.95 * every_layer["mean_flops"]
    # calibrated at ratio 2 on dev (32 texts): at most a quarter of ratio 2's own last-exit answers
    # change there, so its accuracy falls by a quarter at most
    calibrated = calibrate_checkpoint(tmp_path / "assistant", data, [0.25], ratio=2, plugins_dir=plugins)
    [row] = calibrated["thresholds"]
    dev_k2 = early_exit_metrics(model, tokenizer, data.dev, 0.0, "entropy", ratio=2)
    assert row["dev"]["accuracy"] >= dev_k2["accuracy"] - 0.25
