"""Fine-tuning: a tiny run learns, saves its best checkpoint, and batches are length-bucketed."""

from __future__ import annotations

import json
import random
import warnings

import pytest
from conftest import toy_task

from edge_variator.data import TaskData
from edge_variator.evaluation import evaluate
from edge_variator.task import load_task
from edge_variator.train import FinetuneConfig, finetune, length_bucketed_batches


def test_tiny_finetune_lowers_the_loss_and_saves_the_best(tiny_bert_dir, tmp_path):
    data = TaskData("toy", ["negative", "positive"], toy_task(256, 0), toy_task(64, 1), toy_task(64, 2))
    config = FinetuneConfig(method="full", epochs=4, batch_size=16, lr=3e-3, max_length=32)
    metrics = finetune(data, tmp_path / "ft", config, model_dir=tiny_bert_dir, progress=False)

    first, last = metrics["history"][0]["losses"], metrics["history"][-1]["losses"]
    assert sum(last) / len(last) < 0.8 * sum(first) / len(first)
    assert metrics["dev"]["accuracy"] == max(h["dev_accuracy"] for h in metrics["history"])
    assert json.loads((tmp_path / "ft" / "metrics.json").read_text())["test"] == metrics["test"]
    assert metrics["lr"] == 3e-3
    model, tokenizer, _ = load_task(tmp_path / "ft")
    assert evaluate(model, tokenizer, data.dev)["accuracy"] == metrics["dev"]["accuracy"]


def test_tiny_lora_run_trains_only_a_small_file(tiny_bert_dir, tmp_path):
    data = TaskData("toy", ["negative", "positive"], toy_task(128, 0), toy_task(32, 1), toy_task(32, 2))
    config = FinetuneConfig(method="lora", epochs=2, batch_size=16, max_length=32, lora_rank=4)
    metrics = finetune(data, tmp_path / "lora", config, model_dir=tiny_bert_dir, progress=False)
    losses = [loss for h in metrics["history"] for loss in h["losses"]]
    assert sum(losses[-4:]) < sum(losses[:4])
    assert sorted(p.name for p in (tmp_path / "lora").iterdir()) == [
        "adapter.safetensors", "metrics.json", "task.json"]


def test_length_bucketed_batches_cover_every_example_once():
    lengths = [random.Random(i).randrange(5, 200) for i in range(1000)]
    batches = length_bucketed_batches(lengths, 32, random.Random(0))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert batches == length_bucketed_batches(lengths, 32, random.Random(0))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 20  # random batches of 32 would spread over ~180 tokens


@pytest.mark.parametrize("decay_all", [True, False])
def test_biases_and_norms_decay_only_when_asked(tiny_bert_dir, decay_all):
    from edge_variator.encoder import load_encoder
    from edge_variator.task import TaskModel, add_lora
    from edge_variator.train import LoopConfig, optimizer_groups

    model = TaskModel(load_encoder(tiny_bert_dir), ["a", "b"])
    add_lora(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = optimizer_groups(trainable, LoopConfig(decay_biases_and_norms=decay_all), 1e-3,
                              list(model.classifier.parameters()), 1e-2)
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert sum(len(g["params"]) for g in groups) == len(trainable)
    assert {g["lr"] for g in groups} == {1e-3, 1e-2}
    norm_gain = model.encoder.layers[0].ffn_norm.weight
    lora_a = model.encoder.layers[0].attention.query.lora_a
    assert id(lora_a) in decayed and id(model.classifier.weight) in decayed
    assert (id(norm_gain) in decayed) == decay_all and (id(model.classifier.bias) in decayed) == decay_all


def test_an_epoch_no_better_than_the_majority_class_is_flagged_and_strict_stops():
    from conftest import toy_data

    from edge_variator.train import LearningStalledError, LearningStalledWarning, check_learning

    data = toy_data()
    majority = max(set(e.label for e in data.train), key=[e.label for e in data.train].count)
    constant = sum(e.label == majority for e in data.dev) / len(data.dev)
    with pytest.warns(LearningStalledWarning, match="no better than always answering.*--lr"):
        check_learning("fine-tune toy", 1, constant, data, 5e-5, FinetuneConfig())
    with pytest.raises(LearningStalledError, match="this run: 5e-05"):
        check_learning("fine-tune toy", 1, constant, data, 5e-5, FinetuneConfig(strict=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_learning("fine-tune toy", 1, constant + 0.05, data, 5e-5, FinetuneConfig(strict=True))


@pytest.fixture(scope="module")
def smaller_bert(tmp_path_factory):
    """A smaller pre-trained BERT of one's own: all-MiniLM-L6-v2 cut to its first 2 layers."""
    import shutil

    from conftest import TOKENIZER_FILES
    from transformers import BertModel

    from edge_variator.encoder import default_model_dir

    folder = tmp_path_factory.mktemp("smaller_bert")
    model = BertModel.from_pretrained(str(default_model_dir()))
    model.encoder.layer = model.encoder.layer[:2]
    model.config.num_hidden_layers = 2
    model.save_pretrained(folder, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copy(default_model_dir() / name, folder / name)
    return folder


def test_a_smaller_bert_fine_tuned_with_the_defaults_beats_the_majority_class(smaller_bert, tmp_path):
    """The newcomer's run: full fine-tuning, one epoch of 2,000 mr texts, every other setting the
    default. Pooled on CLS it stayed at chance (48.3% dev, 50.3% test): its CLS vectors barely
    differ between texts after 2 layers."""
    from edge_variator.data import load_benchmark

    data = load_benchmark("mr")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no LearningStalledWarning either
        metrics = finetune(data, tmp_path / "ft", FinetuneConfig(epochs=1, max_train=2000),
                           model_dir=smaller_bert, progress=False)
    majority = max(sum(e.label == label for e in data.dev) for label in range(2)) / len(data.dev)
    assert metrics["lr"] == 5e-5 and metrics["config"]["pooling"] == "mean"
    assert metrics["dev"]["accuracy"] > majority + 0.1


def test_a_compressed_model_more_than_two_points_down_on_dev_is_flagged():
    from edge_variator.evaluation import QualityLossWarning, compare_quality

    with pytest.warns(QualityLossWarning, match=r"k=4 reaches 80.00% on dev, 3.0 points below .* 83.00%"):
        records = compare_quality("k=4 plugins", [("k=4", 0.80, 0.83)])
    assert records == [{"name": "k=4", "dev_accuracy": 0.80, "uncompressed_dev_accuracy": 0.83,
                        "points_lost": 3.0}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = compare_quality("k=2 plugins", [("k=2", 0.815, 0.83), ("k=8", 0.84, 0.83)])
    assert [r["points_lost"] for r in records] == [1.5, -1.0]


def test_the_cli_shows_our_warnings_as_one_plain_line(capsys):
    from edge_variator.cli import show_warning
    from edge_variator.evaluation import QualityLossWarning

    show_warning(QualityLossWarning("k=4 reaches 80%"), QualityLossWarning, "train.py", 1)
    assert capsys.readouterr().err == "edge-variator: warning: k=4 reaches 80%\n"
