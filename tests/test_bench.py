"""Benchmarks run end to end in a tiny setting, so they cannot rot between releases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_plugins_bench_prints_a_row_per_ratio():
    result = subprocess.run([sys.executable, "bench/plugins.py", "--lengths", "16", "--repeats", "1"],
                            cwd=ROOT, capture_output=True, text=True, check=True, timeout=300)
    rows = [line.split() for line in result.stdout.splitlines() if line.strip().startswith("16 ")]
    assert [row[1] for row in rows] == ["1", "2", "4", "8"]
    assert float(rows[0][-1]) == 1.0 and float(rows[0][-2]) == 1.0


@pytest.mark.slow
def test_partitions_bench_counts_what_xnnpack_leaves_out():
    """A layer lowers to 2 XNNPACK partitions, plain or plugged (bench/partitions.py):
    an export change that splits a layer further shows here before it shows in a latency."""
    result = subprocess.run([sys.executable, "bench/partitions.py"], cwd=ROOT, capture_output=True, text=True,
                            check=True, timeout=1200)
    partitions = {row.split()[0]: int(row.split()[1]) for row in result.stdout.splitlines()[1:]}
    assert partitions == {"embed": 1, "layer_0_k1": 2, "layer_0_k2": 2, "layer_0_k4": 2, "layer_0_k8": 2,
                          "exit_5": 1}


@pytest.mark.slow
def test_export_bench_prints_a_row_per_method():
    result = subprocess.run([sys.executable, "bench/export.py", "--lengths", "16", "--repeats", "1"],
                            cwd=ROOT, capture_output=True, text=True, check=True, timeout=1200)
    rows = [line.split() for line in result.stdout.splitlines() if line.strip().startswith("16 ")]
    assert [row[1] for row in rows] == ["layer_0_k1", "layer_0_k2", "layer_0_k4", "layer_0_k8", "gemm"]


def test_soak_bench_reports_memory_growth(tiny_bundle):
    command = [sys.executable, "bench/soak.py", "--bundle", str(tiny_bundle), "--calls", "220",
               "--warmup", "5"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True, timeout=300)
    # bad inputs at calls 0 (NaN battery), 97 (empty text) and 193 (invalid UTF-8)
    assert "220 runner calls" in result.stdout and "3 bad inputs refused" in result.stdout
    assert "growth after warm-up:" in result.stdout


def test_report_quick_regenerates_results_and_plots(tmp_path):
    """`python bench/report.py --quick`: the comparison report end to end, so it cannot rot."""
    import os

    env = {**os.environ, "EDGE_VARIATOR_BUNDLES": str(tmp_path / "bundles")}
    command = [sys.executable, "bench/report.py", "--quick", "--out", str(tmp_path / "report"),
               "--work", str(tmp_path / "work")]
    subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True, timeout=300, env=env)
    report = (tmp_path / "report" / "RESULTS.md").read_text()
    configs = ("pytorch eager", "onnxruntime fp32", "onnxruntime int8", "ours k=1", "ours k=8 exit drop_2")
    assert all(f"| {config} |" in report for config in configs)
    assert "## Targets" in report and ("**met**" in report or "**missed**" in report)
    assert "| 64 | gemm roofline |" in report
    for png in ("accuracy_vs_latency_mr.png", "latency_by_length.png"):
        assert (tmp_path / "report" / png).read_bytes()[:4] == b"\x89PNG"


def bench_module(name: str):
    """bench/<name>.py, imported the way its scripts import each other."""
    import importlib

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "bench"))


def task_result(ours: list[tuple[str, float, float]], name: str = "toy") -> dict:
    """A compare.py task result: the uncompressed model at 90% (ONNX Runtime fp32: 10 ms per text),
    and `ours` as (config, accuracy, ms)."""
    rows = [{"config": "pytorch eager", "accuracy": 0.90, "mean_ms": 20.0},
            {"config": "onnxruntime fp32", "accuracy": 0.90, "mean_ms": 10.0}]
    rows += [{"config": c, "accuracy": a, "mean_ms": ms, "mean_exit_layer": 2.0} for c, a, ms in ours]
    return {"task": name, "texts": 10, "of": 10, "max_length": 128, "ours": "a toy model", "accuracy": rows}


def test_combined_target_takes_the_fastest_of_ours_within_two_points():
    report = bench_module("report")
    met = report.combined_target(task_result([("ours k=1", 0.89, 4.0), ("ours k=1 exit drop_1", 0.885, 2.0),
                                              ("ours k=1 exit drop_2", 0.85, 1.0)]))
    assert met["met"] and met["best"]["config"] == "ours k=1 exit drop_1" and met["best"]["speedup"] == 5.0
    assert met["why"] == ""
    missed = report.combined_target(task_result([("ours k=1", 0.89, 4.0),
                                                 ("ours k=1 exit drop_2", 0.85, 1.0)]))
    assert not missed["met"] and missed["best"]["config"] == "ours k=1"
    assert "ours k=1 exit drop_2, is 10.00x at -5.00 points" in missed["why"]
    none = report.combined_target(task_result([("ours k=1", 0.80, 4.0)]))
    assert not none["met"] and none["best"] is None and "ours k=1, is -10.00" in none["why"]


def test_targets_list_every_data_set_and_say_why_one_misses():
    report = bench_module("report")
    result = {"latency": [], "not_run": {"20ng": "no task model"},
              "tasks": [task_result([("ours k=1", 0.89, 2.0)], "mr"),
                        task_result([("ours k=1", 0.7, 1.0)], "r8")]}
    lines = "\n".join(report.targets(result))
    assert "| mr | 10 | 90.00% | 10.00 | ours k=1 | 89.00% (-1.00) | 2.00 | 5.00x | **met** |" in lines
    assert "| r8 | 10 | 90.00% | 10.00 | none | | | | **missed** |" in lines
    assert "- Why r8 misses: none of ours is within 2 points" in lines
    assert "| 20ng | | | | not run: no task model | | | | **not measured** |" in lines


def test_task_models_say_which_model_is_ours_or_what_trains_it(tmp_path):
    compare = bench_module("compare")
    shipped = tmp_path / "models"
    assert "scripts/train_all.py --tasks r8 --ship" in compare.task_models("r8", tmp_path, shipped)
    (tmp_path / "teachers" / "r8-lora").mkdir(parents=True)
    (tmp_path / "teachers" / "r8-lora" / "task.json").write_text("{}")
    assert "scripts/train_all.py --tasks r8 --ship" in compare.task_models("r8", tmp_path, shipped)
    (tmp_path / "plugins" / "r8" / "k2").mkdir(parents=True)
    plugins_only = compare.task_models("r8", tmp_path, shipped)
    assert plugins_only.ours == plugins_only.uncompressed and plugins_only.max_length == 256
    assert "plugins only" in plugins_only.what
    slender = tmp_path / "slender" / "r8" / "quarter"
    (slender / "plugins").mkdir(parents=True)
    (slender / "exits.json").write_text("{}")
    models = compare.task_models("r8", tmp_path, shipped)
    assert models.ours == slender and models.plugins == slender / "plugins" and "slender" in models.what
    assert compare.task_models("mr", tmp_path, shipped).uncompressed.name == "mr_lora"  # the shipped one
    quarter = shipped / "r8" / "quarter"  # what scripts/train_all.py --ship writes comes first
    (quarter / "plugins").mkdir(parents=True)
    (quarter / "exits.json").write_text("{}")
    (shipped / "r8" / "teacher").mkdir()
    (shipped / "r8" / "teacher" / "task.json").write_text("{}")
    models = compare.task_models("r8", tmp_path, shipped)
    assert (models.uncompressed, models.ours, models.model_dir) == (shipped / "r8" / "teacher", quarter,
                                                                    shipped / "r8")


def test_recipe_targets_state_each_verdict_from_the_shipped_scores(tmp_path):
    report = bench_module("report")
    (tmp_path / "r8").mkdir()
    teacher = [{"ratio": 1, "accuracy": 0.975}, {"ratio": 2, "accuracy": 0.972},
               {"ratio": 4, "accuracy": 0.955}, {"ratio": 8, "accuracy": 0.950}]
    calibrated = [{"max_drop": drop, "test": {"accuracy": accuracy, "mean_exit_layer": layer}}
                  for drop, accuracy, layer in ((0.01, 0.966, 2.5), (0.02, 0.960, 1.75))]
    (tmp_path / "r8" / "measured.json").write_text(json.dumps(
        {"teacher": teacher, "quarter_test_exit_accuracy": [0.9, 0.96, 0.968],
         "quarter_calibrated": {"1": calibrated}}))
    lines = "\n".join(report.recipe_targets(tmp_path))
    assert ("| r8 | 97.50% (>= 97.00) | -0.30 / -2.00 / -2.50 (0.5 / 1.5 / 3) | 96.80% (-0.70; >= -1) | "
            "-0.90 (2.50) / -1.50 (1.75) | teacher **met**, plugins **missed**, slender **met** |") in lines
    assert "| 20ng | not trained: `python scripts/train_all.py --tasks 20ng --ship`" in lines


@pytest.mark.slow
def test_restore_bench_holds_both_restores_equal_and_times_them():
    """bench/restore.py: the concat restore splits a plugged layer, the broadcast add does not, and
    the two programs give the same outputs (the bench exits otherwise)."""
    result = subprocess.run([sys.executable, "bench/restore.py", "--lengths", "16", "--repeats", "1"],
                            cwd=ROOT, capture_output=True, text=True, check=True, timeout=1200)
    lines = [line.strip() for line in result.stdout.splitlines()]
    concat = next(line for line in lines if line.startswith("concat"))  # the partitions come first
    broadcast = next(line for line in lines if line.startswith("broadcast"))
    assert "k=2 3 (aten::cat x2" in concat and "k=2 2 (" in broadcast and "aten::cat" not in broadcast
    assert sum(line.startswith(("concat", "broadcast")) for line in lines) == 2 + 2 * 4


@pytest.mark.slow
def test_layer_parts_bench_prints_each_ratio():
    result = subprocess.run([sys.executable, "bench/layer_parts.py", "--lengths", "16", "--repeats", "1"],
                            cwd=ROOT, capture_output=True, text=True, check=True, timeout=1200)
    rows = [line.split() for line in result.stdout.splitlines()
            if line.strip()[:2] in ("1 ", "2 ", "4 ", "8 ")]
    # the halves at every k, then the plugin's parts at k > 1
    assert [row[0] for row in rows] == ["1", "2", "4", "8", "2", "4", "8"]
    assert all(row[-1].endswith("x") for row in rows[4:])
    assert "attention half" in result.stdout
    native = [line.split() for line in result.stdout.splitlines() if line.endswith("x)")]
    assert [row[0] for row in native] == ["attention", "ffn_k1", "ffn_k8"]


def test_assistant_head_bench_trains_both_last_exits_on_the_same_data(toy_teacher, tmp_path, monkeypatch):
    import importlib.util

    from conftest import toy_data

    spec = importlib.util.spec_from_file_location("assistant_head", ROOT / "bench" / "assistant_head.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "load_benchmark", lambda task: toy_data())
    rows = bench.run("toy", toy_teacher, 64, 1, 32, tmp_path)
    assert [row["last_exit"] for row in rows] == ["fresh", "teacher"]
    assert rows[0]["teacher_dev"] == rows[1]["teacher_dev"] and rows[0]["train_examples"] == 64
    for row in rows:
        assert row["dev_mean"] == pytest.approx(sum(row["dev_exit_accuracy"]) / len(row["dev_exit_accuracy"]))
    assert bench.table(rows).count("\n") == 3  # a header, its rule, a row each
    assert bench.run("toy", toy_teacher, 64, 1, 32, tmp_path) == rows  # finished runs are kept, not redone
    assert bench.parse_variant("teacher:3") == {"last_exit": "teacher", "warm_exits_epochs": 3,
                                                "early_exit_gradient": 1.0}
    assert bench.parse_variant("fresh:0:0.25") == {"last_exit": "fresh", "warm_exits_epochs": 0,
                                                   "early_exit_gradient": 0.25}
    for bad in ("pooler", "teacher:x", "teacher:1:2", "teacher:1:0.5:3"):
        with pytest.raises(ValueError, match="a variant is"):
            bench.parse_variant(bad)
