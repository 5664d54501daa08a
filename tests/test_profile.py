"""Profiling a real tiny bundle, the latency arithmetic the policy uses, calibration, and the CLI
commands an app developer runs (run, profile, calibrate)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import RUNNER_TEXTS, import_script

from edge_variator.cli import main
from edge_variator.files import write_json
from edge_variator.profile import (
    ProfileError,
    check_calibrated_policy,
    check_profile,
    depth_latency,
    load_calibrated_policy,
    load_profile,
    measure,
    pareto_front,
    pareto_rows,
    plot_depth,
    plot_pareto,
    profile_path,
    ratio_latency,
    save_profile,
)
from edge_variator.runtime.bundle import BundleError, ManifestError, bundle_checksums, load_manifest
from edge_variator.runtime.policy import DeviceState, Policy, PolicyError, calibrate, default_policy
from edge_variator.runtime.runner import BundleRunner


@pytest.fixture
def bundle(tiny_bundle, tmp_path):
    """A copy the test may change."""
    return shutil.copytree(tiny_bundle, tmp_path / "bundle")


@pytest.fixture(scope="module")
def profile(tiny_bundle):
    return measure(tiny_bundle, [16, 32], repeats=3, warmup=1)


def synthetic_profile(manifest: dict, ms: dict[str, float], runtime: str = "executorch") -> dict:
    """Every method at 16 tokens: the named ms, else 1 ms, on the bundle's `runtime` program."""
    methods = {name: {"16": {"median_ms": ms.get(name, 1.0), "p90_ms": 2 * ms.get(name, 1.0)}}
               for name in manifest["methods"]}
    return {"format": "edge-variator-latency-profile", "version": 2, "runtime": runtime, "device": "Phone 1",
            "program_sha256": manifest["files"]["executorch"]["sha256"], "methods": methods}


def test_measure_times_every_method_at_every_length(tiny_bundle, profile):
    manifest = load_manifest(tiny_bundle)
    assert set(profile["methods"]) == set(manifest["methods"])
    for rows in profile["methods"].values():
        assert set(rows) == {"16", "32"}
        assert all(0 < row["median_ms"] <= row["p90_ms"] for row in rows.values())
    check_profile(profile, manifest)


def test_measure_refuses_lengths_the_bundle_cannot_take(tiny_bundle):
    with pytest.raises(ProfileError, match="multiples of 8"):
        measure(tiny_bundle, [20])
    with pytest.raises(ProfileError, match="multiples of 8"):
        measure(tiny_bundle, [128])  # past the bundle's 64


def test_depth_latency_adds_embed_layers_and_the_exits_asked(tiny_bundle):
    manifest = load_manifest(tiny_bundle)
    profile = synthetic_profile(manifest, {"embed": 0.5, "layer_0_k2": 3.0, "layer_1_k2": 4.0,
                                           "exit_0": 0.25, "exit_1": 0.125})
    assert depth_latency(profile, manifest, 2, 16) == [0.5 + 3.0 + 0.25, 0.5 + 3.0 + 0.25 + 4.0 + 0.125]
    assert ratio_latency(profile, manifest, 16) == {"1": 0.5 + 1.0 + 0.25 + 1.0 + 0.125, "2": 7.875}
    with pytest.raises(ProfileError, match="no timings at 64"):
        depth_latency(profile, manifest, 1, 64)


def test_a_profile_of_another_program_runtime_or_version_or_missing_methods_is_refused(tiny_bundle, profile,
                                                                                         tmp_path):
    manifest = load_manifest(tiny_bundle)
    with pytest.raises(ProfileError, match="another model.pte"):
        check_profile({**profile, "program_sha256": "0" * 64}, manifest)
    with pytest.raises(ProfileError, match="for the bundle's coreml program, not its executorch one"):
        check_profile({**profile, "runtime": "coreml"}, manifest)
    with pytest.raises(ProfileError, match="no coreml program"):
        check_profile({**profile, "runtime": "coreml"}, manifest, "coreml")
    version_1 = {**profile, "version": 1, "pte_sha256": None}
    with pytest.raises(ProfileError, match="version 1 is not version 2"):
        check_profile(version_1, manifest)
    with pytest.raises(ProfileError, match="lacks methods"):
        check_profile({**profile, "methods": {"embed": profile["methods"]["embed"]}}, manifest)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ProfileError, match="cannot read"):
        load_profile(tmp_path / "bad.json")
    with pytest.raises(ProfileError, match="not a latency profile"):
        check_profile({"format": "something else"})
    negative = {"16": {"median_ms": -1.0, "p90_ms": 1.0}}
    broken = {**profile, "methods": {**profile["methods"], "embed": negative}}
    with pytest.raises(ProfileError, match="methods/embed/16/median_ms"):
        check_profile(broken)


def test_a_saved_profile_is_its_own_file_and_leaves_the_bundle_as_exported(bundle, profile):
    manifest = (bundle / "manifest.json").read_bytes()
    path = save_profile(bundle, profile)
    assert path == profile_path(bundle, "executorch", profile["device"]) and path.parent.name == "executorch"
    assert json.loads(path.read_text()) == profile
    assert (bundle / "manifest.json").read_bytes() == manifest
    load_manifest(bundle)  # profiles/ lies outside the checksums
    assert profile_path(bundle, "coreml", " iPhone 15 Pro (A17)!").name == "iphone-15-pro-a17.json"


def test_calibrate_picks_the_least_compressed_ratio_within_each_budget():
    table = default_policy([1, 2, 4, 8], {"drop_1": 0.5})
    latency = {"16": {"1": 3.0, "2": 3.5, "4": 3.9, "8": 4.2},
               "256": {"1": 40.0, "2": 30.0, "4": 22.0, "8": 18.0}}
    calibrated = calibrate(table, latency, {"fair": 35, "serious": 25, "critical": 10, "default": 40}, 256)
    ratios = {rule["name"]: rule["ratio"] for rule in calibrated["rules"]}
    assert ratios == {"critical": 8, "low_power": 8, "serious": 4, "battery_low": 4, "fair": 2,
                      "battery_half": 2, "default": 1}
    assert calibrated["latency_ms"] == latency
    with pytest.raises(PolicyError, match="rules the table lacks"):
        calibrate(table, latency, {"overheated": 10}, 256)
    with pytest.raises(PolicyError, match="positive"):
        calibrate(table, latency, {"fair": 0}, 256)
    with pytest.raises(PolicyError, match="no latency at 64 tokens; profiled: \\[16, 256\\]"):
        calibrate(table, latency, {"fair": 35}, 64)


def test_pareto_rows_and_plots(tiny_bundle, profile, tmp_path):
    runner = BundleRunner(tiny_bundle)
    rows = pareto_rows(runner, RUNNER_TEXTS[:6], [0, 1, 0, 1, 0, 1])
    assert [(r["ratio"], r["threshold_name"]) for r in rows] == [(1, "none"), (1, "drop_1"), (2, "none"),
                                                                 (2, "drop_1")]
    assert all(r["mean_exit_layer"] == 2 for r in rows if r["threshold"] is None)
    front = pareto_front(rows)
    assert front[0]["mean_ms"] == min(r["mean_ms"] for r in rows)
    assert all(a["accuracy"] < b["accuracy"] for a, b in zip(front, front[1:], strict=False))
    for path in (plot_depth(profile, load_manifest(tiny_bundle), 32, tmp_path / "depth.png"),
                 plot_pareto(rows, tmp_path / "pareto.png", "tiny")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_run_prints_the_policy_decision_and_the_result(tiny_bundle, capsys):
    main(["run", str(tiny_bundle), "the film was superb", "--battery", "0.1", "--steps", "--format", "text"])
    out = capsys.readouterr().out
    assert "rule 'battery_low' -> ratio k = 2" in out and "layer_0_k2" in out
    main(["run", str(tiny_bundle), "the film was superb", "--android-thermal", "4", "--format", "text"])
    assert "thermal critical" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="battery must be from 0 to 1"):
        main(["run", str(tiny_bundle), "text", "--battery", "nan"])
    with pytest.raises(SystemExit, match="empty"):
        main(["run", str(tiny_bundle), " "])


def test_cli_profile_import_and_calibrate_write_the_policy(bundle, tmp_path, capsys):
    manifest = load_manifest(bundle)
    phone = synthetic_profile(manifest, {"layer_0_k1": 10.0, "layer_1_k1": 10.0})  # k=1 23 ms, k=2 5 ms
    write_json(tmp_path / "phone.json", phone)
    exported = (bundle / "manifest.json").read_bytes()
    main(["profile", str(bundle), "--import", str(tmp_path / "phone.json"),
          "--plots", str(tmp_path / "plots")])
    stored = bundle / "profiles" / "executorch" / "phone-1.json"
    assert json.loads(stored.read_text()) == phone
    assert (tmp_path / "plots" / "latency_vs_depth.png").is_file()
    main(["calibrate", str(bundle), "--profile", str(stored), "--budget", "default=20"])
    assert (bundle / "manifest.json").read_bytes() == exported  # the manifest stays as exported
    written = json.loads((bundle / "profiles" / "executorch" / "phone-1.policy.json").read_text())
    assert {k: written[k] for k in ("runtime", "device", "program_sha256", "length", "budgets")} == {
        "runtime": "executorch", "device": "Phone 1",
        "program_sha256": manifest["files"]["executorch"]["sha256"], "length": 16,
        "budgets": {"default": 20.0}}
    policy = load_calibrated_policy(bundle / "profiles" / "executorch" / "phone-1.policy.json", manifest)
    assert policy["latency_ms"] == {"16": {"1": 23.0, "2": 5.0}}
    assert next(r for r in policy["rules"] if r["name"] == "default")["ratio"] == 2
    capsys.readouterr()
    main(["run", str(bundle), "the film was superb", "--policy", str(stored.with_suffix(".policy.json"))])
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["summary"]["ratios"] == {"2": 1}
    main(["run", str(bundle), "the film was superb"])  # without it: the manifest's table
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["summary"]["ratios"] == {"1": 1}
    with pytest.raises(SystemExit):
        main(["calibrate", str(bundle), "--profile", str(tmp_path / "phone.json"), "--budget", "fair"])
    assert "--budget takes RULE=MS" in capsys.readouterr().err


def test_a_core_ml_profile_or_a_policy_of_another_program_is_refused_for_the_executorch_program(bundle,
                                                                                                 tmp_path):
    manifest = load_manifest(bundle)
    write_json(tmp_path / "coreml.json", synthetic_profile(manifest, {}, runtime="coreml"))
    with pytest.raises(SystemExit, match="for the bundle's coreml program, not its executorch one"):
        main(["calibrate", str(bundle), "--profile", str(tmp_path / "coreml.json"), "--budget", "default=20"])
    # imported from a phone: checked against the program it names
    with pytest.raises(SystemExit, match="no coreml program"):
        main(["profile", str(bundle), "--import", str(tmp_path / "coreml.json"), "--plots", str(tmp_path)])
    write_json(tmp_path / "phone.json", synthetic_profile(manifest, {}))
    main(["calibrate", str(bundle), "--profile", str(tmp_path / "phone.json"), "--budget", "default=20"])
    path = bundle / "profiles" / "executorch" / "phone-1.policy.json"
    document = json.loads(path.read_text())
    write_json(path, {**document, "program_sha256": "0" * 64})
    with pytest.raises(SystemExit, match="calibrated policy was made on another model.pte"):
        main(["run", str(bundle), "text", "--policy", str(path)])
    write_json(path, {**document, "policy": {**document["policy"], "rules": [
        {"name": "a", "when": {}, "ratio": 8, "threshold": None}]}})
    with pytest.raises(SystemExit, match="ratio 8"):
        main(["run", str(bundle), "text", "--policy", str(path)])


def test_a_policy_off_the_schema_is_refused_on_load(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["policy"] = {"rules": [{"name": "x", "when": {"thermal_at_least": "hot"}, "ratio": 2,
                                     "threshold": None}]}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="policy"):
        load_manifest(bundle)


BUNDLE_VECTORS = Path(__file__).parent / "vectors"


def refusal(check) -> str | None:
    """The message of the refusal `check` raises, None when it passes."""
    try:
        check()
    except (BundleError, ProfileError, PolicyError) as error:
        return str(error)
    return None


def vector_case_holds(case: dict, message: str | None) -> bool:
    return (message is not None) == case["refused"] and (
        not case["refused"] or case["mentions"].lower() in message.lower())


def test_the_shared_bundle_vectors_are_what_python_decides(tmp_path):
    """tests/vectors/bundle.json (scripts/bundle_vectors.py), which the Kotlin and Swift ports also run."""
    script = import_script("bundle_vectors")
    edited = script.edited
    vectors = json.loads((BUNDLE_VECTORS / "bundle.json").read_text())
    fixture = BUNDLE_VECTORS / vectors["bundle"]
    manifest = load_manifest(fixture, check_program=False)
    assert manifest["checksums"] == bundle_checksums(fixture)
    for case in vectors["manifest_cases"]:
        copy = shutil.copytree(fixture, tmp_path / "m" / case["name"])
        write_json(copy / "manifest.json", edited(manifest, case["edits"]))
        message = refusal(lambda d=copy: load_manifest(d, check_program=False))
        assert vector_case_holds(case, message), case["name"]
    for case in vectors["file_cases"]:
        copy = shutil.copytree(fixture, tmp_path / "f" / case["name"])
        script.alter(copy / case["path"], case["how"])
        message = refusal(lambda d=copy: load_manifest(d, check_program=False))
        assert vector_case_holds(case, message), case["name"]
    for case in vectors["profile_cases"]:
        message = refusal(lambda c=case: check_profile(c["profile"], manifest, c["runtime"]))
        assert vector_case_holds(case, message), case["name"]
    for case in vectors["calibrated_policy_cases"]:
        message = refusal(lambda c=case: check_calibrated_policy(c["document"], manifest, c["runtime"]))
        assert vector_case_holds(case, message), case["name"]
        if not case["refused"]:
            policy = Policy.from_manifest(manifest, case["document"]["policy"])
            decision = policy.decide(DeviceState(**case["state"]))
            assert {"ratio": decision.ratio, "rule": decision.rule,
                    "threshold_name": decision.threshold_name} == case["expect"]
    for case in vectors["device_files"]:
        assert profile_path(fixture, "executorch", case["device"]).name == case["file"]
    kinds = [key for key in vectors if key.endswith("_cases")]
    assert all(any(c["refused"] for c in vectors[k]) for k in kinds)
    assert all(not c["refused"] for k in kinds if k != "file_cases" for c in vectors[k][:1])
