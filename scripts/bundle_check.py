"""Export the default bundle and check it: numerics per method, dev-set predictions, int8, sizes.

    python scripts/bundle_check.py [--checkpoint default] [--out runs/bundles]   (~15 min, 2 cores)

Writes fp32 and int8 bundles (.pte + .mlpackage) and a k = 1-only one, then prints:
- every method of the fp32 .pte against PyTorch at 16, 64 and 128 tokens (max abs difference);
- the chained methods (embed -> layers -> last exit, batch 1, ExecuTorch runtime) against the
  PyTorch model on the whole mr dev set, at every ratio: agreement and accuracy; int8 likewise;
- sizes: .pte fp32 / int8, .mlpackage, and the all-ratios .pte against k = 1-only + plugin weights.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from edge_variator.data import load_benchmark
from edge_variator.defaults import SHIPPED_ADAPTER, SHIPPED_PLUGINS
from edge_variator.export.bundle import check_pieces_match, load_model, write_bundle
from edge_variator.plugins import set_ratio
from edge_variator.runtime.bundle import load_manifest, open_program


def chained_predictions(bundle: Path, tokenizer, texts: list[str], ratio: int) -> list[int]:
    manifest = load_manifest(bundle)
    program = open_program(bundle / "model.pte")
    methods = {name: program.load_method(name) for name in manifest["methods"]}
    last_exit = f"exit_{manifest['exits']['after_layers'][-1]}"
    predictions = []
    for text in texts:
        batch = tokenizer([text])
        hidden = methods["embed"].execute([batch.input_ids])[0]
        for name in manifest["ratios"][str(ratio)]:
            hidden = methods[name].execute([hidden, batch.attention_mask])[0]
        predictions.append(int(methods[last_exit].execute([hidden, batch.attention_mask])[0].argmax()))
    return predictions


def torch_predictions(model, tokenizer, texts: list[str], ratio: int) -> list[int]:
    set_ratio(model.encoder, ratio)
    predictions = []
    with torch.no_grad():
        for text in texts:
            batch = tokenizer([text])
            logits = model(batch.input_ids, batch.attention_mask)
            predictions.append(int((logits[-1] if logits.dim() == 3 else logits)[0].argmax()))
    set_ratio(model.encoder, 1)
    return predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--checkpoint", default="default")
    parser.add_argument("--plugins")
    parser.add_argument("--out", default="runs/bundles")
    parser.add_argument("--task", default="mr")
    args = parser.parse_args()
    checkpoint, plugins = (SHIPPED_ADAPTER, SHIPPED_PLUGINS) if args.checkpoint == "default" else (
        Path(args.checkpoint), args.plugins)
    out = Path(args.out)
    data = load_benchmark(args.task)
    texts, labels = [e.text for e in data.dev], [e.label for e in data.dev]
    model, tokenizer, source = load_model(checkpoint, plugins)
    report = {}
    write_bundle(model, tokenizer, source, out / "fp32", ("executorch", "coreml"))
    write_bundle(model, tokenizer, source, out / "int8", ("executorch",), "int8",
                 calibration_texts=[e.text for e in data.train[:200]])
    plain, _, _ = load_model(checkpoint, None)
    write_bundle(plain, tokenizer, source, out / "k1", ("executorch",))

    errors = check_pieces_match(model, out / "fp32", lengths=(16, 64, 128))
    report["max_abs_error_per_method"] = errors
    print(f"fp32 .pte vs PyTorch, every method at 16/64/128 tokens: worst {max(errors.values()):.2e} "
          f"({max(errors, key=errors.get)})")
    ratios = sorted(int(k) for k in load_manifest(out / "fp32")["ratios"])
    for ratio in ratios:
        reference = torch_predictions(model, tokenizer, texts, ratio)
        row = {"torch_accuracy": sum(p == y for p, y in zip(reference, labels, strict=True)) / len(labels)}
        for kind in ("fp32", "int8"):
            got = chained_predictions(out / kind, tokenizer, texts, ratio)
            row[f"{kind}_agreement"] = sum(a == b for a, b in zip(got, reference, strict=True)) / len(texts)
            row[f"{kind}_accuracy"] = sum(p == y for p, y in zip(got, labels, strict=True)) / len(labels)
        report[f"k{ratio}"] = row
        print(f"k={ratio} {args.task} dev ({len(texts)}): PyTorch {100 * row['torch_accuracy']:.2f}%, "
              f"fp32 .pte agrees {100 * row['fp32_agreement']:.2f}% ({100 * row['fp32_accuracy']:.2f}%), "
              f"int8 .pte {100 * row['int8_accuracy']:.2f}% (agrees {100 * row['int8_agreement']:.2f}%)")
    plugin_bytes = 4 * sum(p.numel() for name, p in model.named_parameters() if ".plugins." in name)
    sizes = {kind: (out / kind / "model.pte").stat().st_size for kind in ("fp32", "int8", "k1")}
    sizes["mlpackage"] = load_manifest(out / "fp32")["files"]["coreml"]["bytes"]
    sizes["plugins_fp32"] = plugin_bytes
    report["bytes"] = sizes
    print(f"sizes: .pte fp32 {sizes['fp32'] / 1e6:.1f} MB, int8 {sizes['int8'] / 1e6:.1f} MB, "
          f"k=1 only {sizes['k1'] / 1e6:.1f} MB + plugins {plugin_bytes / 1e6:.1f} MB -> all ratios are "
          f"{sizes['fp32'] / (sizes['k1'] + plugin_bytes):.3f}x of that; .mlpackage (fp16) "
          f"{sizes['mlpackage'] / 1e6:.1f} MB")
    (out / "check.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
