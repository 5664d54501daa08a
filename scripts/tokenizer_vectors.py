"""Write tests/vectors/tokenizers/: one tokenizer of each kind the apps implement, and what
edge_variator.tokenizer.Tokenizer (the `tokenizers` library underneath) makes of a few hundred texts
with each, for the Kotlin and Swift ports to match id for id.

- wordpiece: the default model's own tokenizer.json (BERT, DistilBERT, ELECTRA);
- bpe: a byte-level BPE laid out as roberta-base's (RoBERTa's pre-tokenizer, post-processor and
  special tokens, `<mask>` stripping the space before it), trained here on the benchmarks' text;
- unigram: a SentencePiece model trained here with the nmt_nfkc rule (so its tokenizer.json carries
  the Precompiled charsmap that XLM-R and multilingual-e5 ship), converted by transformers'
  XLMRobertaConverter as a user's XLM-R export is.

The texts: hand-picked awkward ones, seeded samples of the five benchmarks, and seeded mixtures of
ASCII, accents, CJK, Hangul, Devanagari, Arabic, emoji (ZWJ sequences, flags, skin tones), long
words, literal special tokens and runs of whitespace. Needs `pip install sentencepiece` (only here;
the runtime reads the tokenizer.json). Run again after a tokenizer change:
    python scripts/tokenizer_vectors.py
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from pathlib import Path

import tokenizers
from tokenizers import AddedToken, decoders, models, pre_tokenizers, processors, trainers

from edge_variator.data import load_benchmark
from edge_variator.encoder import default_model_dir
from edge_variator.tokenizer import TextError, Tokenizer

OUT = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "tokenizers"
BENCHMARKS = ("mr", "trec6", "sms_spam", "r8", "20ng")
MAX_LENGTHS = (128, 16)  # 16: most texts truncated, the flag and the cut checked
POSITIONS = 514  # what the bundle's manifest would say; only max_length <= POSITIONS matters

HAND_PICKED = [
    "a gripping, beautifully acted film.",
    "The plot was DULL and the ending... predictable!!",
    "Héllo, naïve café crème brûlée — résumé",
    "Café déjà vu, naïve coöperation — résumé",
    "東京 and 北京 are cities; so is Zürich",
    "中文字符测试 mixed with english",
    "日本語のテキストとカタカナ",
    "한국어 텍스트",
    "don't won't can't it's I'm you're we've they'll he'd",
    "DON'T WON'T IT'S",
    "tabs\tand\nnewlines\r\nand  double  spaces",
    "no\u00a0break\u2003em space\u3000ideographic",
    "zero\u200bwidth\u200djoiner and soft\u00adhyphen and bom\ufeff",
    "null\x00char and control\x07bell and replacement\ufffdchar",
    "emoji 😀👍 and math ∑ ≤ ∞ and currency $ € £",
    "family 👨‍👩‍👧‍👦 flags 🇫🇷🇯🇵 skin 👍🏽 keycap 1️⃣",
    "“curly quotes” and ‘single’ and «guillemets» „quotes“",
    "ΣΊΣΥΦΟΣ and İstanbul and STRASSE and ß",
    "e\u0301 combining acute and a\u0308 and n\u0303",
    "ﬁnancial ligature ﬂow and Ⅻ roman numeral and ½ and ²",
    "Ǆ titlecase and ＦＵＬＬＷＩＤＴＨ letters and ｶﾀｶﾅ halfwidth",
    "हिन्दी पाठ और संख्या १२३",
    "النص العربي مع أرقام ١٢٣",
    "ภาษาไทยไม่มีช่องว่าง",
    "antidisestablishmentarianism supercalifragilisticexpialidocious",
    "x" * 120,
    "word " + "y" * 101,
    "a [MASK] in the text and [CLS] too",
    "special <s> and </s> and <mask> and <pad> and <unk> typed literally",
    "a<mask>b and  <mask>  spaced",
    "email@example.com http://example.org/path?q=1&r=2#frag",
    "123,456.78 and 3.14159 and -42 and 1990s and $5,000",
    "   leading and trailing spaces   ",
    "  \t mixed \n\n\n whitespace \u00a0\u00a0 runs \u3000\u3000 ",
    "many          spaces          here",
    "one",
    "a",
    ".",
    "(parentheses) [brackets] {braces} <angles> 'single'",
    "ÀÉÎÕÜ àéîõü ÇçÑñ ÅåØøÆæ Łł Śś Žž",
]

FRAGMENTS = {
    "ascii": ["the", "movie", "was", "Great", "not", "BAD", "at", "all", "we'll", "see", "OK", "hello",
              "world", "x", "zz", "Q&A", "#1", "50%", "e.g.", "U.S.", "can't", "ain't", "rock'n'roll"],
    "accents": ["café", "naïve", "résumé", "Zürich", "São", "Paulo", "Ångström", "Dvořák", "Łódź",
                "façade", "piñata", "Ærøskøbing", "Straße", "İzmir", "ﬁne", "Ⅷ", "Ｗｉｄｅ"],
    "cjk": ["東京", "北京", "日本語", "中文", "漢字", "カタカナ", "ひらがな", "한국어", "서울", "の", "是"],
    "scripts": ["हिन्दी", "नमस्ते", "عربي", "مرحبا", "עברית", "ไทย", "Ελληνικά", "русский", "ქართული"],
    "emoji": ["😀", "👍", "👍🏽", "🎬", "❤️", "👨‍👩‍👧", "🇫🇷", "🏳️‍🌈", "1️⃣", "☕", "🤖", "😂😂😂"],
    "long": ["pneumonoultramicroscopicsilicovolcanoconiosis", "floccinaucinihilipilification",
             "Donaudampfschifffahrtsgesellschaftskapitän", "a" * 60, "ab" * 40, "x1y2" * 15],
    "digits": ["0", "42", "3.14", "1,000,000", "2026-12-03", "+1-555-0100", "٣", "१२", "Ⅻ", "½"],
    "punct": [".", ",", "!", "?", "...", "--", "—", "(", ")", "\"", "'", "«", "»", "@", "#", "$", "€", "™"],
    "special": ["[CLS]", "[SEP]", "[MASK]", "[UNK]", "<s>", "</s>", "<mask>", "<pad>", "<unk>", "##ing"],
    "space": [" ", "  ", "   ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2003", " \t \n ", "\u200b"],
}


def benchmark_texts(per_set: int, rng: random.Random) -> list[str]:
    texts = []
    for name in BENCHMARKS:
        test = load_benchmark(name).test
        texts += [example.text[:600] for example in rng.sample(test, per_set)]  # 20ng: a few lines
    return texts


def mixed_texts(count: int, rng: random.Random) -> list[str]:
    kinds = [kind for kind in FRAGMENTS if kind != "space"]
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randint(1, 14)):
            parts.append(rng.choice(FRAGMENTS[rng.choice(kinds)]))
            parts.append(rng.choice(FRAGMENTS["space"]) if rng.random() < 0.3 else rng.choice(["", " "]))
        text = "".join(parts)
        if text.strip():
            texts.append(text)
    return texts


def training_corpus(rng: random.Random) -> list[str]:
    texts = []
    for name in BENCHMARKS:
        texts += [example.text for example in rng.sample(load_benchmark(name).train, 1500)]
    return texts + (HAND_PICKED + [" ".join(pieces) for pieces in FRAGMENTS.values()]) * 10


def write_bpe(folder: Path, corpus: list[str]) -> None:
    """roberta-base's layout: byte-level pre-tokenizer without a prefix space, RobertaProcessing,
    <s> <pad> </s> <unk> as ids 0-3, and <mask> stripping the space on its left."""
    tokenizer = tokenizers.Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=6000, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer)
    tokenizer.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False, special=True)])
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True,
                                                            add_prefix_space=False)
    folder.mkdir(parents=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    _write_config(folder, "<pad>")


def write_unigram(folder: Path, corpus: list[str]) -> None:
    """A SentencePiece Unigram model (nmt_nfkc normalization) converted as transformers converts
    XLM-R's sentencepiece.bpe.model: ids shifted so <s> <pad> </s> <unk> are 0-3, <mask> last."""
    import sentencepiece
    from transformers.convert_slow_tokenizer import XLMRobertaConverter

    with tempfile.TemporaryDirectory() as scratch:
        text_file = Path(scratch) / "corpus.txt"
        text_file.write_text("\n".join(line.replace("\n", " ") for line in corpus), encoding="utf-8")
        prefix = Path(scratch) / "spm"
        sentencepiece.SentencePieceTrainer.train(
            input=str(text_file), model_prefix=str(prefix), vocab_size=4000, model_type="unigram",
            normalization_rule_name="nmt_nfkc", character_coverage=0.9995, seed_sentencepiece_size=100000,
            unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2, num_threads=2)

        class Original:  # what the converter reads from a slow XLMRobertaTokenizer
            vocab_file = str(prefix) + ".model"
            add_prefix_space = True

            @staticmethod
            def convert_tokens_to_ids(token: str) -> int:
                return {"<s>": 0, "</s>": 2}[token]

        tokenizer = XLMRobertaConverter(Original()).converted()
    tokenizer.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False, special=True)])
    folder.mkdir(parents=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    _write_config(folder, "<pad>")


def _write_config(folder: Path, pad_token: str) -> None:
    (folder / "tokenizer_config.json").write_text(json.dumps({"pad_token": pad_token}) + "\n")


def cases_for(folder: Path, texts: list[str]) -> dict:
    cases = []
    for max_length in MAX_LENGTHS:
        tokenizer = Tokenizer(folder, max_length, max_positions=POSITIONS)
        for text in texts if max_length == MAX_LENGTHS[0] else texts[::4]:
            batch = tokenizer([text])
            cases.append({"text": text, "max_length": max_length, "input_ids": batch.input_ids[0].tolist(),
                          "attention_mask": batch.attention_mask[0].tolist(),
                          "truncated": batch.truncated[0]})
    errors = []
    for text in ["", "   ", "\t\n", "\u3000"]:
        try:
            tokenizer([text])
            errors.append({"text": text, "error": None})
        except TextError as error:
            errors.append({"text": text, "error": type(error).__name__})
    return {"kind": tokenizer.kind, "pad_token_id": tokenizer.pad_token_id, "cases": cases, "errors": errors}


def write_cases(path: Path, description: str, vectors: dict) -> None:
    """One case per line, so a diff shows which texts changed."""
    lines = ["{", f' "description": {json.dumps(description, ensure_ascii=False)},']
    lines += [f' "{key}": {json.dumps(vectors[key], ensure_ascii=False)},'
              for key in ("kind", "pad_token_id")]
    lines.append(' "cases": [')
    lines += ["  " + json.dumps(case, ensure_ascii=False) + ("," if i < len(vectors["cases"]) - 1 else "")
              for i, case in enumerate(vectors["cases"])]
    lines += [" ],", f' "errors": {json.dumps(vectors["errors"], ensure_ascii=False)}', "}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    rng = random.Random(0)
    texts = HAND_PICKED + benchmark_texts(24, rng) + mixed_texts(140, rng)
    corpus = training_corpus(rng)
    staging = Path(tempfile.mkdtemp(dir=OUT.parent, prefix=".tokenizers-"))  # swapped in whole at the end
    try:
        shutil.copytree(default_model_dir(), staging / "wordpiece",
                        ignore=lambda _, names: [n for n in names if n not in ("tokenizer.json",
                                                                                "tokenizer_config.json")])
        write_bpe(staging / "bpe", corpus)
        write_unigram(staging / "unigram", corpus)
        for kind in ("wordpiece", "bpe", "unigram"):
            vectors = cases_for(staging / kind, texts)
            assert vectors["kind"] == kind, (kind, vectors["kind"])
            description = (f"edge_variator.tokenizer.Tokenizer({kind}/, max_length) on each text: the "
                           "padded ids and mask and the truncation flag; errors: texts it refuses. "
                           "Written by scripts/tokenizer_vectors.py with tokenizers "
                           f"{tokenizers.__version__}.")
            write_cases(staging / f"{kind}.json", description, vectors)
            print(f"{kind}: {len(vectors['cases'])} cases, {len(vectors['errors'])} refusals")
        if OUT.exists():
            shutil.rmtree(OUT)
        staging.rename(OUT)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":
    main()
