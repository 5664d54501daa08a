"""A checkpoint trained here (task or multi-exit) + its plugin sets -> the full bundle.

    python export_scripts/checkpoint_to_bundle.py runs/slender/mr/quarter bundles/mr \
        --plugins runs/slender/mr/quarter/plugins

Edit the settings below; `edge-variator export` is the same with flags.
"""

import argparse

from edge_variator.data import load_benchmark
from edge_variator.export.bundle import load_model, write_bundle
from edge_variator.runtime.bundle import load_manifest

FORMATS = ("executorch", "coreml")
QUANTIZE = "none"  # or "int8": calibrated on CALIBRATION_TASK's train texts
CALIBRATION_TASK, CALIBRATION_COUNT = "mr", 200

parser = argparse.ArgumentParser()
parser.add_argument("checkpoint")
parser.add_argument("out")
parser.add_argument("--plugins", help="folder with k2/, k4/, k8/ plugin sets for that checkpoint")
args = parser.parse_args()

model, tokenizer, source = load_model(args.checkpoint, args.plugins)
texts = []
if QUANTIZE == "int8":
    texts = [e.text for e in load_benchmark(CALIBRATION_TASK).train[:CALIBRATION_COUNT]]
write_bundle(model, tokenizer, source, args.out, FORMATS, QUANTIZE, calibration_texts=texts)
manifest = load_manifest(args.out)
print(f"{args.out}: ratios {sorted(manifest['ratios'], key=int)}, "
      f"exits after {manifest['exits']['after_layers']}, thresholds {manifest['exits']['thresholds']}")
