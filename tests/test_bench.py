"""Benchmarks run end to end in a tiny setting, so they cannot rot between releases."""

from __future__ import annotations

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
