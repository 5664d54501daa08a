"""Write tests/vectors/bundle.json and tests/vectors/bundle/: the bundle contract (docs/BUNDLE.md)
as cases that Python, the Kotlin port and the Swift port must all decide alike
(tests/test_profile.py checks that the files are what Python writes and decides).

    python scripts/bundle_vectors.py

`bundle/` is a small schema-2 bundle: its manifest is what export writes for a random 2-layer
model with k = 2 plugins and two exit thresholds, and its checksums list the files beside it.
Its model.pte is not a program (the ports' manifest code only hashes it), and no profiles/ is kept.

- `manifest_cases`: edits to bundle/manifest.json; each is refused or not.
- `file_cases`: one file of bundle/ altered, truncated or deleted; the bundle is refused, and the
  error names that file.
- `profile_cases`: a latency profile, checked for the bundle's `runtime` program.
- `calibrated_policy_cases`: a calibrated policy file, checked likewise; when accepted, the
  decision of the policy built from its table for `state`.
- `device_files`: a device name -> the file name of its profile in profiles/<runtime>/.

A refusal says `"refused": true` and a word its message must hold (`"mentions"`); the error types
are each platform's own.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from pathlib import Path

import torch

from edge_variator.encoder import Encoder, EncoderConfig, default_model_dir
from edge_variator.exits import MultiExitModel
from edge_variator.export.bundle import build_manifest, export_inputs
from edge_variator.files import file_sha256, write_json
from edge_variator.plugins import PluginSet, attach
from edge_variator.profile import ProfileError, check_calibrated_policy, check_profile, device_slug
from edge_variator.runtime.bundle import BundleError, bundle_checksums, load_manifest, validate
from edge_variator.runtime.policy import DeviceState, Policy, PolicyError, calibrate
from edge_variator.tokenizer import Tokenizer

VECTORS = Path(__file__).resolve().parents[1] / "tests" / "vectors"
SHA = "ab" * 32
THRESHOLDS = {"drop_1": 0.4, "drop_2": 0.6}
DEVICES = ["Pixel 8 (Tensor G3)", " iPhone 15 Pro (A17)!", "SM-S918B", "host (x86_64, 2 threads)", "---",
           "Ünïcode Phone 5G", "a__b..c"]


def fixture_bundle(out: Path) -> dict:
    """bundle/: tokenizer files, a stand-in model.pte and the manifest export would write for them."""
    torch.manual_seed(0)
    config = EncoderConfig(vocab_size=30522, hidden=32, layers=2, heads=4, intermediate=64, max_positions=64)
    model = MultiExitModel(Encoder(config), ["no", "yes"]).eval()
    attach(model.encoder, PluginSet.for_backbone(model.encoder, SHA, 2, bottleneck=8), SHA)
    tokenizer = Tokenizer(default_model_dir(), 64)
    source = {"id": "tiny", "sha256": SHA, "criterion": "entropy", "thresholds": THRESHOLDS,
              "plugins_sha256": {"2": "cd" * 32}}
    shutil.rmtree(out, ignore_errors=True)
    (out / "tokenizer").mkdir(parents=True)
    (out / "tokenizer" / "tokenizer_config.json").write_text('{"do_lower_case": true}\n')
    (out / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n")
    (out / "model.pte").write_bytes(b"a stand-in for model.pte: only its sha256 is checked here\n" * 64)
    methods = ["embed", "layer_0_k1", "layer_0_k2", "layer_1_k1", "layer_1_k2", "exit_0", "exit_1"]
    files = {"executorch": {"path": "model.pte", "sha256": file_sha256(out / "model.pte"),
                            "bytes": (out / "model.pte").stat().st_size, "quantize": "none",
                            "functions": methods},
             "tokenizer": sorted(p.name for p in (out / "tokenizer").iterdir())}
    manifest = build_manifest(model, tokenizer, source, methods, files, bundle_checksums(out),
                              export_inputs(model, tokenizer, source))
    validate(manifest)
    write_json(out / "manifest.json", manifest)
    return manifest


def edited(document: dict, edits: list[dict]) -> dict:
    """`document` with each edit applied: {"path": [...], "value": v} sets, {"path": [...], "delete": true}
    removes."""
    document = copy.deepcopy(document)
    for edit in edits:
        *parents, last = edit["path"]
        target = document
        for key in parents:
            target = target[key]
        if edit.get("delete"):
            del target[last]
        else:
            target[last] = edit["value"]
    return document


def decided(check, mentions: str) -> dict:
    """{"refused": false} when `check` passes, else {"refused": true, "mentions": ...}; the word must be
    in Python's own message too."""
    try:
        check()
    except (BundleError, ProfileError, PolicyError) as error:
        if mentions.lower() not in str(error).lower():
            raise AssertionError(f"the refusal {error!r} does not mention {mentions!r}") from None
        return {"refused": True, "mentions": mentions}
    return {"refused": False}


def manifest_cases(bundle: Path, manifest: dict) -> list[dict]:
    last = len(manifest["policy"]["rules"]) - 1
    specs = [("as exported", [], ""),
             ("schema 1: an older bundle", [{"path": ["schema_version"], "value": 1}],
              "export the bundle again"),
             ("no policy table", [{"path": ["policy"], "delete": True}], "policy"),
             ("a null policy table", [{"path": ["policy"], "value": None}], "policy"),
             ("a rule asks for a ratio the bundle lacks",
              [{"path": ["policy", "rules", last, "ratio"], "value": 4}], "ratio"),
             ("a rule names a threshold the bundle lacks",
              [{"path": ["policy", "rules", last, "threshold"], "value": "drop_9"}], "drop_9"),
             ("no checksums", [{"path": ["checksums"], "delete": True}], "checksums")]
    cases = []
    for name, edits, mentions in specs:
        with tempfile.TemporaryDirectory() as tmp:
            copy_dir = Path(tmp) / "bundle"
            shutil.copytree(bundle, copy_dir)
            write_json(copy_dir / "manifest.json", edited(manifest, edits))
            cases.append({"name": name, "edits": edits,
                          **decided(lambda d=copy_dir: load_manifest(d, check_program=False), mentions)})
    return cases


def alter(target: Path, how: str) -> None:
    """Alter a file of the bundle: "append" (the text "altered\\n" at the end), "truncate" (to half its
    bytes) or "delete"."""
    if how == "append":
        target.write_bytes(target.read_bytes() + b"altered\n")
    elif how == "truncate":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    else:
        target.unlink()


def file_cases(bundle: Path) -> list[dict]:
    """One file of the bundle altered each way `alter` knows."""
    cases = []
    for name, path, how in [("model.pte truncated", "model.pte", "truncate"),
                            ("a tokenizer file altered", "tokenizer/tokenizer_config.json", "append"),
                            ("a tokenizer file missing", "tokenizer/vocab.txt", "delete")]:
        with tempfile.TemporaryDirectory() as tmp:
            copy_dir = Path(tmp) / "bundle"
            shutil.copytree(bundle, copy_dir)
            alter(copy_dir / path, how)
            cases.append({"name": name, "path": path, "how": how,
                          **decided(lambda d=copy_dir: load_manifest(d, check_program=False), path)})
    return cases


def timings(manifest: dict, slow: dict[str, float]) -> dict:
    return {name: {"16": {"median_ms": slow.get(name, 1.0), "p90_ms": 2 * slow.get(name, 1.0)}}
            for name in manifest["methods"]}


def profile_cases(manifest: dict) -> tuple[list[dict], dict]:
    profile = {"format": "edge-variator-latency-profile", "version": 2, "runtime": "executorch",
               "runtime_version": "executorch 1.4.0 (xnnpack)", "device": "Pixel 8 (Tensor G3)",
               "program_sha256": manifest["files"]["executorch"]["sha256"], "warmup": 1, "repeats": 3,
               "methods": timings(manifest, {"layer_0_k1": 10.0, "layer_1_k1": 10.0})}
    specs = [("as measured", profile, "executorch", ""),
             ("a Core ML profile for the ExecuTorch program", {**profile, "runtime": "coreml"}, "executorch",
              "coreml"),
             ("for the Core ML program, which this bundle lacks", {**profile, "runtime": "coreml"}, "coreml",
              "coreml"),
             ("another program", {**profile, "program_sha256": "0" * 64}, "executorch", "program_sha256"),
             ("version 1 (pte_sha256, no runtime)",
              {**{k: v for k, v in profile.items() if k not in ("runtime", "program_sha256")}, "version": 1,
               "pte_sha256": None}, "executorch", "version"),
             ("a method missing", {**profile, "methods": {"embed": profile["methods"]["embed"]}},
              "executorch", "lacks methods")]
    return [{"name": name, "profile": document, "runtime": runtime,
             **decided(lambda d=document, r=runtime: check_profile(d, manifest, r), mentions)}
            for name, document, runtime, mentions in specs], profile


def calibrated_policy_cases(manifest: dict, profile: dict) -> list[dict]:
    budgets = {"default": 20.0}
    # every layer: k = 1 1 + 10 + 1 + 10 + 1 = 23 ms, k = 2 5 ms -> the default rule fits its 20 ms at k = 2
    table = calibrate(manifest["policy"], {"16": {"1": 23.0, "2": 5.0}}, budgets, 16)
    document = {"format": "edge-variator-calibrated-policy", "version": 2, "runtime": "executorch",
                "device": profile["device"], "program_sha256": profile["program_sha256"], "length": 16,
                "budgets": budgets, "policy": table}
    nominal = {"battery": 1.0, "thermal": "nominal", "charging": False, "low_power": False}
    specs = [("as calibrated", document, "executorch", ""),
             ("for the Core ML program", {**document, "runtime": "coreml"}, "executorch", "coreml"),
             ("another program", {**document, "program_sha256": "0" * 64}, "executorch", "program_sha256"),
             ("a table the bundle cannot carry out",
              {**document, "policy": {**table, "rules": [{"name": "a", "when": {}, "ratio": 8,
                                                          "threshold": None}]}},
              "executorch", "ratio"),
             ("another format", {**document, "format": "edge-variator-latency-profile"}, "executorch",
              "format"),
             ("version 1 (latency at one length)",
              {**document, "version": 1, "policy": {**table, "latency_ms": {"1": 23.0, "2": 5.0}}},
              "executorch", "version")]
    cases = []
    for name, doc, runtime, mentions in specs:
        case = {"name": name, "document": doc, "runtime": runtime,
                **decided(lambda d=doc, r=runtime: check_calibrated_policy(d, manifest, r), mentions)}
        if not case["refused"]:
            decision = Policy.from_manifest(manifest, doc["policy"]).decide(DeviceState(**nominal))
            case["state"] = nominal
            case["expect"] = {"ratio": decision.ratio, "rule": decision.rule,
                              "threshold_name": decision.threshold_name}
        cases.append(case)
    return cases


def vectors() -> dict:
    bundle = VECTORS / "bundle"
    manifest = fixture_bundle(bundle)
    profiles, profile = profile_cases(manifest)
    return {"description": __doc__.split("\n\n", 2)[2].strip(), "bundle": "bundle",
            "manifest_cases": manifest_cases(bundle, manifest), "file_cases": file_cases(bundle),
            "profile_cases": profiles, "calibrated_policy_cases": calibrated_policy_cases(manifest, profile),
            "device_files": [{"device": name, "file": f"{device_slug(name)}.json"} for name in DEVICES]}


def main() -> None:
    write_json(VECTORS / "bundle.json", vectors())
    print(f"wrote {VECTORS / 'bundle.json'} and {VECTORS / 'bundle'}/")


if __name__ == "__main__":
    main()
