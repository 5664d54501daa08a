"""Task models: LoRA starts as the base and merges exactly; checkpoints round-trip and bind to their base."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import save_file

from edge_variator.encoder import ModelLoadError, backbone_sha256, hf_state_dict, load_encoder
from edge_variator.task import (
    AdapterMismatchError,
    LoRALinear,
    TaskInfo,
    TaskModel,
    add_lora,
    load_task,
    merge_lora,
    save_task,
)
from edge_variator.tokenizer import Tokenizer

LABELS = ["negative", "positive"]


def logits(model, tokenizer, texts=("a fine film", "dull and slow, far too long")):
    batch = tokenizer(list(texts))
    with torch.no_grad():
        return model.eval()(batch.input_ids, batch.attention_mask, batch.token_type_ids)


def lora_model(base_dir, seed=0, pooling="mean") -> TaskModel:
    torch.manual_seed(seed)
    model = TaskModel(load_encoder(base_dir), LABELS, pooling=pooling)
    add_lora(model, rank=4, alpha=8.0)
    with torch.no_grad():  # pretend training moved the factors away from B = 0
        for module in model.modules():
            if isinstance(module, LoRALinear):
                module.lora_b.normal_(std=0.05)
    return model


def lora_info(base_dir, pooling="mean") -> TaskInfo:
    return TaskInfo(kind="lora", labels=LABELS, max_length=32, base=str(base_dir),
                    base_sha256=backbone_sha256(base_dir), lora_rank=4, lora_alpha=8.0,
                    lora_targets=["query", "key", "value", "output", "intermediate"], pooling=pooling)


def test_fresh_lora_equals_the_base_model(tiny_bert_dir):
    tokenizer = Tokenizer(tiny_bert_dir, 32)
    torch.manual_seed(0)
    model = TaskModel(load_encoder(tiny_bert_dir), LABELS)
    before = logits(model, tokenizer)
    add_lora(model)
    torch.testing.assert_close(logits(model, tokenizer), before, atol=0, rtol=0)


def test_lora_freezes_the_backbone_weights(tiny_bert_dir):
    model = lora_model(tiny_bert_dir)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert "encoder.embeddings.word_embeddings.weight" not in trainable
    assert "encoder.layers.0.attention.query.base.weight" not in trainable
    assert {"encoder.layers.0.attention.query.lora_a", "classifier.weight"} <= trainable


def test_merged_lora_gives_the_same_logits(tiny_bert_dir):
    tokenizer = Tokenizer(tiny_bert_dir, 32)
    model = lora_model(tiny_bert_dir)
    unmerged = logits(model, tokenizer)
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    torch.testing.assert_close(logits(model, tokenizer), unmerged, atol=1e-5, rtol=0)


def test_lora_checkpoint_round_trip(tiny_bert_dir, tmp_path):
    tokenizer = Tokenizer(tiny_bert_dir, 32)
    model = lora_model(tiny_bert_dir)
    save_task(model, tokenizer, lora_info(tiny_bert_dir), tmp_path / "adapter")
    assert not (tmp_path / "adapter" / "model.safetensors").exists()  # only the small file ships
    loaded, loaded_tokenizer, info = load_task(tmp_path / "adapter")
    assert info.labels == LABELS
    torch.testing.assert_close(logits(loaded, loaded_tokenizer), logits(model, tokenizer),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_lora_trains_its_factors_the_norms_the_pooler_and_the_classifier_only(tiny_bert_dir, pooling):
    model = lora_model(tiny_bert_dir, pooling=pooling)
    kinds = {}
    for module_name, module in model.named_modules():
        for name, parameter in module.named_parameters(recurse=False):
            kinds.setdefault(parameter.requires_grad, set()).add(type(module).__name__)
            if module_name.startswith("encoder.pooler"):
                assert parameter.requires_grad, name
    assert kinds[True] == {"LoRALinear", "LayerNorm", "Linear"}  # Linear: the pooler and the classifier
    assert "Embedding" in kinds[False] and "LoRALinear" not in kinds[False]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_berts_pooler_reads_the_mean_of_the_real_tokens_or_cls(tiny_bert_dir, pooling):
    tokenizer = Tokenizer(tiny_bert_dir, 32)
    torch.manual_seed(0)
    model = TaskModel(load_encoder(tiny_bert_dir), LABELS, pooling=pooling).eval()
    batch = tokenizer(["a fine film", "dull and slow, far too long"])
    with torch.no_grad():
        last = model.encoder(batch.input_ids, batch.attention_mask)[-1]
        first = last[0, : int(batch.attention_mask[0].sum())]  # the short text's real tokens only
        pooled = torch.tanh(model.encoder.pooler(first.mean(0) if pooling == "mean" else first[0]))
        torch.testing.assert_close(logits(model, tokenizer)[0], model.classifier(pooled), atol=1e-6, rtol=0)


def test_a_checkpoint_written_before_pooling_was_a_choice_loads_as_berts_pooler(tiny_bert_dir, tmp_path):
    import json

    tokenizer = Tokenizer(tiny_bert_dir, 32)
    model = lora_model(tiny_bert_dir, pooling="cls")
    save_task(model, tokenizer, lora_info(tiny_bert_dir, "cls"), tmp_path / "adapter")
    path = tmp_path / "adapter" / "task.json"
    info = json.loads(path.read_text())
    del info["pooling"]
    path.write_text(json.dumps(info))
    loaded, loaded_tokenizer, info = load_task(tmp_path / "adapter")
    assert info.pooling == loaded.pooling == "cls"
    torch.testing.assert_close(logits(loaded, loaded_tokenizer), logits(model, tokenizer), atol=1e-5, rtol=0)


def test_an_unknown_pooling_is_refused(tiny_bert_dir):
    with pytest.raises(ValueError, match="pooling must be one of"):
        TaskModel(load_encoder(tiny_bert_dir), LABELS, pooling="max")


@pytest.mark.parametrize("change", ["drop", "add"])
def test_an_adapter_with_missing_or_unknown_weights_is_refused_by_name(tiny_bert_dir, tmp_path, change):
    from safetensors.torch import load_file

    tokenizer = Tokenizer(tiny_bert_dir, 32)
    save_task(lora_model(tiny_bert_dir), tokenizer, lora_info(tiny_bert_dir), tmp_path / "adapter")
    path = tmp_path / "adapter" / "adapter.safetensors"
    weights = load_file(path)
    if change == "drop":
        del weights["encoder.layers.1.ffn.intermediate.lora_b"]
        expected = "missing ['encoder.layers.1.ffn.intermediate.lora_b']"
    else:
        weights["encoder.layers.0.extra"] = torch.zeros(2)
        expected = "unexpected ['encoder.layers.0.extra']"
    save_file(weights, path)
    with pytest.raises(ModelLoadError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        load_task(tmp_path / "adapter")


def test_lora_checkpoint_refuses_another_backbone(tiny_bert_dir, tmp_path):
    tokenizer = Tokenizer(tiny_bert_dir, 32)
    base = tmp_path / "base"
    shutil.copytree(tiny_bert_dir, base)
    save_task(lora_model(base), tokenizer, lora_info(base), tmp_path / "adapter")
    encoder = load_encoder(base)
    with torch.no_grad():
        encoder.layers[0].ffn.output.bias.add_(1.0)  # the base is retrained in place
    save_file(hf_state_dict(encoder), base / "model.safetensors")
    with pytest.raises(AdapterMismatchError, match="trained on backbone sha256"):
        load_task(tmp_path / "adapter")


def test_full_checkpoint_is_a_backbone_folder_too(tiny_bert_dir, tmp_path):
    tokenizer = Tokenizer(tiny_bert_dir, 32)
    torch.manual_seed(0)
    model = TaskModel(load_encoder(tiny_bert_dir), LABELS)
    save_task(model, tokenizer, TaskInfo(kind="full", labels=LABELS, max_length=32), tmp_path / "ft")
    loaded, loaded_tokenizer, _ = load_task(tmp_path / "ft")
    torch.testing.assert_close(logits(loaded, loaded_tokenizer), logits(model, tokenizer),
                               atol=0, rtol=0)
    assert load_encoder(tmp_path / "ft").config == model.encoder.config


def test_save_replaces_a_checkpoint_whole(tiny_bert_dir, tmp_path):
    tokenizer = Tokenizer(tiny_bert_dir, 32)
    out = tmp_path / "ft"
    out.mkdir()
    (out / "stale.txt").write_text("from an older run")
    model = TaskModel(load_encoder(tiny_bert_dir), LABELS)
    save_task(model, tokenizer, TaskInfo(kind="full", labels=LABELS, max_length=32), out)
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ft"]  # no temp folders left behind


def test_a_hugging_face_classifier_folder_loads_with_its_head_and_labels(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    from edge_variator.encoder import default_model_dir
    from edge_variator.task import load_hf_classifier

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    hf = BertForSequenceClassification(config).eval()
    hf.save_pretrained(tmp_path, safe_serialization=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(default_model_dir() / name, tmp_path / name)
    model, tokenizer = load_hf_classifier(tmp_path, 32)
    assert model.labels == ["neg", "pos"]
    batch = tokenizer(["a text to classify", "another"])
    with torch.no_grad():
        expected = hf(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        logits = model(batch.input_ids, batch.attention_mask)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


def test_a_folder_without_a_classification_head_is_refused(tiny_bert_dir):
    from edge_variator.task import load_hf_classifier

    with pytest.raises(ModelLoadError, match="no classification head"):
        load_hf_classifier(tiny_bert_dir)
