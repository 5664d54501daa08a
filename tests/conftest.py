"""Shared fixtures: a tiny random BERT saved as a Hugging Face folder keeps tests fast."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

from edge_variator.data import Example, TaskData
from edge_variator.encoder import Encoder, EncoderConfig, default_model_dir
from edge_variator.exits import MultiExitModel
from edge_variator.plugins import PluginSet, attach

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A random 2-layer, 32-wide BertModel (with the default model's tokenizer) saved by transformers."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=512)
    folder = tmp_path_factory.mktemp("tiny_bert")
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copy(default_model_dir() / name, folder / name)
    return folder


POSITIVE = ["great", "wonderful", "superb", "brilliant", "lovely", "excellent"]
NEGATIVE = ["awful", "terrible", "boring", "dreadful", "poor", "horrible"]


def toy_task(n: int, seed: int) -> list[Example]:
    """Separable two-label reviews of varied length."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randrange(2)
        word = rng.choice([NEGATIVE, POSITIVE][label])
        rows.append(Example(f"the film was {word} " + "and long " * rng.randrange(4), label))
    return rows


def toy_data(train: int = 128, dev: int = 32, test: int = 32) -> TaskData:
    return TaskData("toy", ["negative", "positive"], toy_task(train, 0), toy_task(dev, 1), toy_task(test, 2))


@pytest.fixture(scope="session")
def toy_teacher(tiny_bert_dir, tmp_path_factory) -> Path:
    """The tiny BERT fully fine-tuned on the toy task: a teacher for the distillation stages."""
    from edge_variator.train import FinetuneConfig, finetune

    out = tmp_path_factory.mktemp("toy_teacher") / "teacher"
    # BERT's pooler, as every shipped teacher; the distillation tests' thresholds were set on it
    config = FinetuneConfig(method="full", epochs=3, batch_size=16, lr=3e-3, max_length=32, pooling="cls")
    finetune(toy_data(train=256), out, config, model_dir=tiny_bert_dir, progress=False)
    return out


TINY_CONFIG = EncoderConfig(vocab_size=30522, hidden=32, layers=2, heads=4, intermediate=64, max_positions=64)
SHA = "ab" * 32  # the backbone hash tiny plugin sets are bound to


def tiny_model(ratios=(2,)) -> MultiExitModel:
    """A random 2-layer multi-exit model with plugins strong enough to change its outputs."""
    torch.manual_seed(0)
    model = MultiExitModel(Encoder(TINY_CONFIG), ["no", "yes"]).eval()
    for ratio in ratios:
        plugin_set = PluginSet.for_backbone(model.encoder, SHA, ratio, bottleneck=8)
        for parameter in plugin_set.parameters():  # not the near-silent init: make the plugins matter
            torch.nn.init.normal_(parameter, std=0.2)
        attach(model.encoder, plugin_set, SHA)
    return model


def tiny_source(thresholds=None) -> dict:
    """What load_model would say about where tiny_model came from."""
    return {"id": "tiny", "sha256": SHA, "criterion": "entropy", "thresholds": thresholds or {"drop_1": 0.4}}


RUNNER_TEXTS = [example.text for example in toy_task(24, 5)] + [
    "a longer text, well past sixteen tokens, so that it runs at a bigger padded length than the rest"]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from edge_variator.tokenizer import Tokenizer

    return Tokenizer(default_model_dir(), 64)


@pytest.fixture(scope="session")
def tiny_threshold(tiny_tokenizer) -> float:
    """The median uncertainty of tiny_model's first exit on RUNNER_TEXTS: about half stop there."""
    from edge_variator.exits import uncertainty

    batch = tiny_tokenizer(RUNNER_TEXTS)
    with torch.no_grad():
        logits = tiny_model()(batch.input_ids, batch.attention_mask)
    return uncertainty(logits[0]).median().item()


@pytest.fixture(scope="session")
def tiny_bundle(tiny_tokenizer, tiny_threshold, tmp_path_factory) -> Path:
    """tiny_model (ratios 1 and 2, an exit after each layer) exported to an ExecuTorch bundle."""
    from edge_variator.export.bundle import write_bundle

    out = tmp_path_factory.mktemp("bundle") / "tiny"
    write_bundle(tiny_model(), tiny_tokenizer, tiny_source({"drop_1": tiny_threshold}), out, progress=False)
    return out
