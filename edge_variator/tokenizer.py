"""Tokenization with the model folder's own tokenizer.json, padded the way exported graphs need.

Exported layer methods take a sequence length that is a multiple of 8 (the largest plugin ratio)
and at least 16 (see DESIGN.md), so batches are padded to that shape here, once, for every caller.
Texts past the maximum length are truncated and flagged, never rejected.

It runs on the `tokenizers` library alone, so the runtime loads a bundle without transformers; a
checkpoint folder with only a vocabulary (no tokenizer.json) is converted by transformers once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer as FastTokenizer

PAD_MULTIPLE = 8  # the largest compression ratio: every ratio then divides the length
MIN_LENGTH = 16  # a dynamic export dimension of one block of 8 is specialised away


class TextError(ValueError):
    """A text cannot be encoded (empty, or not a string)."""


@dataclass
class Batch:
    input_ids: torch.Tensor  # (batch, seq) int64, seq a multiple of PAD_MULTIPLE
    attention_mask: torch.Tensor  # (batch, seq) int64, 1 for real tokens
    token_type_ids: torch.Tensor  # (batch, seq) int64, 1 for the second text of a pair
    truncated: list[bool]  # per text: did it exceed max_length and lose tokens?

    @property
    def lengths(self) -> list[int]:
        return self.attention_mask.sum(1).tolist()

    def to(self, device: torch.device) -> Batch:
        return Batch(self.input_ids.to(device), self.attention_mask.to(device),
                     self.token_type_ids.to(device), self.truncated)


def padded_length(length: int) -> int:
    """The shape a sequence of `length` real tokens is padded to."""
    return max(MIN_LENGTH, -(-length // PAD_MULTIPLE) * PAD_MULTIPLE)


class Tokenizer:
    def __init__(self, model_dir: str | Path, max_length: int = 128, max_positions: int | None = None):
        if max_length % PAD_MULTIPLE or max_length < MIN_LENGTH:
            raise ValueError(
                f"max_length={max_length} must be a multiple of {PAD_MULTIPLE} and >= {MIN_LENGTH}"
            )
        if max_positions is not None:  # a bundle's tokenizer folder: its manifest says
            positions = max_positions
        else:
            from edge_variator.encoder import read_encoder_config

            positions = read_encoder_config(model_dir).positions
        if max_length > positions:
            raise ValueError(f"max_length={max_length} exceeds the model's {positions} positions")
        self.max_length = max_length
        self.model_dir = Path(model_dir)
        self.untruncated = _load_fast(self.model_dir)
        self.untruncated.no_truncation()
        self.untruncated.no_padding()
        pad_token = _pad_token(self.model_dir)
        self.pad_token_id = self.untruncated.token_to_id(pad_token)
        self.fitted = FastTokenizer.from_str(self.untruncated.to_str())  # a copy: cut and padded
        self.fitted.enable_truncation(max_length, strategy="longest_first")
        self.fitted.enable_padding(pad_id=self.pad_token_id, pad_token=pad_token,
                                   pad_to_multiple_of=PAD_MULTIPLE)

    @property
    def kind(self) -> str:
        """The tokenizer.json model the apps implement: "wordpiece" (BERT, DistilBERT, ELECTRA),
        "bpe" (byte-level, RoBERTa) or "unigram" (SentencePiece, XLM-R)."""
        return json.loads(self.untruncated.to_str())["model"]["type"].lower()

    def token_lengths(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> list[int]:
        """Untruncated lengths, special tokens included."""
        return [len(e.ids) for e in self.untruncated.encode_batch(_inputs(texts, pairs))]

    def padded_lengths(self, texts: Sequence[str]) -> list[int]:
        """The length each text runs at: truncated to max_length, padded as __call__ pads it alone."""
        return [padded_length(min(n, self.max_length)) for n in self.token_lengths(texts)]

    def length_stats(self, texts: Sequence[str]) -> dict[str, float]:
        """Mean and 90th-percentile untruncated token length (what max_length to pick)."""
        lengths = sorted(self.token_lengths(texts))
        return {"mean": sum(lengths) / len(lengths), "p90": lengths[int(0.9 * (len(lengths) - 1))]}

    def __call__(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Batch:
        if isinstance(texts, str):
            raise TextError("pass a list of texts, not a single string")
        for index, text in enumerate(list(texts) + list(pairs or [])):
            if not isinstance(text, str):
                raise TextError(f"text {index} is {type(text).__name__}, not str")
            if not text.strip():
                raise TextError(f"text {index} is empty: there is nothing to classify")
        if pairs is not None and len(pairs) != len(texts):
            raise TextError(f"{len(texts)} texts but {len(pairs)} pairs")
        full = self.token_lengths(texts, pairs)
        encoded = self.fitted.encode_batch(_inputs(texts, pairs))
        batch = Batch(
            input_ids=torch.tensor([e.ids for e in encoded], dtype=torch.int64),
            attention_mask=torch.tensor([e.attention_mask for e in encoded], dtype=torch.int64),
            token_type_ids=torch.tensor([e.type_ids for e in encoded], dtype=torch.int64),
            truncated=[length > self.max_length for length in full],
        )
        return _pad_to_min_length(batch, self.pad_token_id)

    def save(self, out_dir: str | Path) -> None:
        """The folder's tokenizer files as transformers writes them (what the apps read)."""
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(str(self.model_dir), use_fast=True).save_pretrained(str(out_dir))


def _inputs(texts: Sequence[str], pairs: Sequence[str] | None) -> list:
    return list(zip(texts, pairs, strict=True)) if pairs else list(texts)


def _load_fast(model_dir: Path) -> FastTokenizer:
    if (model_dir / "tokenizer.json").is_file():
        return FastTokenizer.from_file(str(model_dir / "tokenizer.json"))
    from transformers import AutoTokenizer  # a vocabulary-only folder: convert it

    return AutoTokenizer.from_pretrained(str(model_dir), use_fast=True).backend_tokenizer


def _pad_token(model_dir: Path) -> str:
    """The padding token the folder's tokenizer_config.json names ([PAD] for BERT)."""
    config = model_dir / "tokenizer_config.json"
    token = json.loads(config.read_text()).get("pad_token") if config.is_file() else None
    if isinstance(token, dict):  # {"content": "<pad>", ...} in newer configs
        token = token.get("content")
    return token or "[PAD]"


def _pad_to_min_length(batch: Batch, pad_id: int) -> Batch:
    missing = padded_length(batch.input_ids.shape[1]) - batch.input_ids.shape[1]
    if missing <= 0:
        return batch

    def pad(tensor: torch.Tensor, value: int) -> torch.Tensor:
        return torch.nn.functional.pad(tensor, (0, missing), value=value)

    return Batch(
        pad(batch.input_ids, pad_id),
        pad(batch.attention_mask, 0),
        pad(batch.token_type_ids, 0),
        batch.truncated,
    )
