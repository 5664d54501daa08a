"""Shared fixtures: a tiny random BERT saved as a Hugging Face folder keeps tests fast."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

from edge_variator.data import Example, TaskData
from edge_variator.encoder import default_model_dir

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
    config = FinetuneConfig(method="full", epochs=3, batch_size=16, lr=3e-3, max_length=32)
    finetune(toy_data(train=256), out, config, model_dir=tiny_bert_dir, progress=False)
    return out
