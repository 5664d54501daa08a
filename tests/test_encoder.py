"""The encoder equals transformers' BertModel, exports with a dynamic length, converts to Core ML."""

from __future__ import annotations

import json
import shutil

import coremltools as ct
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.export import Dim, export
from transformers import AutoModel, BertModel

from edge_variator.encoder import (
    FAMILIES,
    Encoder,
    EncoderConfig,
    ModelLoadError,
    default_model_dir,
    hf_state_dict,
    load_encoder,
)
from edge_variator.tokenizer import Tokenizer

TEXTS = ["a gripping, beautifully shot film", "dull", "the plot " * 40]


def assert_matches_transformers(model_dir, atol=1e-5):
    ours = load_encoder(model_dir)
    theirs = BertModel.from_pretrained(str(model_dir)).eval()
    batch = Tokenizer(model_dir, max_length=128)(TEXTS)
    with torch.no_grad():
        states = ours(batch.input_ids, batch.attention_mask, batch.token_type_ids)
        reference = theirs(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                           token_type_ids=batch.token_type_ids, output_hidden_states=True)
        pooled = torch.tanh(ours.pooler(states[-1][:, 0]))  # BERT's pooler
    real = batch.attention_mask.bool()  # padding positions are don't-care in both
    assert len(states) == len(reference.hidden_states) == ours.config.layers + 1
    for mine, theirs_state in zip(states, reference.hidden_states, strict=True):
        torch.testing.assert_close(mine[real], theirs_state[real], atol=atol, rtol=0)
    torch.testing.assert_close(pooled, reference.pooler_output, atol=atol, rtol=0)


def test_every_family_matches_transformers_own_model(tiny_family_dir):
    """BERT, RoBERTa, XLM-R, DistilBERT and ELECTRA, each with its own details, with padding."""
    ours = load_encoder(tiny_family_dir)
    theirs = AutoModel.from_pretrained(str(tiny_family_dir)).eval()
    assert ours.config.family == theirs.config.model_type
    batch = Tokenizer(tiny_family_dir, max_length=128)(TEXTS)
    inputs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
    if ours.config.type_vocab_size:
        inputs["token_type_ids"] = batch.token_type_ids
    with torch.no_grad():
        states = ours(batch.input_ids, batch.attention_mask, batch.token_type_ids)
        reference = theirs(**inputs, output_hidden_states=True).hidden_states
    real = batch.attention_mask.bool()
    assert real.sum() < real.numel()  # some padding: RoBERTa's positions must skip it
    assert len(states) == len(reference) == ours.config.layers + 1
    for mine, theirs_state in zip(states, reference, strict=True):
        torch.testing.assert_close(mine[real], theirs_state[real], atol=1e-5, rtol=0)


def test_random_small_config_matches_transformers(tiny_bert_dir):
    assert_matches_transformers(tiny_bert_dir)


def test_packaged_minilm_matches_transformers():
    assert_matches_transformers(default_model_dir())


def test_saved_weights_round_trip_under_hf_names(tiny_bert_dir, tmp_path):
    encoder = load_encoder(tiny_bert_dir)
    save_file(hf_state_dict(encoder), tmp_path / "model.safetensors")
    assert set(load_file(tmp_path / "model.safetensors")) <= set(
        load_file(tiny_bert_dir / "model.safetensors"))
    shutil.copy(tiny_bert_dir / "config.json", tmp_path / "config.json")
    reloaded = load_encoder(tmp_path)
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(tensor, reloaded.state_dict()[name])


def test_every_family_round_trips_under_its_own_names_and_loads_from_a_task_checkpoint(tiny_family_dir,
                                                                                        tmp_path):
    """Our weights saved under the family's names are the ones transformers saved (and reload to
    the same encoder), and a XForSequenceClassification checkpoint of the same weights loads too."""
    from transformers import AutoModelForSequenceClassification

    encoder = load_encoder(tiny_family_dir)
    saved = hf_state_dict(encoder)
    original = load_file(tiny_family_dir / "model.safetensors")
    # DistilBERT and ELECTRA have no pooler: ours is initialised, and is all that transformers lacks
    assert set(saved) - set(original) <= {"pooler.dense.weight", "pooler.dense.bias"}
    assert all(torch.equal(saved[name], original[name]) for name in saved if name in original)
    task = AutoModelForSequenceClassification.from_pretrained(str(tiny_family_dir), num_labels=3)
    task.save_pretrained(tmp_path, safe_serialization=True)
    prefix = FAMILIES[encoder.config.family].prefix
    assert any(key.startswith(prefix) for key in load_file(tmp_path / "model.safetensors"))
    from_task = load_encoder(tmp_path)
    for name, tensor in encoder.state_dict().items():
        if not name.startswith("pooler."):  # some task heads drop the pooler; ours is then initialised
            assert torch.equal(tensor, from_task.state_dict()[name]), name


def test_missing_weights_are_named(tiny_bert_dir, tmp_path):
    weights = load_file(tiny_bert_dir / "model.safetensors")
    del weights["encoder.layer.1.intermediate.dense.weight"]
    save_file(weights, tmp_path / "model.safetensors")
    shutil.copy(tiny_bert_dir / "config.json", tmp_path / "config.json")
    with pytest.raises(ModelLoadError, match="encoder.layer.1.intermediate.dense.weight"):
        load_encoder(tmp_path)


def test_unsupported_architecture_is_refused(tiny_bert_dir, tmp_path):
    config = json.loads((tiny_bert_dir / "config.json").read_text())
    config["model_type"] = "gpt2"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="unsupported architecture model_type='gpt2'"):
        load_encoder(tmp_path)


def test_folder_without_safetensors_is_refused(tiny_bert_dir, tmp_path):
    shutil.copy(tiny_bert_dir / "config.json", tmp_path / "config.json")
    with pytest.raises(ModelLoadError, match="no model.safetensors"):
        load_encoder(tmp_path)


class LastHidden(torch.nn.Module):
    def __init__(self, encoder: Encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids, attention_mask):
        return self.encoder(input_ids, attention_mask)[-1]


def tiny_encoder() -> Encoder:
    torch.manual_seed(0)
    config = EncoderConfig(vocab_size=100, hidden=32, layers=2, heads=4, intermediate=64,
                           max_positions=64)
    return Encoder(config).eval()


def export_dynamic(encoder: Encoder):
    """torch.export with seq = 8 * blocks, blocks in 2..max/8 (the recipe in DESIGN.md)."""
    seq = 8 * Dim("blocks", min=2, max=encoder.config.max_positions // 8)
    ids = torch.randint(1, 100, (1, 32))
    return export(LastHidden(encoder), (ids, torch.ones_like(ids)),
                  dynamic_shapes=({1: seq}, {1: seq}))


def test_export_with_dynamic_sequence_length_matches_eager():
    encoder = tiny_encoder()
    program = export_dynamic(encoder).module()
    for length in (16, 40, 64):
        ids = torch.randint(1, 100, (1, length))
        mask = torch.ones_like(ids)
        mask[0, length - 5:] = 0
        with torch.no_grad():
            torch.testing.assert_close(program(ids, mask), LastHidden(encoder)(ids, mask),
                                       atol=1e-6, rtol=0)


def test_coreml_conversion_keeps_dynamic_length_and_fp16():
    program = export_dynamic(tiny_encoder()).run_decompositions({})
    model = ct.convert(program, minimum_deployment_target=ct.target.iOS18,
                       compute_precision=ct.precision.FLOAT16)
    spec = model.get_spec()
    inputs = {i.name: i.type.multiArrayType for i in spec.description.input}
    assert list(inputs) == ["input_ids", "attention_mask"]
    seq_range = inputs["input_ids"].shapeRange.sizeRanges[1]
    assert (seq_range.lowerBound, seq_range.upperBound) == (16, 64)
    [output] = spec.description.output
    assert output.type.multiArrayType.dataType == ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT16
    ops = {op.type for block in spec.mlProgram.functions["main"].block_specializations.values()
           for op in block.operations}
    # iOS 18 has a fused attention op; the exported program's SDPA maps onto it
    assert {"scaled_dot_product_attention", "linear", "layer_norm"} <= ops
