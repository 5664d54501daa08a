"""Writing a bundle (its layout and reading: runtime/bundle.py): a checkpoint and its plugin sets,
exported to every format and described in manifest.json (docs/BUNDLE.md).

A bundle is written into a temporary folder and renamed into place, so an interrupted export
leaves the previous bundle (or none), never half of one. The same inputs give the same bytes, and
the manifest records them all (`export_inputs`): their hash keys the export cache.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import torch

from edge_variator.exits import MultiExitModel, is_multi_exit, load_multi_exit
from edge_variator.export.pieces import exit_layers, pieces
from edge_variator.files import atomic_directory, file_sha256, folder_digest, write_bytes, write_json
from edge_variator.plugins import PluginSet, attach, saved_ratios
from edge_variator.runtime.bundle import SCHEMA_VERSION, bundle_checksums, open_program, validate
from edge_variator.runtime.policy import default_policy
from edge_variator.task import TaskModel, checkpoint_sha256, load_task
from edge_variator.tokenizer import MIN_LENGTH, PAD_MULTIPLE, Tokenizer

FORMATS = ("executorch", "coreml")
QUANTIZE = ("none", "int8-dynamic", "int8-static")  # model.pte; export/executorch.py says what each does
ALIASES = {"int8": "int8-dynamic"}  # the measured winner: as accurate as fp32, static is not (bench/int8.py)


def quantize_kind(quantize: str) -> str:
    """The quantization a name stands for, or ValueError naming the choices."""
    kind = ALIASES.get(quantize, quantize)
    if kind not in QUANTIZE:
        raise ValueError(f"quantize must be one of {[*QUANTIZE, *ALIASES]}, not {quantize!r}")
    return kind


def needs_calibration(quantize: str) -> bool:
    """Whether that quantization reads calibration texts (only int8-static's observers do)."""
    return quantize_kind(quantize) == "int8-static"


def load_model(checkpoint: str | Path, plugins: str | Path | None = None, ratios: Sequence[int] | None = None,
               max_length: int | None = None) -> tuple[TaskModel | MultiExitModel, Tokenizer, dict]:
    """A task or multi-exit checkpoint with its plugin sets attached (plugins/k{ratio}/), ready to
    export, its tokenizer cut at `max_length` (the longest input the bundle takes) when given; also
    what the manifest says about where it came from."""
    checkpoint = Path(checkpoint)
    multi_exit = is_multi_exit(checkpoint)
    model, tokenizer, info = (load_multi_exit if multi_exit else load_task)(checkpoint)
    if max_length:
        tokenizer = Tokenizer(tokenizer.model_dir, max_length)
    sha = checkpoint_sha256(checkpoint)
    found = saved_ratios(plugins) if plugins else []
    plugin_sets = {}
    for ratio in found if ratios is None else ratios:
        if ratio != 1 and not plugins:
            raise ValueError(f"ratio {ratio} has no plugins attached: name the folder of its plugin sets "
                             "(--plugins, with k2/ k4/ k8/ inside)")
        if ratio != 1:
            attach(model.encoder, PluginSet.load(Path(plugins) / f"k{ratio}"), sha)
            plugin_sets[str(ratio)] = folder_digest(Path(plugins) / f"k{ratio}")
    source = {"id": checkpoint.name, "sha256": sha,
              "criterion": info.criterion if multi_exit else "entropy",
              "thresholds": dict(info.thresholds) if multi_exit else {}, "plugins_sha256": plugin_sets}
    return model, tokenizer, source


def method_signatures(model: TaskModel | MultiExitModel, methods: Sequence[str]) -> dict[str, dict]:
    hidden = {"name": "hidden", "dtype": "float32", "shape": [1, "seq", model.encoder.config.hidden]}
    signatures = {}
    for name in methods:
        if name == "embed":
            signatures[name] = {"inputs": [{"name": "input_ids", "dtype": "int64", "shape": [1, "seq"]}],
                                "outputs": [hidden]}
        elif name.startswith("layer_"):
            mask = {"name": "attention_mask", "dtype": "int64", "shape": [1, "seq"]}
            signatures[name] = {"inputs": [hidden, mask], "outputs": [hidden]}
        else:
            mask = {"name": "attention_mask", "dtype": "int64", "shape": [1, "seq"]}
            logits = {"name": "logits", "dtype": "float32", "shape": [1, len(model.labels)]}
            signatures[name] = {"inputs": [hidden, mask], "outputs": [logits]}
    return signatures


def library_version() -> str:
    return version("edge-variator")


def canonical_sha256(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def export_inputs(model: TaskModel | MultiExitModel, tokenizer: Tokenizer, source: dict,
                  formats: Sequence[str] = ("executorch",), quantize: str = "none",
                  coreml_compress: str = "none",
                  calibration_texts: Sequence[str] = ()) -> dict:
    """Everything a bundle is made from, with `export_key`, their hash: what the export cache is
    keyed by, so that changing any of them (new thresholds, other plugins, another length) gives
    another bundle. Calibration texts count only where the quantizer reads them."""
    from edge_variator.plugins import available_ratios

    ratios = available_ratios(model.encoder)
    quantize = quantize_kind(quantize)
    calibrated = needs_calibration(quantize) and calibration_texts
    inputs = {"checkpoint_sha256": source["sha256"], "plugins_sha256": source.get("plugins_sha256", {}),
              "criterion": source["criterion"], "thresholds": source["thresholds"],
              "policy_sha256": canonical_sha256(default_policy(ratios, source["thresholds"])),
              "max_length": tokenizer.max_length, "ratios": ratios, "formats": sorted(formats),
              "quantize": quantize, "coreml_compress": coreml_compress if "coreml" in formats else "none",
              "calibration_sha256": canonical_sha256(list(calibration_texts)) if calibrated else None,
              "library_version": library_version()}
    return {**inputs, "export_key": canonical_sha256(inputs)}


def build_manifest(model: TaskModel | MultiExitModel, tokenizer: Tokenizer, source: dict,
                   methods: Sequence[str], files: dict, checksums: dict | None = None,
                   inputs: dict | None = None) -> dict:
    """The manifest of a bundle of these methods; `checksums` and `inputs` are left out for a
    manifest that only describes the pieces (export/reference.py's)."""
    config = model.encoder.config
    ratios = sorted({int(name.rsplit("_k", 1)[1]) for name in methods if name.startswith("layer_")})
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "created_by": "edge-variator export",
        "library_version": library_version(),
        "backbone": {"id": source["id"], "sha256": source["sha256"]},
        "model": {"layers": config.layers, "hidden": config.hidden, "heads": config.heads,
                  "intermediate": config.intermediate, "embedding_rank": config.embedding_rank,
                  "vocab_size": config.vocab_size, "max_length": tokenizer.max_length,
                  "min_length": MIN_LENGTH, "pad_multiple": PAD_MULTIPLE,
                  "pad_token_id": config.pad_token_id, "labels": list(model.labels),
                  # the apps pick their tokenizer from these (tokenizer.json holds its vocabulary)
                  "family": config.family, "tokenizer": tokenizer.kind},
        "methods": method_signatures(model, methods),
        "ratios": {str(k): [f"layer_{i}_k{k}" for i in range(config.layers)] for k in ratios},
        "exits": {"after_layers": exit_layers(model), "criterion": source["criterion"],
                  "thresholds": source["thresholds"]},
        "files": files,
        "policy": default_policy(ratios, source["thresholds"]),  # the one copy of the rule: apps have none
    }
    if checksums is not None:
        manifest.update(checksums=checksums, inputs=inputs)
    return manifest


def write_bundle(model: TaskModel | MultiExitModel, tokenizer: Tokenizer, source: dict,
                 out_dir: str | Path, formats: Sequence[str] = ("executorch",), quantize: str = "none",
                 coreml_compress: str = "none", calibration_texts: Sequence[str] = (),
                 progress: bool = True, workers: int | None = None) -> dict:
    """Export every piece and write the bundle atomically; returns the manifest. ExecuTorch lowering
    runs in `workers` processes (default: one per core; executorch.to_pte)."""
    from edge_variator.export.executorch import export_programs, piece_inputs, to_pte

    unknown = set(formats) - set(FORMATS)
    if unknown or "executorch" not in formats:
        raise ValueError(f"formats must include 'executorch' and be among {FORMATS}, not {list(formats)}")
    model.eval()
    inputs = export_inputs(model, tokenizer, source, formats, quantize, coreml_compress, calibration_texts)
    quantize = quantize_kind(quantize)
    if needs_calibration(quantize) and not calibration_texts:
        raise ValueError("int8-static quantizes activations at ranges seen on task text: give calibration "
                         "texts")
    calibration = piece_inputs(model, tokenizer, calibration_texts) if needs_calibration(quantize) else None
    programs = export_programs(model, tokenizer.max_length, quantize=quantize, calibration=calibration,
                               progress=progress)
    with atomic_directory(out_dir) as tmp:
        write_bytes(tmp / "model.pte", to_pte(programs, workers))
        files = {"executorch": {"path": "model.pte", "sha256": file_sha256(tmp / "model.pte"),
                                "bytes": (tmp / "model.pte").stat().st_size, "quantize": quantize,
                                "functions": list(programs)}}
        if "coreml" in formats:
            from edge_variator.export.coreml import COMPUTE_UNITS, padded_lengths, save_mlpackage

            fused = export_programs(model, tokenizer.max_length, progress=False, xnnpack=False)
            lengths = padded_lengths(tokenizer.max_length)
            functions = save_mlpackage(fused, tmp / "model.mlpackage", lengths, coreml_compress, progress)
            files["coreml"] = {"path": "model.mlpackage", "sha256": folder_digest(tmp / "model.mlpackage"),
                               "bytes": sum(f.stat().st_size for f in (tmp / "model.mlpackage").rglob("*")
                                            if f.is_file()),
                               "quantize": coreml_compress, "functions": functions, "lengths": lengths,
                               "compute_units": COMPUTE_UNITS}
        tokenizer.save(tmp / "tokenizer")
        files["tokenizer"] = sorted(p.name for p in (tmp / "tokenizer").iterdir())
        manifest = build_manifest(model, tokenizer, source, list(programs), files, bundle_checksums(tmp),
                                  inputs)
        validate(manifest)
        write_json(tmp / "manifest.json", manifest)
    return manifest


def describe_bundle(out_dir: str | Path, manifest: dict) -> str:
    """What an export wrote: its methods, ratios and exits, and each model file's size."""
    files = manifest["files"]
    lines = [f"bundle {out_dir}: {len(manifest['methods'])} methods, ratios "
             f"{sorted(manifest['ratios'], key=int)}, exits after layers {manifest['exits']['after_layers']}"]
    lines += [f"  {files[kind]['path']}: {files[kind]['bytes'] / 1e6:.1f} MB ({files[kind]['quantize']})"
              for kind in ("executorch", "coreml") if kind in files]
    return "\n".join(lines)


def check_pieces_match(model: TaskModel | MultiExitModel, bundle_dir: str | Path,
                       lengths: Sequence[int] = (16, 40)) -> dict[str, float]:
    """Max |ExecuTorch - PyTorch| of every method at each length (what the tests and export check)."""
    from edge_variator.export.pieces import example_inputs

    program = open_program(Path(bundle_dir) / "model.pte")
    modules = pieces(model.eval(), None)
    errors = {}
    with torch.no_grad():
        for name, module in modules.items():
            method = program.load_method(name)
            worst = 0.0
            for length in lengths:
                inputs = example_inputs(name, model.encoder.config.hidden, length)
                worst = max(worst, (method.execute(list(inputs))[0] - module(*inputs)).abs().max().item())
            errors[name] = worst
    return errors
