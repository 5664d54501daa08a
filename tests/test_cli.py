"""The command line: installed entry point, fine-tune and eval on a user file, the demo, clear errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from conftest import tiny_model

from edge_variator.cli import main
from edge_variator.defaults import SHIPPED_ADAPTER, SHIPPED_PLUGINS
from edge_variator.exits import save_thresholds
from edge_variator.runtime.bundle import load_manifest


def write_csv(path, rows):
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["review", "sentiment"])
        writer.writerows(rows)


def reviews_task(folder, copies=10) -> list[str]:
    """A separable user CSV; returns the --task arguments that name it."""
    rows = [(f"the film was {word}", label) for word, label in
            [("great", "pos"), ("awful", "neg"), ("superb", "pos"), ("dreadful", "neg")] * copies]
    write_csv(folder / "reviews.csv", rows)
    return ["--task", str(folder / "reviews.csv"), "--text-column", "review", "--label-column", "sentiment"]


def finetune_tiny(tiny_bert_dir, common, out) -> None:
    main(["finetune", *common, "--out", str(out), "--model", str(tiny_bert_dir),
          "--epochs", "1", "--max-length", "32"])


def test_entry_point_is_installed():
    result = subprocess.run(["edge-variator", "--help"], capture_output=True, text=True, check=True)
    for command in ("data", "finetune", "eval", "demo"):
        assert command in result.stdout


def test_third_party_chatter_is_filtered_from_stderr_and_the_rest_passes():
    script = """
import os, sys, warnings
from edge_variator.chatter import quiet
with quiet():
    os.write(2, b"[cpuinfo_utils.cpp:71] Reading file /sys/devices/soc0/image_version\\n")
    print("Failed to load /x/torchao/_C_mxfp8.so: Could not load this library", file=sys.stderr)
    warnings.warn("treespec is deprecated", FutureWarning)
    os.write(2, b"epoch 1/2:  50%|#####     | 1/2\\repoch 1/2: 100%|##########| 2/2\\n")
    print("edge-variator run: text 0 is empty", file=sys.stderr)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True)  # bytes: \r kept
    assert result.stderr == (b"epoch 1/2:  50%|#####     | 1/2\repoch 1/2: 100%|##########| 2/2\n"
                             b"edge-variator run: text 0 is empty\n")


def test_run_prints_no_third_party_chatter_unless_verbose(tiny_bundle):
    quiet = subprocess.run(["edge-variator", "run", str(tiny_bundle), "a gorgeous film"], capture_output=True,
                           text=True, check=True)
    assert json.loads(quiet.stdout.splitlines()[0])["label"] in ("no", "yes") and quiet.stderr == ""
    refused = subprocess.run(["edge-variator", "run", str(tiny_bundle), ""], capture_output=True, text=True)
    assert refused.returncode == 1
    assert json.loads(refused.stdout.splitlines()[0]) == {
        "index": 0, "error": "text 0: empty text: there is nothing to classify"}
    assert refused.stderr == ("edge-variator run: 1 of 1 texts refused (text 0: empty text: there is "
                              "nothing to classify)\n")


def test_run_classifies_texts_from_stdin_one_json_line_each_after_one_load(tiny_bundle):
    texts = ["the film was superb", "the film was awful and long", "word " * 200]
    result = subprocess.run(["edge-variator", "run", str(tiny_bundle), "--steps"], capture_output=True,
                            input="\n".join(texts) + "\n", text=True, check=True)
    assert result.stderr == ""
    *records, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["index"] for r in records] == [0, 1, 2]
    assert records[2]["truncated"] and not records[0]["truncated"]
    for record in records:
        assert sum(record["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert record["ms"] >= sum(record["steps_ms"].values()) > 0  # warm: no method loads in it
    summary = summary["summary"]
    assert summary["classified"] == 3 and summary["refused"] == 0 and summary["load_ms"] > 0
    assert summary["warm_ms_median"] == sorted(r["ms"] for r in records)[1]


def test_run_reads_a_file_and_goes_on_past_a_refused_line(tiny_bundle, tmp_path, capsys):
    (tmp_path / "texts.txt").write_text("a fine film\n   \na dull film\n")
    with pytest.raises(SystemExit, match="1 of 3 texts refused \\(text 1: empty text"):
        main(["run", str(tiny_bundle), "--file", str(tmp_path / "texts.txt")])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [("error" in r, r["index"]) for r in records[:3]] == [(False, 0), (True, 1), (False, 2)]
    assert records[3]["summary"]["classified"] == 2


def test_data_inspect_takes_the_column_flags_of_a_users_csv(tmp_path, capsys):
    common = reviews_task(tmp_path)  # --task reviews.csv --text-column review --label-column sentiment
    main(["data", "inspect", common[1], *common[2:], "--examples", "1"])
    assert "reviews.csv" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="the header row: no column 'text'.*--text-column"):
        main(["data", "inspect", common[1]])


def test_data_list_names_every_benchmark(capsys):
    main(["data", "list"])
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == ["mr", "trec6", "sms_spam", "20ng", "r8"]


def test_finetune_then_eval_on_a_user_csv(tiny_bert_dir, tmp_path, capsys):
    common = reviews_task(tmp_path)
    finetune_tiny(tiny_bert_dir, common, tmp_path / "ft")
    assert (tmp_path / "ft" / "metrics.json").is_file()
    main(["eval", str(tmp_path / "ft"), *common, "--split", "test"])
    out = capsys.readouterr().out
    assert "reviews.csv test: accuracy" in out and "GFLOPs per example" in out


def test_bad_user_file_exits_with_the_reason(tmp_path):
    write_csv(tmp_path / "one_class.csv", [("fine", "pos"), ("good", "pos"), ("nice", "pos")])
    with pytest.raises(SystemExit, match="at least two different labels"):
        main(["finetune", "--task", str(tmp_path / "one_class.csv"), "--text-column", "review",
              "--label-column", "sentiment", "--out", str(tmp_path / "ft")])


@pytest.fixture
def tiny_shipped(tiny_tokenizer, tmp_path, monkeypatch):
    """A tiny multi-exit checkpoint with k = 2 plugins, standing in for the shipped slender model."""
    import edge_variator.defaults as defaults
    from edge_variator.exits import ExitsInfo, save_multi_exit
    from edge_variator.plugins import PluginSet
    from edge_variator.task import checkpoint_sha256

    checkpoint = tmp_path / "mr_slender"
    model = tiny_model(ratios=())
    model.labels = ["negative", "positive"]
    info = ExitsInfo(model.labels, 64, thresholds={"drop_1": 0.69})
    save_multi_exit(model, tiny_tokenizer, info, checkpoint)
    PluginSet.for_backbone(model.encoder, checkpoint_sha256(checkpoint), 2, bottleneck=8).save(
        checkpoint / "plugins" / "k2")
    monkeypatch.setattr(defaults, "SHIPPED_SLENDER", checkpoint)
    monkeypatch.setenv("EDGE_VARIATOR_BUNDLES", str(tmp_path / "bundles"))
    return checkpoint


def test_demo_exports_profiles_and_runs_four_device_states(tiny_shipped, tmp_path, monkeypatch, capsys):
    import edge_variator.defaults as defaults

    monkeypatch.setattr(defaults, "SHIPPED_BUNDLES", tmp_path / "shipped")
    plots = tmp_path / "plots"
    main(["demo", "--limit", "12", "--lengths", "16", "32", "--repeats", "2", "--plots", str(plots)])
    out = capsys.readouterr().out
    assert "(exported," in out and "ratios [1, 2], 2 exits" in out
    states = out.split("mean exit layer\n")[1].splitlines()[:4]
    assert [row[:25].strip() for row in states] == ["full battery, nominal", "50%, fair", "15%, serious",
                                                    "low power, critical"]
    cells = [row[39:].split() for row in states]
    assert [int(row[0]) for row in cells] == [1, 2, 2, 2]  # the default policy on a k = 1, 2 bundle
    per_ratio = [dict(cell.split(":") for cell in row if ":" in cell) for row in cells]
    assert all(sum(map(int, texts.values())) == 12 and set(texts) <= {"1", "2"} for texts in per_ratio)
    assert "following each text's length on this host's profile" in out
    assert (plots / "latency_vs_depth.png").is_file() and (plots / "pareto.png").is_file()
    main(["demo", "--limit", "2", "--lengths", "16", "--repeats", "1", "--plots", str(plots)])
    assert "(cached," in capsys.readouterr().out
    # a fresh install: no cache, the bundle shipped with the install; the demo works on a copy
    (tmp_path / "shipped").mkdir()
    name = defaults.default_bundle_name()
    shipped = (tmp_path / "bundles" / name).rename(tmp_path / "shipped" / name)
    manifest = (shipped / "manifest.json").read_bytes()
    main(["demo", "--limit", "2", "--lengths", "16", "--repeats", "1", "--plots", str(plots)])
    assert "(shipped," in capsys.readouterr().out
    assert (shipped / "manifest.json").read_bytes() == manifest
    assert (tmp_path / "bundles" / shipped.name / "model.pte").is_file()
    profiles = list((tmp_path / "bundles" / name / "profiles" / "executorch").glob("*.json"))
    assert len(profiles) == 1 and json.loads(profiles[0].read_text())["runtime"] == "executorch"
    # calibrated again: the same weights with other thresholds are another bundle, with the new thresholds
    save_thresholds(tiny_shipped, {"drop_1": 0.5})
    assert defaults.default_bundle_name() != name
    bundle, origin = defaults.default_bundle()
    assert origin == "exported" and bundle.name == defaults.default_bundle_name()
    manifest = load_manifest(bundle)
    assert manifest["exits"]["thresholds"] == {"drop_1": 0.5}
    assert {r["threshold"] for r in manifest["policy"]["rules"]} == {"drop_1"}


@pytest.mark.slow
def test_demo_on_the_shipped_default_runs_the_mr_test_set(capsys, tmp_path):
    main(["demo", "--plots", str(tmp_path)])
    out = capsys.readouterr().out
    states = out.split("mean exit layer\n")[1].splitlines()[:4]
    accuracy = [float(row.split("%")[0].split()[-1]) for row in states]
    assert accuracy[0] > 75.0 and min(accuracy) > 70.0  # trained models, chance is 50


def test_the_default_bundle_ships_for_exactly_the_shipped_weights():
    """Retrained default weights need `python scripts/ship_bundle.py`, or the demo exports for 8 min."""
    from edge_variator.defaults import SHIPPED_BUNDLES, default_bundle_name, default_checkpoint
    from edge_variator.exits import load_multi_exit
    from edge_variator.task import checkpoint_sha256

    assert [p.name for p in SHIPPED_BUNDLES.iterdir()] == [default_bundle_name()]
    bundle = SHIPPED_BUNDLES / default_bundle_name()
    manifest = load_manifest(bundle, expected_sha256=checkpoint_sha256(default_checkpoint()[0]))
    assert sorted(map(int, manifest["ratios"])) == [1, 2, 4, 8]
    calibrated = load_multi_exit(default_checkpoint()[0])[2].thresholds
    assert manifest["exits"]["thresholds"] == calibrated
    assert not (bundle / "profiles").exists()  # device facts come later, beside the manifest
    assert (bundle / "model.mlpackage").is_dir()  # the iOS demo runs it out of the box
    # model.pte 26.6 MB, model.mlpackage 13.2 MB
    assert sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file()) < 42_000_000


@pytest.mark.slow
def test_a_fresh_export_of_the_default_computes_what_the_shipped_bundle_does(tmp_path, monkeypatch):

    import torch

    from edge_variator.defaults import SHIPPED_BUNDLES, default_bundle
    from edge_variator.runtime.bundle import open_program

    monkeypatch.setenv("EDGE_VARIATOR_BUNDLES", str(tmp_path))
    fresh, origin = default_bundle(rebuild=True)
    assert origin == "exported"
    shipped = SHIPPED_BUNDLES / fresh.name
    manifests = [json.loads((b / "manifest.json").read_text()) for b in (fresh, shipped)]
    programs = [open_program(b / "model.pte") for b in (fresh, shipped)]
    hidden_size = manifests[0]["model"]["hidden"]
    torch.manual_seed(0)
    for length in (16, 64):
        mask = torch.ones(1, length, dtype=torch.long)
        for name in manifests[0]["methods"]:
            inputs = ((torch.randint(1000, 2000, (1, length)),) if name == "embed"
                      else (torch.randn(1, length, hidden_size), mask))
            fresh_out, shipped_out = (p.load_method(name).execute(list(inputs))[0] for p in programs)
            torch.testing.assert_close(fresh_out, shipped_out, atol=1e-5, rtol=1e-5, msg=name)
    assert manifests[0] == manifests[1]  # model.pte's sha256 included: lowering is deterministic


def test_the_shipped_defaults_are_small():
    assert (SHIPPED_ADAPTER / "adapter.safetensors").stat().st_size < 5_000_000
    assert sum(f.stat().st_size for f in SHIPPED_PLUGINS.rglob("*.safetensors")) < 10_000_000


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """Two CPU processes (gloo), the same command line a single process takes."""
    result = subprocess.run(["torchrun", "--standalone", "--nproc_per_node=2", "-m", "edge_variator.cli",
                             *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_finetune_and_plugin_training_run_unchanged_under_torchrun(tiny_bert_dir, tmp_path):
    common = [*reviews_task(tmp_path, copies=20), "--epochs", "2", "--batch-size", "8", "--max-length", "32"]
    result = torchrun("finetune", *common, "--out", str(tmp_path / "ddp"), "--model", str(tiny_bert_dir))
    assert (tmp_path / "ddp" / "metrics.json").is_file()
    assert result.stdout.count("saved") == 1  # rank 0 alone reports and saves
    torchrun("plugins", "train", str(tmp_path / "ddp"), *common, "--ratios", "4",
             "--out", str(tmp_path / "plugins"))
    assert (tmp_path / "plugins" / "k4" / "plugins.safetensors").is_file()


def test_plugins_train_several_ratios_then_eval(tiny_bert_dir, tmp_path, capsys):
    common = reviews_task(tmp_path)
    finetune_tiny(tiny_bert_dir, common, tmp_path / "ft")
    main(["plugins", "train", str(tmp_path / "ft"), *common, "--ratios", "2", "4",
          "--out", str(tmp_path / "plugins"), "--epochs", "1", "--max-length", "32"])
    assert sorted(p.name for p in (tmp_path / "plugins").iterdir()) == ["k2", "k4"]
    trained = capsys.readouterr().out  # each ratio's kept dev accuracy against k = 1's
    assert trained.count("% uncompressed (") == 2 and "  k=4: dev " in trained
    main(["plugins", "eval", str(tmp_path / "ft"), str(tmp_path / "plugins"), *common])  # the ratios found
    table = capsys.readouterr().out.split("FLOPs vs k=1\n")[1].splitlines()
    assert [line.split()[0] for line in table] == ["1", "2", "4"]
    assert [float(line.split()[-1]) for line in table][0] == 1.0
    with pytest.raises(SystemExit, match=r"ratios \[2, 4\], not \[8\]: pass --ratios among those"):
        main(["plugins", "eval", str(tmp_path / "ft"), str(tmp_path / "plugins"), *common, "--ratios", "8"])


def test_slender_train_calibrate_eval_on_a_user_csv(tiny_bert_dir, tmp_path, capsys):
    from edge_variator.exits import load_multi_exit

    common = reviews_task(tmp_path)
    finetune_tiny(tiny_bert_dir, common, tmp_path / "ft")
    small = ["--epochs", "1", "--max-length", "32"]
    main(["slender", "train", str(tmp_path / "ft"), *common, "--out", str(tmp_path / "assistant"), *small])
    main(["slender", "train", str(tmp_path / "assistant"), *common, "--out", str(tmp_path / "slender"),
          *small,
          "--heads", "1/2", "--neurons", "0.5", "--embedding-rank", "16", "--prune-steps", "1"])
    out = capsys.readouterr().out  # the assistant's last exit against the teacher, then every exit's
    assert "test accuracy per exit" in out and "  the last exit: dev " in out and "  exit 2: dev " in out
    main(["slender", "calibrate", str(tmp_path / "slender"), *common, "--drops", "0", "5"])
    out = capsys.readouterr().out
    assert "thresholds calibrated on dev" in out and "mean exit" in out
    _, _, info = load_multi_exit(tmp_path / "slender")
    assert set(info.thresholds) == {"drop_0", "drop_5"}
    main(["slender", "eval", str(tmp_path / "slender"), *common, "--split", "test"])
    out = capsys.readouterr().out
    assert "2 heads x 8" in out and "drop_5" in out and "mean exit layer" in out
    # plugins train and eval take the same multi-exit checkpoint (eval scores its last exit)
    main(["plugins", "train", str(tmp_path / "slender"), *common, "--ratios", "2", *small,
          "--out", str(tmp_path / "slender" / "plugins")])
    main(["plugins", "eval", str(tmp_path / "slender"), str(tmp_path / "slender" / "plugins"), *common])
    table = capsys.readouterr().out.split("FLOPs vs k=1\n")[1].splitlines()
    assert [line.split()[0] for line in table] == ["1", "2"]


@pytest.mark.parametrize("value", ["0", "1.5", "three", "1/0"])
def test_a_slender_size_that_is_neither_a_count_nor_a_fraction_is_refused(tmp_path, value, capsys):
    with pytest.raises(SystemExit):
        main(["slender", "train", str(tmp_path), "--out", str(tmp_path / "x"), "--heads", value])
    if value in ("three", "1/0"):
        assert "a count (3) or a fraction" in capsys.readouterr().err


def test_every_training_flag_shows_its_default_in_help(capsys):
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("--epochs EPOCHS (default: 3)", "--batch-size BATCH_SIZE (default: 32)", "(default: 128)",
                  "--method {full,lora} (default: full)", "--pooling {mean,cls}", "(default: mean)",
                  "--seed SEED seed of the data split (and of training) (default: 0)"):
        assert shown in text
    assert "(default: None)" not in text and "(default: False)" not in text


def test_slender_train_refuses_a_folder_that_is_no_checkpoint(tmp_path):
    common = reviews_task(tmp_path)
    with pytest.raises(SystemExit, match="no task.json"):
        main(["slender", "train", str(tmp_path), *common, "--out", str(tmp_path / "x")])


def test_export_a_finetuned_checkpoint_to_a_bundle(tiny_bert_dir, tmp_path, capsys):
    common = reviews_task(tmp_path)
    finetune_tiny(tiny_bert_dir, common, tmp_path / "ft")
    main(["export", str(tmp_path / "ft"), "--out", str(tmp_path / "bundle"), "--max-length", "32", *common,
          "--workers", "2"])
    out = capsys.readouterr().out
    assert "model.pte" in out and "reviews.csv dev accuracy against k=1, every layer run" in out
    assert "  k=1  " in out and "+0.00 points" in out
    manifest = load_manifest(tmp_path / "bundle")
    assert sorted(manifest["methods"]) == ["embed", "exit_1", "layer_0_k1", "layer_1_k1"]
    assert manifest["model"]["labels"] == ["neg", "pos"] and manifest["model"]["max_length"] == 32
    with pytest.raises(SystemExit, match="no plugins attached|not one of"):
        main(["export", str(tmp_path / "ft"), "--out", str(tmp_path / "b2"), "--ratios", "2"])
    with pytest.raises(SystemExit):
        main(["export", str(tmp_path / "ft"), "--out", str(tmp_path / "b2"), "--workers", "0"])
    assert "--workers: must be at least 1, not 0" in capsys.readouterr().err

