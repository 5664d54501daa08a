#!/usr/bin/env bash
# Regenerate src/test/resources/tokenizer_cases.json: what edge_variator/tokenizer.py (Hugging Face's
# fast tokenizer) makes of tricky texts, for the Kotlin WordPiece port to match. Needs the Python
# package installed (pip install -e .); run from anywhere after the default tokenizer changes.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
python - "$here/src/test/resources/tokenizer_cases.json" <<'PY'
import json
import sys

from edge_variator.tokenizer import Tokenizer

TOKENIZER = "edge_variator/default/mr_slender"
TEXTS = [
    "a gripping, beautifully acted film.",
    "The plot was DULL and the ending... predictable!!",
    "Héllo, naïve café crème brûlée — résumé",
    "東京 and 北京 are cities; so is Zürich",
    "don't won't can't it's",
    "tabs\tand\nnewlines\r\nand  double  spaces",
    "no\u00a0break\u2003em space\u3000ideographic",
    "zero\u200bwidth and soft\u00adhyphen and bom\ufeff",
    "control\u0007bell and replacement\ufffdchar",
    "emoji 😀👍 and math ∑ ≤ ∞ and currency $ € £",
    "“curly quotes” and ‘single’ and «guillemets»",
    "ΣΊΣΥΦΟΣ and İstanbul and STRASSE and ß",
    "antidisestablishmentarianism supercalifragilisticexpialidocious",
    "x" * 120,
    "word " + "y" * 101,
    "a [MASK] in the text and [CLS] too",
    "email@example.com http://example.org/path?q=1&r=2",
    "123,456.78 and 3.14159 and -42",
    "   leading and trailing spaces   ",
    "one",
]
LONG = " ".join(f"word{index}" for index in range(200))
cases = []
for max_length in (128, 16):
    tokenizer = Tokenizer(TOKENIZER, max_length)
    for text in TEXTS + [LONG]:
        batch = tokenizer([text])
        cases.append({"text": text, "max_length": max_length, "input_ids": batch.input_ids[0].tolist(),
                      "attention_mask": batch.attention_mask[0].tolist(), "truncated": batch.truncated[0]})
description = ("What edge_variator/tokenizer.py makes of each text with the tokenizer of " + TOKENIZER +
               "; written by android_demo/policy/make_tokenizer_cases.sh.")
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump({"description": description, "tokenizer": TOKENIZER + "/tokenizer.json", "cases": cases},
              out, ensure_ascii=False, indent=1)
    out.write("\n")
print(f"wrote {sys.argv[1]}: {len(cases)} cases")
PY
