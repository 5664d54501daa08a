#!/usr/bin/env bash
# Write EdgeVariatorPolicy/Tests/EdgeVariatorPolicyTests/Fixtures/tokenizer.json: what the Python
# tokenizer (edge_variator.tokenizer.Tokenizer, Hugging Face's fast tokenizer underneath) makes of
# a set of awkward texts with the repository's tokenizer, for the Swift WordPiece to match.
# Run again after a tokenizer change, with the repository's Python environment:
#   bash ios_demo/make_tokenizer_fixture.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python3 - <<'PY'
import json

import tokenizers
import transformers

from edge_variator.tokenizer import TextError, Tokenizer

TOKENIZER_DIR, MAX_LENGTH = "edge_variator/default/mr_slender", 128
OUT = "ios_demo/EdgeVariatorPolicy/Tests/EdgeVariatorPolicyTests/Fixtures/tokenizer.json"
texts = [
    "a charming and affecting journey",
    "The movie was NOT good... at all!!!",
    "Café déjà vu, naïve coöperation — résumé",
    "don't won't can't it's 1990s 3.14 $5,000",
    "tabs\tand\nnewlines\r\nand  double  spaces",
    "zero\u200bwidth\u200djoiner and soft\u00adhyphen",
    "null\x00char and control\x07bell and \ufffd replacement",
    "中文字符测试 mixed with english",
    "日本語のテキストとカタカナ",
    "한국어 텍스트",
    "emoji 😀🎬 and symbols ©®™ ± ∞",
    "ΟΔΥΣΣΕΥΣ and Straße and İstanbul",
    "e\u0301 combining acute and a\u0308",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "x" * 101 + " after a long word",
    "https://example.com/path?query=1&x=y#frag user@mail.org",
    "(parentheses) [brackets] {braces} <angles> «guillemets» „quotes“ 'single'",
    "wordpiece ##prefix in text and [CLS] [SEP] [UNK] typed literally",
    "   leading and trailing spaces   ",
    "\u3000ideographic\u3000space and\u00a0nbsp",
    "one",
    " ".join(["the long text goes on and on"] * 30),
    " ".join(f"w{i}" for i in range(63)),
    " ".join(f"w{i}" for i in range(64)),
    "ﬁnancial ligature ﬂow and Ⅻ roman numeral and ½",
    "Ǆ titlecase and ＦＵＬＬＷＩＤＴＨ letters",
]
tokenizer = Tokenizer(TOKENIZER_DIR, MAX_LENGTH)
cases = []
for text in texts:
    batch = tokenizer([text])
    cases.append({"text": text, "input_ids": batch.input_ids[0].tolist(),
                  "attention_mask": batch.attention_mask[0].tolist(), "truncated": batch.truncated[0]})
errors = []
for text in ["", "   ", "\t\n"]:
    try:
        tokenizer([text])
        errors.append({"text": text, "error": None})
    except TextError as error:
        errors.append({"text": text, "error": type(error).__name__})
description = (f"edge_variator.tokenizer.Tokenizer({TOKENIZER_DIR}, max_length={MAX_LENGTH}) on each text: the "
               "padded ids and mask and the truncation flag (generated with transformers "
               f"{transformers.__version__}, tokenizers {tokenizers.__version__} by ios_demo/make_tokenizer_fixture.sh)")
lines = ["{", f' "description": {json.dumps(description, ensure_ascii=False)},',
         f' "tokenizer_dir": {json.dumps(TOKENIZER_DIR)},', f' "max_length": {MAX_LENGTH},', ' "cases": [']
lines += ["  " + json.dumps(case, ensure_ascii=False) + ("," if i < len(cases) - 1 else "")
          for i, case in enumerate(cases)]
lines += [" ],", f' "errors": {json.dumps(errors, ensure_ascii=False)}', "}"]
with open(OUT, "w", encoding="utf-8") as out:
    out.write("\n".join(lines) + "\n")
print(f"{OUT}: {len(cases)} texts, {len(errors)} refused")
PY
