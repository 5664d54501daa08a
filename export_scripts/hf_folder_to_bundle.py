"""Any local Hugging Face BERT-family classifier folder -> a plain bundle (k = 1, one exit).

    python export_scripts/hf_folder_to_bundle.py path/to/bert-sst2 bundles/bert-sst2

Edit the settings below. The folder needs config.json, model.safetensors with a classification
head (BertForSequenceClassification.save_pretrained) and its tokenizer files.
"""

import sys

from edge_variator.encoder import backbone_sha256
from edge_variator.export.bundle import write_bundle
from edge_variator.runtime.bundle import load_manifest
from edge_variator.task import load_hf_classifier

MAX_LENGTH = 128  # the longest input the phone will send (a multiple of 8)
FORMATS = ("executorch", "coreml")  # drop "coreml" for Android-only bundles
QUANTIZE = "none"  # "int8" also needs CALIBRATION_TEXTS
CALIBRATION_TEXTS: list[str] = []

folder, out = sys.argv[1], sys.argv[2]
model, tokenizer = load_hf_classifier(folder, MAX_LENGTH)
source = {"id": folder.rstrip("/").split("/")[-1], "sha256": backbone_sha256(folder), "criterion": "entropy",
          "thresholds": {}}
write_bundle(model, tokenizer, source, out, FORMATS, QUANTIZE, calibration_texts=CALIBRATION_TEXTS)
manifest = load_manifest(out)
print(f"{out}: {len(manifest['methods'])} methods, labels {manifest['model']['labels']}")
