"""Compression plugins: shapes at any length, padding invariance, ratio 1 is the backbone,
saved apart and refused on the wrong backbone."""

from __future__ import annotations

import pytest
import torch

from edge_variator.cost import parameter_count
from edge_variator.encoder import Encoder, EncoderConfig, backbone_sha256, load_encoder
from edge_variator.plugins import (
    PluggedFFN,
    PluginMismatchError,
    PluginSet,
    RatioError,
    attach,
    available_ratios,
    set_ratio,
)
from edge_variator.tokenizer import Tokenizer

CONFIG = EncoderConfig(vocab_size=30522, hidden=32, layers=2, heads=4, intermediate=64, max_positions=512)
SHA = "0" * 64


def plugged_encoder(ratios=(2, 4, 8), seed=0) -> Encoder:
    torch.manual_seed(seed)
    encoder = Encoder(CONFIG).eval()
    for ratio in ratios:
        plugin_set = PluginSet.for_backbone(encoder, SHA, ratio)
        with torch.no_grad():  # a trained adapter is not silent: make the restore path matter
            for parameter in plugin_set.parameters():
                parameter.normal_(std=0.1)
        attach(encoder, plugin_set, SHA)
    return encoder


@pytest.fixture(scope="module")
def tokenizer(tiny_bert_dir) -> Tokenizer:
    return Tokenizer(tiny_bert_dir, max_length=512)


def text_of(tokens: int) -> str:
    return " ".join(["word"] * (tokens - 2))  # [CLS] ... [SEP]


@pytest.mark.parametrize("ratio", [2, 4, 8])
@pytest.mark.parametrize("real_tokens", [3, 7, 9, 257])  # with CLS/SEP: not multiples of k
def test_any_length_runs_and_keeps_its_shape(tokenizer, ratio, real_tokens):
    encoder = plugged_encoder()
    set_ratio(encoder, ratio)
    batch = tokenizer([text_of(real_tokens)])
    assert batch.lengths == [real_tokens]
    with torch.no_grad():
        states = encoder(batch.input_ids, batch.attention_mask)
    assert all(state.shape == (1, batch.input_ids.shape[1], CONFIG.hidden) for state in states)
    assert all(torch.isfinite(state).all() for state in states)


@pytest.mark.parametrize("ratio", [2, 4, 8])
def test_more_padding_does_not_change_the_output(tokenizer, ratio):
    encoder = plugged_encoder()
    set_ratio(encoder, ratio)
    alone = tokenizer(["a short text of eleven tokens or so here"])
    padded = tokenizer(["a short text of eleven tokens or so here", text_of(60)])
    real = alone.lengths[0]
    with torch.no_grad():
        short = encoder(alone.input_ids, alone.attention_mask)[-1][0, :real]
        long = encoder(padded.input_ids[:1], padded.attention_mask[:1])[-1][0, :real]
    assert padded.input_ids.shape[1] > alone.input_ids.shape[1]
    torch.testing.assert_close(long, short, atol=1e-5, rtol=0)


def test_ratio_1_reproduces_the_backbone_exactly(tokenizer):
    torch.manual_seed(0)
    plain = Encoder(CONFIG).eval()
    encoder = plugged_encoder()
    encoder.load_state_dict(plain.state_dict(), strict=False)
    set_ratio(encoder, 1)
    batch = tokenizer(["the backbone alone", text_of(40)])
    with torch.no_grad():
        for mine, reference in zip(encoder(batch.input_ids, batch.attention_mask),
                                   plain(batch.input_ids, batch.attention_mask), strict=True):
            assert torch.equal(mine, reference)


def test_compression_changes_the_output_but_not_much(tokenizer):
    encoder = plugged_encoder()
    batch = tokenizer([text_of(40)])
    with torch.no_grad():
        set_ratio(encoder, 1)
        full = encoder(batch.input_ids, batch.attention_mask)[-1]
        set_ratio(encoder, 4)
        merged = encoder(batch.input_ids, batch.attention_mask)[-1]
    assert not torch.allclose(full, merged)


def test_parameter_count_matches_the_formula():
    encoder = Encoder(CONFIG)
    d, bottleneck = CONFIG.hidden, 64
    for ratio in (2, 4, 8):
        plugin_set = PluginSet.for_backbone(encoder, SHA, ratio, bottleneck=bottleneck)
        per_layer = (ratio * d * ratio + ratio) + (2 * d * bottleneck + bottleneck) + (bottleneck * d + d)
        assert parameter_count(plugin_set) == CONFIG.layers * per_layer


def test_only_chosen_layers_are_plugged():
    encoder = Encoder(CONFIG)
    attach(encoder, PluginSet.for_backbone(encoder, SHA, 4, layers=[1]), SHA)
    assert not isinstance(encoder.layers[0].ffn, PluggedFFN)
    assert isinstance(encoder.layers[1].ffn, PluggedFFN)
    assert available_ratios(encoder) == [1, 4]


def test_unavailable_ratio_is_refused():
    encoder = plugged_encoder(ratios=(2,))
    with pytest.raises(RatioError, match="ratio 4 is not available; attached: \\[1, 2\\]"):
        set_ratio(encoder, 4)
    with pytest.raises(RatioError, match="ratio 3 is not one of"):
        PluginSet.for_backbone(encoder, SHA, 3)


def test_length_not_a_multiple_of_the_ratio_is_refused():
    encoder = plugged_encoder()
    set_ratio(encoder, 8)
    ids = torch.ones(1, 20, dtype=torch.long)
    with pytest.raises(RatioError, match="not a multiple of ratio 8"):
        encoder(ids, torch.ones_like(ids))


def test_save_load_round_trip(tiny_bert_dir, tmp_path, tokenizer):
    sha = backbone_sha256(tiny_bert_dir)
    encoder = load_encoder(tiny_bert_dir)
    plugin_set = PluginSet.for_backbone(encoder, sha, 4)
    plugin_set.save(tmp_path / "k4")
    assert sorted(p.name for p in (tmp_path / "k4").iterdir()) == ["plugins.json", "plugins.safetensors"]
    loaded = PluginSet.load(tmp_path / "k4")
    for name, tensor in plugin_set.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name])
    attach(encoder, loaded, sha)
    assert available_ratios(encoder) == [1, 4]


def test_a_set_saved_with_one_adapter_in_weight_loads_split(tmp_path):
    """Sets saved before the restore adapter's input was two linears keep loading, same function."""
    from safetensors.torch import load_file, save_file

    plugin_set = PluginSet.for_backbone(Encoder(CONFIG), SHA, 2)
    plugin_set.save(tmp_path / "k2")
    state = load_file(tmp_path / "k2" / "plugins.safetensors")
    prefixes = {key[: -len("adapter_from_token.bias")] for key in state if key.endswith("from_token.bias")}
    for prefix in prefixes:
        state[prefix + "adapter_in.weight"] = torch.cat([state.pop(prefix + "adapter_from_merged.weight"),
                                                         state.pop(prefix + "adapter_from_token.weight")], 1)
        state[prefix + "adapter_in.bias"] = state.pop(prefix + "adapter_from_token.bias")
    save_file(state, tmp_path / "k2" / "plugins.safetensors")
    loaded = PluginSet.load(tmp_path / "k2")
    for name, tensor in plugin_set.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name])


def test_plugins_from_another_backbone_are_refused(tiny_bert_dir):
    encoder = load_encoder(tiny_bert_dir)
    plugin_set = PluginSet.for_backbone(encoder, SHA, 2)
    with pytest.raises(PluginMismatchError, match="trained for backbone sha256 000000000000"):
        attach(encoder, plugin_set, backbone_sha256(tiny_bert_dir))
    other = Encoder(EncoderConfig(vocab_size=30522, hidden=32, layers=3, heads=4, intermediate=64))
    with pytest.raises(PluginMismatchError, match="2 x 32 backbone, this one is 3 x 32"):
        attach(other, plugin_set, SHA)


def toy_data():
    from edge_variator.data import Example, TaskData

    words = [["awful", "dull", "poor"], ["great", "superb", "fine"]]
    rows = [Example(f"the film was {words[i % 2][i % 3]} " + "and long " * (i % 5), i % 2)
            for i in range(96)]
    return TaskData("toy", ["negative", "positive"], rows[:64], rows[64:80], rows[80:])


def save_tiny_teacher(tiny_bert_dir, path):
    from edge_variator.task import TaskInfo, TaskModel, save_task

    torch.manual_seed(0)
    teacher = TaskModel(load_encoder(tiny_bert_dir), ["negative", "positive"])
    save_task(teacher, Tokenizer(tiny_bert_dir, 32), TaskInfo("full", teacher.labels, 32), path)
    return teacher


def test_plugin_training_lowers_distillation_loss_with_a_frozen_backbone(tiny_bert_dir, tmp_path):
    from edge_variator.task import checkpoint_sha256
    from edge_variator.train import PluginTrainConfig, train_plugins

    teacher = save_tiny_teacher(tiny_bert_dir, tmp_path / "teacher")
    frozen_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    config = PluginTrainConfig(epochs=3, batch_size=8, max_length=32, lr=3e-3)
    metrics = train_plugins(tmp_path / "teacher", toy_data(), tmp_path / "k4", 4, config, progress=False)

    first, last = metrics["history"][0]["losses"], metrics["history"][-1]["losses"]
    assert sum(last) / len(last) < sum(first) / len(first)
    assert metrics["plugin_parameters"] < 0.1 * metrics["backbone_parameters"]
    plugin_set = PluginSet.load(tmp_path / "k4")
    assert plugin_set.config.backbone_sha256 == checkpoint_sha256(tmp_path / "teacher")
    reloaded = load_encoder(tmp_path / "teacher")
    for name, tensor in reloaded.state_dict().items():  # the teacher on disk is untouched
        assert torch.equal(tensor, frozen_before[f"encoder.{name}"])


def test_pretraining_on_unlabelled_text_then_task_adaptation(tiny_bert_dir, tmp_path):
    from edge_variator.train import PluginTrainConfig, train_plugins

    config = PluginTrainConfig(epochs=2, batch_size=8, max_length=32, lr=3e-3, ce_weight=0.0)
    pretrained = train_plugins(tiny_bert_dir, toy_data(), tmp_path / "pre", 2, config, progress=False)
    assert "dev_accuracy" not in pretrained["history"][0]
    losses = [h["dev_distillation_loss"] for h in pretrained["history"]]
    assert losses[-1] < losses[0]

    save_tiny_teacher(tiny_bert_dir, tmp_path / "teacher")
    adapt = PluginTrainConfig(epochs=1, batch_size=8, max_length=32, init_from=str(tmp_path / "pre"))
    adapted = train_plugins(tmp_path / "teacher", toy_data(), tmp_path / "k2", 2, adapt, progress=False)
    assert "dev_accuracy" in adapted["history"][0]
