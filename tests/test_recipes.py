"""The full-data recipes' levers: the teacher's states cached once, plugins fitted layer by layer,
and stages that resume where they were killed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import import_script, toy_data, toy_task
from safetensors.torch import load_file

from edge_variator.exits import load_multi_exit, save_multi_exit
from edge_variator.plugins import PluginSet, attach
from edge_variator.task import checkpoint_sha256, load_task
from edge_variator.train import (
    FinetuneConfig,
    PluginTrainConfig,
    ResumeError,
    SlenderConfig,
    cache_backbone_states,
    finetune,
    plugin_distillation_loss,
    resume_dir,
    train_plugins,
    train_slender,
)


def plugged_teacher(teacher: Path, ratio: int = 2):
    model, tokenizer, _ = load_task(teacher)
    sha = checkpoint_sha256(teacher)
    torch.manual_seed(0)
    plugin_set = PluginSet.for_backbone(model.encoder, sha, ratio, bottleneck=8)
    for parameter in plugin_set.parameters():  # trained plugins are not silent
        torch.nn.init.normal_(parameter, std=0.2)
    attach(model.encoder, plugin_set, sha)
    return model, tokenizer


@pytest.mark.parametrize(("dtype", "tolerance"), [("float32", 1e-5), ("float16", 2e-3)])
def test_the_cached_teacher_gives_the_loss_of_recomputing_it(toy_teacher, tmp_path, dtype, tolerance):
    model, tokenizer = plugged_teacher(toy_teacher)
    examples = toy_task(40, 3)
    cache = cache_backbone_states(model, tokenizer, examples, tmp_path / "states", "key", dtype)
    indices = [3, 7, 11, 20, 39]
    batch = tokenizer([examples[i].text for i in indices])
    labels = torch.tensor([examples[i].label for i in indices])
    config = PluginTrainConfig()
    with torch.no_grad():
        recomputed = plugin_distillation_loss(model, 2, batch, config, labels)
        cached = plugin_distillation_loss(model, 2, batch, config, labels,
                                          cache.gather(indices, batch.input_ids.shape[1]))
    assert recomputed.item() > 0.01  # the plugins change the states: there is a loss to match
    assert cached.item() == pytest.approx(recomputed.item(), rel=tolerance)


def test_the_kl_term_is_the_gap_between_compressed_and_uncompressed_predictions(toy_teacher):
    model, tokenizer = plugged_teacher(toy_teacher)
    examples = toy_task(8, 3)
    batch = tokenizer([e.text for e in examples])
    kl_only = PluginTrainConfig(mse_weight=0.0, ce_weight=0.0, kl_weight=1.0)
    with torch.no_grad():
        plugged = plugin_distillation_loss(model, 2, batch, kl_only).item()
        uncompressed = plugin_distillation_loss(model, 1, batch, kl_only).item()  # the teacher against itself
    assert plugged > 1e-4 and uncompressed == pytest.approx(0.0, abs=1e-6)
    labels = torch.tensor([e.label for e in examples])
    both = plugin_distillation_loss(model, 2, batch, PluginTrainConfig(kl_weight=1.0), labels).item()
    without = plugin_distillation_loss(model, 2, batch, PluginTrainConfig(), labels).item()
    assert both == pytest.approx(without + plugged, rel=1e-5)


def test_a_cache_is_reused_for_the_same_key_and_rebuilt_for_another(toy_teacher, tmp_path):
    model, tokenizer = plugged_teacher(toy_teacher)
    examples = toy_task(16, 3)
    cache_backbone_states(model, tokenizer, examples, tmp_path / "states", "one")
    written = (tmp_path / "states" / "states.bin").stat().st_mtime_ns
    cache_backbone_states(model, tokenizer, examples, tmp_path / "states", "one")
    assert (tmp_path / "states" / "states.bin").stat().st_mtime_ns == written
    rebuilt = cache_backbone_states(model, tokenizer, examples[:8], tmp_path / "states", "one")
    assert rebuilt.meta["examples"] == 8


def test_layerwise_fitting_lowers_every_layers_reconstruction_error(toy_teacher, tmp_path):
    config = PluginTrainConfig(epochs=0, layerwise_epochs=3, batch_size=16, lr=3e-3, max_length=32,
                               bottleneck=8)
    metrics = train_plugins(toy_teacher, toy_data(), tmp_path / "k4", 4, config, progress=False)
    assert [row["layer"] for row in metrics["layerwise"]] == [0, 1]
    for row in metrics["layerwise"]:
        assert row["mse_after"] < 0.9 * row["mse_before"], row
    assert metrics["history"][0]["stage"] == "layerwise"
    assert PluginSet.load(tmp_path / "k4").config.ratio == 4
    assert not resume_dir(tmp_path / "k4").exists()  # checkpoints and caches go once it is finished


STAGE_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from conftest import toy_data
from edge_variator.train import (ExitTrainConfig, FinetuneConfig, PluginTrainConfig, SlenderConfig, finetune,
                                 train_multi_exit, train_plugins, train_slender)
stage, out, source = sys.argv[1:4]
if stage == "assistant":  # source: a teacher
    config = ExitTrainConfig(epochs=2, batch_size=16, lr=1e-2, max_length=32, last_exit="teacher",
                             warm_exits_epochs=2, checkpoint_seconds=0)
    train_multi_exit(source, toy_data(), out, config, progress=False)
elif stage == "finetune":
    config = FinetuneConfig(method="full", epochs=3, batch_size=16, lr=3e-3, max_length=32,
                            checkpoint_seconds=0)
    finetune(toy_data(train=256), out, config, model_dir=source, progress=False)
elif stage == "slender":  # source: a multi-exit assistant
    config = SlenderConfig(epochs=1, repr_epochs=1, between_epochs=2, prune_steps=3, heads=1, neurons=16,
                           embedding_rank=16, importance_batches=2, batch_size=16, lr=1e-2, max_length=32,
                           checkpoint_seconds=0)
    train_slender(source, toy_data(), out, config, progress=False)
else:
    config = PluginTrainConfig(epochs=2, layerwise_epochs=2, batch_size=8, lr=3e-3, max_length=32,
                               bottleneck=8, checkpoint_seconds=0)
    train_plugins(source, toy_data(), out, 2, config, progress=False)
"""


def run_stage(stage: str, out: Path, source: Path) -> None:
    subprocess.run([sys.executable, "-c", STAGE_SCRIPT.format(tests=str(Path(__file__).parent)), stage,
                    str(out), str(source)], check=True)


def kill_midway(stage: str, out: Path, source: Path, checkpoint: str) -> None:
    """Start the stage in a process and SIGKILL it as soon as its `checkpoint` shows progress."""
    process = subprocess.Popen([sys.executable, "-c", STAGE_SCRIPT.format(tests=str(Path(__file__).parent)),
                                stage, str(out), str(source)])
    marker = resume_dir(out) / checkpoint
    deadline = time.monotonic() + 300
    while not marker.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "metrics.json").is_file(), "the stage finished before it could be killed"
    assert marker.is_file()


@pytest.mark.parametrize(("stage", "checkpoint"), [("finetune", "finetune.pt"), ("plugins", "layer1.pt"),
                                                   ("slender", "between-2.pt"), ("assistant", "exits.pt")])
def test_a_stage_killed_midway_resumes_to_the_uninterrupted_result(stage, checkpoint, tiny_bert_dir,
                                                                   toy_teacher, request, tmp_path):
    """The slender stage is killed in its second width's recovery, after the first width was saved; the
    assistant after its warm exits, which the resumed run takes from the checkpoint."""
    source = {"finetune": tiny_bert_dir, "plugins": toy_teacher, "assistant": toy_teacher}.get(stage)
    source = source or request.getfixturevalue("toy_assistant")
    run_stage(stage, tmp_path / "whole", source)
    kill_midway(stage, tmp_path / "resumed", source, checkpoint)
    run_stage(stage, tmp_path / "resumed", source)  # the same command again

    weights = "plugins.safetensors" if stage == "plugins" else "model.safetensors"
    whole, resumed = load_file(tmp_path / "whole" / weights), load_file(tmp_path / "resumed" / weights)
    assert whole.keys() == resumed.keys()
    for name in whole:
        torch.testing.assert_close(resumed[name], whole[name], rtol=0, atol=0, msg=name)
    history = [json.loads((tmp_path / run / "metrics.json").read_text())["history"]
               for run in ("whole", "resumed")]
    assert history[0] == history[1]


def test_a_stage_stopped_on_one_machine_continues_on_another_from_what_was_committed(
        tiny_bert_dir, tmp_path, monkeypatch):
    """--ship-unfinished copies a stopped LoRA-sized stage into models/<task>/unfinished/; a machine
    without runs/ continues it there, to the result of an uninterrupted run."""
    train_all = import_train_all()
    monkeypatch.setattr(train_all, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(train_all, "SHIPPED", tmp_path / "models")
    # the tiny model is fully fine-tuned here: its checkpoint and best epoch (16 MB) are a LoRA teacher's size
    monkeypatch.setattr(train_all, "COMMITTABLE_BYTES", 32 * 2**20)
    run_stage("finetune", tmp_path / "whole", tiny_bert_dir)
    stage = tmp_path / "runs" / "toy" / "teacher"
    kill_midway("finetune", stage, tiny_bert_dir, "finetune.pt")
    train_all.Costs(tmp_path / "runs" / "toy" / "costs.json").save()
    assert train_all.ship_unfinished("toy") == ["teacher"]
    assert (tmp_path / "models" / "toy" / "unfinished" / "teacher.resume" / "finetune.pt").is_file()

    shutil.rmtree(tmp_path / "runs")  # the next machine
    train_all.restore_unfinished("toy")
    run_stage("finetune", stage, tiny_bert_dir)
    whole = load_file(tmp_path / "whole" / "model.safetensors")
    resumed = load_file(stage / "model.safetensors")
    for name in whole:
        torch.testing.assert_close(resumed[name], whole[name], rtol=0, atol=0, msg=name)


def test_a_finished_plugin_set_ships_with_the_stopped_stages_and_comes_back(tmp_path, monkeypatch):
    """The teacher's finished plugin sets are not in the shipped teacher/: --ship-unfinished carries
    them, so a fresh machine does not train them again; the teacher itself ships apart."""
    train_all = import_train_all()
    monkeypatch.setattr(train_all, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(train_all, "SHIPPED", tmp_path / "models")
    root = tmp_path / "runs" / "toy"
    for folder, name in [("teacher", "adapter.safetensors"), ("teacher/plugins/k2", "plugins.safetensors"),
                         ("teacher/plugins/k4.resume", "layer0.pt")]:
        (root / folder).mkdir(parents=True)
        (root / folder / name).write_bytes(b"weights")
    (root / "teacher" / "metrics.json").write_text("{}")
    (root / "teacher" / "plugins" / "k2" / "metrics.json").write_text("{}")
    train_all.Costs(root / "costs.json").save()
    assert train_all.ship_unfinished("toy") == ["teacher/plugins/k2", "teacher/plugins/k4"]
    assert not (tmp_path / "models" / "toy" / "unfinished" / "teacher" / "adapter.safetensors").exists()
    shutil.rmtree(tmp_path / "runs")  # the next machine
    train_all.restore_unfinished("toy")
    assert (root / "teacher" / "plugins" / "k2" / "plugins.safetensors").read_bytes() == b"weights"
    assert (root / "teacher" / "plugins" / "k4.resume" / "layer0.pt").is_file()


def test_remeasuring_the_teachers_plugins_replaces_only_their_scores(tmp_path, monkeypatch):
    train_all = import_train_all()
    monkeypatch.setattr(train_all, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(train_all, "SHIPPED", tmp_path / "models")
    monkeypatch.setattr(train_all, "RECIPES", {"toy": train_all.Recipe(32, 1, 1, 1)})
    monkeypatch.setattr(train_all, "load_benchmark", lambda task: task)
    monkeypatch.setattr(train_all, "teacher_dir", lambda task: tmp_path / "runs" / task / "teacher")
    scored = []
    monkeypatch.setattr(train_all, "evaluate_ratios", lambda *args: scored.append(args) or [{"ratio": 2}])
    plugins = tmp_path / "runs" / "toy" / "teacher" / "plugins"
    for ratio in (2, 4):
        (plugins / f"k{ratio}").mkdir(parents=True)
        (plugins / f"k{ratio}" / "metrics.json").write_text("{}")
    with pytest.raises(SystemExit, match="k8 are not finished"):
        train_all.remeasure_teacher("toy")
    (plugins / "k8").mkdir()
    (plugins / "k8" / "metrics.json").write_text("{}")
    (tmp_path / "models" / "toy").mkdir(parents=True)
    for folder in ("models", "runs"):
        (tmp_path / folder / "toy" / "measured.json").write_text(json.dumps({"teacher": [], "quarter": [1]}))
    assert train_all.remeasure_teacher("toy") == [{"ratio": 2}]
    assert scored[0][1:] == (plugins, "toy", "test", [2, 4, 8], 32)
    for folder in ("models", "runs"):
        measured = json.loads((tmp_path / folder / "toy" / "measured.json").read_text())
        assert measured == {"teacher": [{"ratio": 2}], "quarter": [1]}


def test_a_stage_too_large_to_commit_stays_in_runs(tmp_path, monkeypatch):
    train_all = import_train_all()
    monkeypatch.setattr(train_all, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(train_all, "SHIPPED", tmp_path / "models")
    monkeypatch.setattr(train_all, "COMMITTABLE_BYTES", 1000)
    resume = tmp_path / "runs" / "toy" / "assistant.resume"
    resume.mkdir(parents=True)
    (resume / "exits.pt").write_bytes(b"x" * 1001)
    assert train_all.ship_unfinished("toy") == []
    assert not (tmp_path / "models" / "toy" / "unfinished").exists()


def test_a_checkpoint_from_other_settings_is_refused(tiny_bert_dir, tmp_path):
    config = FinetuneConfig(method="full", epochs=2, batch_size=16, lr=3e-3, max_length=32,
                            checkpoint_seconds=0)
    kill_midway("finetune", tmp_path / "run", tiny_bert_dir, "finetune.pt")
    with pytest.raises(ResumeError, match="epochs"):
        finetune(toy_data(train=256), tmp_path / "run", config, model_dir=tiny_bert_dir, progress=False)


def test_a_slender_stage_refuses_to_resume_a_model_pruned_from_another_assistant(toy_assistant, tmp_path):
    """The assistant was trained again after the quarter began: its pruned widths are stale."""
    kill_midway("slender", tmp_path / "run", toy_assistant, "between-2.pt")
    model, tokenizer, info = load_multi_exit(toy_assistant)
    with torch.no_grad():
        model.exits[0].classifier.bias.add_(1.0)
    save_multi_exit(model, tokenizer, info, tmp_path / "other")
    config = SlenderConfig(epochs=1, repr_epochs=1, between_epochs=2, prune_steps=3, heads=1, neurons=16,
                           embedding_rank=16, importance_batches=2, batch_size=16, lr=1e-2, max_length=32,
                           checkpoint_seconds=0)
    with pytest.raises(ResumeError, match="pruned from another assistant"):
        train_slender(tmp_path / "other", toy_data(), tmp_path / "run", config, progress=False)


def test_a_checkpoint_from_before_a_setting_existed_resumes_at_its_default(tiny_bert_dir, tmp_path):
    """Older code wrote no decay_biases_and_norms: it matches the default (what that code did) only."""
    kill_midway("finetune", tmp_path / "run", tiny_bert_dir, "finetune.pt")
    path = resume_dir(tmp_path / "run") / "finetune.pt"
    state = torch.load(path, weights_only=False)
    del state["config"]["decay_biases_and_norms"]
    torch.save(state, path)
    config = FinetuneConfig(method="full", epochs=3, batch_size=16, lr=3e-3, max_length=32,
                            checkpoint_seconds=0)
    with pytest.raises(ResumeError, match="decay_biases_and_norms"):
        finetune(toy_data(train=256), tmp_path / "run", replace(config, decay_biases_and_norms=False),
                 model_dir=tiny_bert_dir, progress=False)
    metrics = finetune(toy_data(train=256), tmp_path / "run", config, model_dir=tiny_bert_dir, progress=False)
    assert metrics["history"][-1]["epoch"] == 3


def import_train_all():
    return import_script("train_all")


def test_a_stage_stopped_and_resumed_counts_the_time_of_both_runs(tmp_path):
    train_all = import_train_all()
    path, done = tmp_path / "costs.json", tmp_path / "done"
    costs = train_all.Costs(path)
    costs.tick_seconds = 0.05

    def stopped() -> None:
        time.sleep(0.3)
        raise KeyboardInterrupt  # a run that does not finish

    with pytest.raises(KeyboardInterrupt):
        costs.timed("stage", done, stopped)
    so_far = json.loads(path.read_text())["unfinished"]["stage"]
    assert 0.3 <= so_far  # its time up to the stop, not up to the last tick
    resumed = train_all.Costs(path)
    resumed.timed("stage", done, lambda: (time.sleep(0.1), done.touch()))
    written = json.loads(path.read_text())
    # both are rounded to 0.1 s, and rounding keeps order (0.2 + 0.1 > 0.3 in floats: compare rounded)
    assert "unfinished" not in written and written["stage"] >= round(so_far + 0.1, 1)
    resumed.timed("stage", done, lambda: pytest.fail("a finished stage runs again"))


@pytest.mark.parametrize(("after", "kept"),
                         [([0.80, 0.86], True), ([0.70, 0.90], False), ([0.74, 0.88], False)])
def test_the_refined_quarter_ships_only_where_its_exits_gained_on_dev_on_average(tmp_path, monkeypatch,
                                                                                  after, kept):
    train_all = import_train_all()
    monkeypatch.setattr(train_all, "RUNS", tmp_path)
    monkeypatch.setattr(train_all, "RECIPES", {"toy": train_all.Recipe(32, 1, 1, 1, refine_epochs=1)})
    assert train_all.slender_dir("toy") == tmp_path / "toy" / "quarter"  # not refined yet
    (tmp_path / "toy" / "refined").mkdir(parents=True)
    (tmp_path / "toy" / "refined" / "metrics.json").write_text(
        json.dumps({"dev_exit_accuracy_before": [0.74, 0.88], "dev_exit_accuracy": after}))
    expected = tmp_path / "toy" / ("refined" if kept else "quarter")
    assert train_all.slender_dir("toy") == expected


def test_training_a_shipped_sets_slender_side_again_keeps_its_teacher_and_refuses_a_stale_quarter(
        tmp_path, monkeypatch):
    """--slender-again: the assistant on with today's recipe, from the shipped teacher, whose plugin
    scores and stage times are kept, not trained again; a quarter pruned from an earlier assistant
    is refused rather than reused."""
    train_all = import_train_all()
    runs, shipped = tmp_path / "runs" / "toy", tmp_path / "models" / "toy"
    monkeypatch.setattr(train_all, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(train_all, "SHIPPED", tmp_path / "models")
    recipe = train_all.Recipe(32, 1, 1, 1, assistant_last_exit="teacher")
    monkeypatch.setattr(train_all, "RECIPES", {"toy": recipe})
    monkeypatch.setattr(train_all, "load_benchmark", lambda task: task)
    (shipped / "teacher").mkdir(parents=True)
    (shipped / "teacher" / "metrics.json").write_text("{}")
    (shipped / "measured.json").write_text(json.dumps({"teacher": [{"ratio": 1, "accuracy": 0.9}]}))
    (shipped / "costs.json").write_text(json.dumps({"teacher": 10.0, "teacher plugins k=2": 5.0,
                                                    "assistant": 7.0, "quarter": 8.0}))
    calls = []

    def stage(name):
        def run(source, data, out, config, *rest):
            calls.append((name, Path(source), config))
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / "metrics.json").write_text("{}")
            (Path(out) / "exits.json").write_text(json.dumps({"distilled_from_sha256": str(source)}))
        return run

    monkeypatch.setattr(train_all, "train_multi_exit", stage("assistant"))
    monkeypatch.setattr(train_all, "train_slender", stage("quarter"))
    monkeypatch.setattr(train_all, "train_plugins", lambda *args: calls.append(("plugins",)))
    monkeypatch.setattr(train_all, "checkpoint_sha256", str)
    monkeypatch.setattr(train_all, "to_fp16", lambda path: None)
    monkeypatch.setattr(train_all, "refine_and_plugins", lambda *args: calls.append(("quarter plugins",)))
    monkeypatch.setattr(train_all, "measure", lambda task, teacher: {"teacher": teacher, "quarter": 1})
    monkeypatch.setattr(train_all, "ship", lambda task: calls.append(("ship", task)))
    train_all.slender_again("toy", "cpu", "measure")
    assert [call[0] for call in calls] == ["assistant", "quarter", "quarter plugins", "ship"]
    assert calls[0][1] == runs / "teacher" and calls[0][2].last_exit == "teacher"
    assert (runs / "teacher" / "metrics.json").is_file()  # the shipped teacher, not trained again
    assert json.loads((runs / "measured.json").read_text()) == {"teacher": [{"ratio": 1, "accuracy": 0.9}],
                                                                "quarter": 1}
    assert set(json.loads((runs / "costs.json").read_text())) == {"teacher", "teacher plugins k=2",
                                                                  "assistant", "quarter", "measure"}
    shutil.rmtree(runs / "assistant")  # the recipe changed again: a new assistant, the old quarter stays
    (runs / "measured.json").unlink()
    with pytest.raises(SystemExit, match="distilled from another assistant"):
        monkeypatch.setattr(train_all, "checkpoint_sha256", lambda path: "another")
        train_all.slender_again("toy", "cpu", "measure")
