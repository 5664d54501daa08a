"""What ships inside the install (the mr adapter, its plugins, the slender model, their exported
bundle) and the bundle cache: a bundle is reused while it was exported from the same inputs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from edge_variator.files import atomic_directory
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


DEFAULT_FORMATS = ("executorch", "coreml")  # the default bundle ships both: the iOS demo runs the package


def export_key(checkpoint: Path, plugins: Path | None, ratios: list[int] | None = None,
               max_length: int | None = None, quantize: str = "none", calibration_texts: Sequence[str] = (),
               formats: Sequence[str] = ("executorch",)) -> str:
    """The export_key (export/bundle.py: export_inputs) of a bundle of these inputs."""
    from edge_variator.export.bundle import export_inputs, load_model

    model, tokenizer, source = load_model(checkpoint, plugins, ratios, max_length)
    return export_inputs(model, tokenizer, source, formats, quantize,
                         calibration_texts=calibration_texts)["export_key"]


def default_bundle_name() -> str:
    """`<checkpoint>-<export_key>` of the default checkpoint and its plugin sets."""
    checkpoint, plugins = default_checkpoint()
    return f"{checkpoint.name}-{export_key(checkpoint, plugins, formats=DEFAULT_FORMATS)[:12]}"


def exported_as(bundle: Path, key: str) -> bool:
    """Whether `bundle` is whole and was exported from exactly the inputs `key` stands for."""
    try:
        return load_manifest(bundle)["inputs"]["export_key"] == key
    except BundleError:
        return False  # absent, stale or damaged


def cached_export(cache: Path, prefix: str, checkpoint: Path, plugins: Path | None,
                  ratios: list[int] | None = None, rebuild: bool = False, shipped: Path | None = None,
                  max_length: int | None = None, quantize: str = "none",
                  calibration_texts: Sequence[str] = (),
                  formats: Sequence[str] = ("executorch",)) -> tuple[Path, str]:
    """The bundle of `checkpoint` (+ plugins) in `cache`, named `<prefix>-<export_key>`: so another
    input (weights, plugins, thresholds, ratios, length, quantization) is another bundle. Reused when
    it is there and whole, else copied from the folder `shipped` when that holds it (into the cache:
    profiles are written into a bundle's profiles/, and an install may be read-only), else exported
    (at `max_length` if given, int8 from `calibration_texts` if `quantize` says so). Returns the
    folder and "cached", "shipped" or "exported"."""
    from edge_variator.export.bundle import export_inputs, load_model, write_bundle

    model, tokenizer, source = load_model(checkpoint, plugins, ratios, max_length)
    key = export_inputs(model, tokenizer, source, formats, quantize,
                        calibration_texts=calibration_texts)["export_key"]
    out = Path(cache) / f"{prefix}-{key[:12]}"
    if not rebuild:
        for origin, candidate in (("cached", out), ("shipped", shipped and Path(shipped) / out.name)):
            if candidate is None or not exported_as(candidate, key):
                continue
            if candidate != out:
                with atomic_directory(out) as tmp:
                    shutil.copytree(candidate, tmp, dirs_exist_ok=True)
            return out, origin
    write_bundle(model, tokenizer, source, out, formats, quantize, calibration_texts=calibration_texts)
    return out, "exported"


def default_bundle(rebuild: bool = False) -> tuple[Path, str]:
    """The bundle of default_checkpoint(), with its Core ML package: the one in the cache, else the
    one shipped with the install (exporting its 31 methods takes about 3 minutes on 2 cores), else
    exported from the shipped weights (cached_export)."""
    checkpoint, plugins = default_checkpoint()
    return cached_export(bundle_cache(), checkpoint.name, checkpoint, plugins, rebuild=rebuild,
                         shipped=SHIPPED_BUNDLES, formats=DEFAULT_FORMATS)


def demo_states() -> list[tuple[str, DeviceState]]:
    """The four device states the demo and the benches run the default bundle under."""
    return [("full battery, nominal", DeviceState(battery=1.0)),
            ("50%, fair", DeviceState(battery=0.5, thermal="fair")),
            ("15%, serious", DeviceState(battery=0.15, thermal="serious")),
            ("low power, critical", DeviceState(battery=0.3, low_power=True, thermal="critical"))]
