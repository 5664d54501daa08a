"""What ships inside the install (the mr adapter, its plugins, the slender model, their exported
bundle) and the bundle cache: a bundle is reused while it was exported from the same weights."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from edge_variator.files import atomic_directory, file_sha256
from edge_variator.runtime.bundle import BundleError, load_manifest
from edge_variator.runtime.policy import DeviceState

SHIPPED = Path(__file__).parent / "default"
SHIPPED_ADAPTER = SHIPPED / "mr_lora"
SHIPPED_PLUGINS = SHIPPED / "mr_plugins"  # k2/, k4/, k8/ on that adapter
SHIPPED_SLENDER = SHIPPED / "mr_slender"  # multi-exit, 1/4 width, fp16
SHIPPED_BUNDLES = SHIPPED / "bundles"  # default_bundle_name() -> its export


def resolve_checkpoint(checkpoint: str, plugins: str | None) -> tuple[Path, Path | None]:
    """'default' names the shipped mr adapter and its plugins; anything else is a folder."""
    if checkpoint == "default":
        return SHIPPED_ADAPTER, Path(plugins) if plugins else SHIPPED_PLUGINS
    return Path(checkpoint), Path(plugins) if plugins else None


def bundle_cache() -> Path:
    return Path(os.environ.get("EDGE_VARIATOR_BUNDLES", Path.home() / ".cache" / "edge-variator" / "bundles"))


def default_checkpoint() -> tuple[Path, Path]:
    """What the default bundle is exported from: the slender multi-exit mr model and its plugins, or
    the mr adapter and its plugins on an install without the slender model."""
    from edge_variator.exits import is_multi_exit

    if is_multi_exit(SHIPPED_SLENDER):
        return SHIPPED_SLENDER, SHIPPED_SLENDER / "plugins"
    return SHIPPED_ADAPTER, SHIPPED_PLUGINS


def weights_key(checkpoint: Path, plugins: Path | None) -> str:
    """12 hex digits of a hash of a checkpoint and its plugin sets: a bundle named with it was exported
    from exactly these weights."""
    from edge_variator.task import checkpoint_sha256

    key = hashlib.sha256(checkpoint_sha256(checkpoint).encode())
    for path in sorted(Path(plugins).rglob("*.safetensors")) if plugins else []:
        key.update(file_sha256(path).encode())
    return key.hexdigest()[:12]


def default_bundle_name() -> str:
    """`<checkpoint>-<weights_key>` of the default checkpoint and its plugin sets."""
    checkpoint, plugins = default_checkpoint()
    return f"{checkpoint.name}-{weights_key(checkpoint, plugins)}"


def exit_thresholds(checkpoint: Path) -> dict[str, float]:
    """The calibrated thresholds a bundle of `checkpoint` carries ({} for a task model)."""
    path = Path(checkpoint) / "exits.json"
    return json.loads(path.read_text()).get("thresholds", {}) if path.is_file() else {}


def exported_from(bundle: Path, checkpoint: Path) -> bool:
    """Whether `bundle` is whole and was exported from these weights with these exit thresholds
    (a checkpoint calibrated again since is another bundle)."""
    from edge_variator.task import checkpoint_sha256

    try:
        manifest = load_manifest(bundle, expected_sha256=checkpoint_sha256(checkpoint))
    except BundleError:
        return False  # absent, stale or damaged
    return manifest["exits"]["thresholds"] == exit_thresholds(checkpoint)


def cached_export(out: Path, checkpoint: Path, plugins: Path | None, ratios: list[int] | None = None,
                  rebuild: bool = False, shipped: Path | None = None, max_length: int | None = None,
                  quantize: str = "none", calibration_texts: Sequence[str] = ()) -> tuple[Path, str]:
    """The bundle of `checkpoint` (+ plugins) at `out`: reused when it is there and was exported from
    these weights with these exit thresholds, else copied from `shipped` when that one was (into
    `out`, because `profile` writes into the manifest), else exported (at `max_length` if given,
    int8 from `calibration_texts` if `quantize` says so). `out`'s name must tell apart what the
    weights do not (ratios, length, quantization). Returns the folder and "cached", "shipped" or
    "exported"."""
    from edge_variator.export.bundle import load_model, write_bundle

    if not rebuild:
        for origin, candidate in (("cached", out), ("shipped", shipped)):
            if candidate is None or not exported_from(candidate, checkpoint):
                continue
            if candidate != out:
                with atomic_directory(out) as tmp:
                    shutil.copytree(candidate, tmp, dirs_exist_ok=True)
            return out, origin
    model, tokenizer, source = load_model(checkpoint, plugins, ratios, max_length)
    write_bundle(model, tokenizer, source, out, quantize=quantize, calibration_texts=calibration_texts)
    return out, "exported"


def default_bundle(rebuild: bool = False) -> tuple[Path, str]:
    """The bundle of default_checkpoint(): the one in the cache, else the one shipped with the
    install (exporting 31 methods takes about 8 minutes on 2 cores), else exported from the shipped
    weights (cached_export)."""
    checkpoint, plugins = default_checkpoint()
    name = default_bundle_name()
    return cached_export(bundle_cache() / name, checkpoint, plugins, rebuild=rebuild,
                         shipped=SHIPPED_BUNDLES / name)


def demo_states() -> list[tuple[str, DeviceState]]:
    """The four device states the demo and the benches run the default bundle under."""
    return [("full battery, nominal", DeviceState(battery=1.0)),
            ("50%, fair", DeviceState(battery=0.5, thermal="fair")),
            ("15%, serious", DeviceState(battery=0.15, thermal="serious")),
            ("low power, critical", DeviceState(battery=0.3, low_power=True, thermal="critical"))]
