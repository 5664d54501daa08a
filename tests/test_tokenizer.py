"""Tokenization pads to what exported graphs accept and flags truncation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_variator.encoder import default_model_dir
from edge_variator.tokenizer import MIN_LENGTH, PAD_MULTIPLE, TextError, Tokenizer, padded_length


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer(default_model_dir(), max_length=32)


def test_batches_pad_to_a_multiple_of_8_and_at_least_16(tokenizer):
    short = tokenizer(["fine"])
    assert short.input_ids.shape == (1, MIN_LENGTH)
    assert short.lengths == [3]  # [CLS] fine [SEP]
    longer = tokenizer(["one two three four five six seven eight nine ten eleven twelve thirteen "
                        "fourteen fifteen sixteen"])
    assert longer.input_ids.shape[1] % PAD_MULTIPLE == 0 and longer.input_ids.shape[1] > MIN_LENGTH


def test_padded_length():
    assert [padded_length(n) for n in (1, 16, 17, 24, 25)] == [16, 16, 24, 24, 32]


def test_long_text_is_truncated_and_flagged(tokenizer):
    batch = tokenizer(["word " * 100, "short"])
    assert batch.truncated == [True, False]
    assert batch.input_ids.shape[1] == 32
    assert batch.lengths[0] == 32


def test_pairs_get_second_segment_type_ids(tokenizer):
    batch = tokenizer(["is it good"], ["yes it is"])
    types = batch.token_type_ids[0, : batch.lengths[0]].tolist()
    assert types[0] == 0 and types[-1] == 1


@pytest.mark.parametrize("texts", [[""], ["   "], ["fine", "\n"]])
def test_empty_text_is_refused(tokenizer, texts):
    with pytest.raises(TextError, match="empty"):
        tokenizer(texts)


def test_single_string_is_refused(tokenizer):
    with pytest.raises(TextError, match="list of texts"):
        tokenizer("a text")


def test_max_length_must_suit_export(tokenizer):
    with pytest.raises(ValueError, match="multiple of 8"):
        Tokenizer(default_model_dir(), max_length=100)


def test_max_length_cannot_exceed_the_models_positions():
    with pytest.raises(ValueError, match="exceeds the model's 512 positions"):
        Tokenizer(default_model_dir(), max_length=1024)


def test_padded_lengths_are_the_shapes_texts_run_at(tokenizer):
    texts = ["fine", "word " * 20, "word " * 100]
    shapes = [tokenizer([text]).input_ids.shape[1] for text in texts]
    assert tokenizer.padded_lengths(texts) == shapes == [16, 24, 32]


PARITY_TEXTS = ["a gripping, beautifully shot film", "Café naïve résumé", "東京タワー と 北京", "fun 😀🎉 !!",
                "supercalifragilisticexpialidocious antidisestablishmentarianism",
                "runs   of \t\t white\n space", "word " * 60, "UPPER lower MiXeD 123,456.78"]


def test_ids_equal_transformers_own_tokenizer(tokenizer):
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(str(default_model_dir()))
    pairs = PARITY_TEXTS[1:] + PARITY_TEXTS[:1]
    for texts, second in ((PARITY_TEXTS, None), (PARITY_TEXTS, pairs)):
        ours = tokenizer(texts, second)
        theirs = reference(texts, second, truncation=True, max_length=32, padding="longest",
                           pad_to_multiple_of=PAD_MULTIPLE, return_tensors="pt", return_token_type_ids=True)
        width = theirs["input_ids"].shape[1]
        assert ours.input_ids[:, :width].tolist() == theirs["input_ids"].tolist()
        assert ours.token_type_ids[:, :width].tolist() == theirs["token_type_ids"].tolist()
        assert ours.attention_mask[:, :width].tolist() == theirs["attention_mask"].tolist()


def test_a_vocabulary_only_folder_is_converted(tokenizer, tmp_path):
    import shutil

    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "config.json"):
        shutil.copy(default_model_dir() / name, tmp_path / name)
    converted = Tokenizer(tmp_path, max_length=32)
    assert converted(PARITY_TEXTS).input_ids.tolist() == tokenizer(PARITY_TEXTS).input_ids.tolist()


VECTORS = Path(__file__).parent / "vectors" / "tokenizers"


@pytest.mark.parametrize("kind", ["wordpiece", "bpe", "unigram"])
def test_the_apps_tokenizer_vectors_are_what_the_tokenizer_makes_now(kind):
    """tests/vectors/tokenizers/ is what the Kotlin and Swift ports are held to: it must still be
    what the Python tokenizer (the `tokenizers` library) makes of every text, with every kind."""
    vectors = json.loads((VECTORS / f"{kind}.json").read_text(encoding="utf-8"))
    assert vectors["kind"] == kind and len(vectors["cases"]) >= 300
    tokenizers = {}
    for case in vectors["cases"]:
        length = case["max_length"]
        tokenizers.setdefault(length, Tokenizer(VECTORS / kind, length, max_positions=514))
        batch = tokenizers[length]([case["text"]])
        assert tokenizers[length].kind == kind
        assert (batch.input_ids[0].tolist(), batch.attention_mask[0].tolist(), batch.truncated[0]) == (
            case["input_ids"], case["attention_mask"], case["truncated"]), case["text"]
    for refused in vectors["errors"]:
        with pytest.raises(TextError):
            tokenizers[128]([refused["text"]])
