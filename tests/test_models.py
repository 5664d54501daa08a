"""Every shipped set's folder (models/<task>/, from scripts/train_all.py --ship) loads, fits its backbone
and stays within its size, so a fresh clone reports every set without training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edge_variator.exits import load_multi_exit
from edge_variator.plugins import RATIOS, PluginSet, attach
from edge_variator.task import checkpoint_sha256, load_task

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(path for path in (ROOT / "models").glob("*") if path.is_dir())
MAX_BYTES = 15_000_000


@pytest.mark.parametrize("folder", SHIPPED, ids=[path.name for path in SHIPPED])
def test_a_shipped_set_loads_and_fits_its_backbone(folder):
    """A set ships its teacher first (the longest stage) and the rest when its recipe has finished;
    a stage stopped midway may ship its checkpoint for the next machine (unfinished/)."""
    stopped = folder / "unfinished"
    shipped = [part for part in ("teacher", "quarter", "unfinished") if (folder / part).is_dir()]
    assert shipped, f"{folder.name} ships nothing"
    for checkpoint in stopped.rglob("*.pt"):  # what train_all.restore_unfinished continues from
        state = torch.load(checkpoint, weights_only=False)
        assert {"config", "epoch", "step", "weights", "optimizer"} <= set(state), checkpoint
    assert not stopped.is_dir() or (stopped / "costs.json").is_file()
    if (folder / "teacher").is_dir():  # mr's teacher is the package's own adapter
        _, _, teacher_info = load_task(folder / "teacher")
        assert json.loads((folder / "teacher" / "metrics.json").read_text())["test"]["accuracy"] > 0
    if not (folder / "quarter").is_dir():
        return
    model, _, info = load_multi_exit(folder / "quarter")
    assert info.thresholds, "the quarter model ships with its calibrated exit thresholds"
    if (folder / "teacher").is_dir():
        assert teacher_info.labels == info.labels
    sha = checkpoint_sha256(folder / "quarter")
    for ratio in RATIOS:
        plugin_set = PluginSet.load(folder / "quarter" / "plugins" / f"k{ratio}")
        attach(model.encoder, plugin_set, sha)  # refuses plugins bound to other weights
    measured = json.loads((folder / "measured.json").read_text())
    assert [row["ratio"] for row in measured["teacher"]] == [1, *RATIOS]
    assert len(measured["quarter_test_exit_accuracy"]) == model.encoder.config.layers


@pytest.mark.parametrize("folder", SHIPPED, ids=[path.name for path in SHIPPED])
def test_a_shipped_set_is_at_most_15_mb(folder):
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    assert size <= MAX_BYTES, f"{folder.name}: {size / 1e6:.2f} MB"


def test_the_report_names_folders_that_exist():
    results = json.loads((ROOT / "docs" / "results.json").read_text())
    named = [task["model_dir"] for task in results["tasks"] if "model_dir" in task]
    for model_dir in named:
        assert not Path(model_dir).is_absolute(), model_dir
        assert (ROOT / model_dir).is_dir(), model_dir
