"""A teacher's hidden states computed once per training stage, instead of a teacher forward pass at
every step of every epoch.

States are stored per example, real tokens only (the losses mask padding out), in one
memory-mapped file of (tokens, states, hidden), fp16 by default: 20ng's 1.8 M training tokens x 7
states x 384 take 9.7 GB, more than a laptop's memory but not its disk. A batch's targets are
gathered back into the padded shape of that batch. The folder is written last-file-last
(`meta.json`), so a build killed midway is simply rebuilt.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from edge_variator.data import Example
from edge_variator.files import write_json
from edge_variator.tokenizer import Batch, Tokenizer

DTYPES = {"float16": np.float16, "float32": np.float32}


class TeacherCache:
    """Per-example hidden states (real tokens only) on disk; `gather` pads them into a batch."""

    def __init__(self, folder: str | Path):
        folder = Path(folder)
        self.meta = json.loads((folder / "meta.json").read_text())
        self.offsets = np.load(folder / "offsets.npy")
        self.lengths = np.load(folder / "lengths.npy")
        shape = (int(self.offsets[-1]), self.meta["states"], self.meta["hidden"])
        self.states = np.memmap(folder / "states.bin", DTYPES[self.meta["dtype"]], "r", shape=shape)

    @classmethod
    def build(cls, folder: str | Path, states_of: Callable[[Batch], Sequence[torch.Tensor]],
              tokenizer: Tokenizer, examples: list[Example], key: str, dtype: str = "float16",
              batch_size: int = 64, device: torch.device | str = "cpu") -> TeacherCache:
        """Run `states_of` (a batch -> its hidden states, each (batch, seq, hidden)) over every
        example once, or reuse the folder when it already holds the same `key` and examples."""
        folder = Path(folder)
        texts = [e.text for e in examples]
        pairs = [e.text_pair for e in examples] if examples and examples[0].text_pair else None
        lengths = np.minimum(tokenizer.token_lengths(texts, pairs), tokenizer.max_length).astype(np.int64)
        identity = {"key": key, "examples": len(examples), "tokens": int(lengths.sum()), "dtype": dtype,
                    "max_length": tokenizer.max_length}
        if (folder / "meta.json").is_file():
            cache = cls(folder)
            if {k: cache.meta.get(k) for k in identity} == identity:
                return cache
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "meta.json").unlink(missing_ok=True)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        order = sorted(range(len(texts)), key=lengths.__getitem__)  # little padding per batch
        states = None
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                batch = tokenizer([texts[i] for i in chunk], [pairs[i] for i in chunk] if pairs else None)
                outputs = torch.stack([s.float() for s in states_of(batch.to(device))], 2).cpu().numpy()
                if states is None:
                    shape = (int(offsets[-1]), outputs.shape[2], outputs.shape[3])
                    states = np.memmap(folder / "states.bin", DTYPES[dtype], "w+", shape=shape)
                for row, index in enumerate(chunk):
                    states[offsets[index]:offsets[index + 1]] = outputs[row, :lengths[index]]
        states.flush()
        np.save(folder / "offsets.npy", offsets)
        np.save(folder / "lengths.npy", lengths)
        write_json(folder / "meta.json", {**identity, "states": states.shape[1], "hidden": states.shape[2]})
        return cls(folder)

    def gather(self, indices: Sequence[int], seq_len: int, states: Sequence[int] | None = None
               ) -> torch.Tensor:
        """(states, batch, seq_len, hidden) float32 for the examples `indices`; zeros past each one's
        real tokens. `states` picks which stored states (default: all)."""
        chosen = list(range(self.meta["states"])) if states is None else list(states)
        out = np.zeros((len(chosen), len(indices), seq_len, self.meta["hidden"]), dtype=np.float32)
        for row, index in enumerate(indices):
            start, length = self.offsets[index], self.lengths[index]
            out[:, row, :length] = self.states[start:start + length, chosen].transpose(1, 0, 2)
        return torch.from_numpy(out)
