"""COST-EFF slenderization: fewer attention heads, a narrower FFN and a factorized word embedding,
every layer kept.

Importance is first-order Taylor: for a head or an FFN neuron, |sum(grad * w)| over all its
weights (the head's Q/K/V rows and output-projection columns; the neuron's intermediate row and
output column), taken per batch of the loss of *all* exits and summed over batches. Pruning builds
a genuinely smaller model (sliced matrices, a new EncoderConfig), not a mask: it saves, loads and
exports like any other. The word embedding is factorized by SVD into (vocab x rank) @ (rank x d).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import torch

from edge_variator.encoder import Encoder, EncoderConfig
from edge_variator.exits import MultiExitModel


@dataclass
class Importance:
    heads: list[torch.Tensor]  # per layer: (heads,)
    neurons: list[torch.Tensor]  # per layer: (intermediate,)


def _per_head(tensor: torch.Tensor, heads: int, dim: int) -> torch.Tensor:
    """Sum a (grad * w) tensor into one number per head along `dim` (rows for Q/K/V, columns for O)."""
    chunks = tensor.reshape(heads, -1) if dim == 0 else tensor.T.reshape(heads, -1)
    return chunks.sum(1)


def taylor_importance(model: MultiExitModel, batches: Iterable,
                      loss_fn: Callable[[MultiExitModel, object], torch.Tensor]) -> Importance:
    """Accumulate |sum(grad * w)| per head and per FFN neuron over `batches`.

    `loss_fn(model, batch)` returns the loss whose sensitivity is measured (COST-EFF: every exit's).
    Dropout is off so the scores do not depend on the noise; the model's weights are not changed.
    """
    config = model.encoder.config
    was_training = model.training
    model.eval()
    heads = [torch.zeros(config.heads) for _ in range(config.layers)]
    neurons = [torch.zeros(config.intermediate) for _ in range(config.layers)]
    for batch in batches:
        model.zero_grad(set_to_none=True)
        loss_fn(model, batch).backward()
        with torch.no_grad():
            for index, layer in enumerate(model.encoder.layers):
                attention, ffn = layer.attention, layer.ffn
                score = sum(_per_head(lin.weight.grad * lin.weight, config.heads, 0)
                            + _per_head(lin.bias.grad * lin.bias, config.heads, 0)
                            for lin in (attention.query, attention.key, attention.value))
                score = score + _per_head(attention.output.weight.grad * attention.output.weight,
                                          config.heads, 1)
                heads[index] += score.abs().cpu()
                inner, outer = ffn.intermediate, ffn.output
                score = ((inner.weight.grad * inner.weight).sum(1) + inner.bias.grad * inner.bias
                         + (outer.weight.grad * outer.weight).sum(0))
                neurons[index] += score.abs().cpu()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return Importance(heads, neurons)


def _keep(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the `count` highest scores, in their original order."""
    return scores.topk(count).indices.sort().values


def prune(model: MultiExitModel, keep_heads: int, keep_neurons: int,
          importance: Importance) -> MultiExitModel:
    """A new, smaller model: every layer keeps its `keep_heads` most important heads and
    `keep_neurons` most important FFN neurons (the same counts in every layer, so every layer
    exports to the same shapes)."""
    config = model.encoder.config
    if not (1 <= keep_heads <= config.heads and 1 <= keep_neurons <= config.intermediate):
        raise ValueError(f"keep 1..{config.heads} heads and 1..{config.intermediate} neurons, "
                         f"not {keep_heads} and {keep_neurons}")
    head_dim = config.head_dim
    new_config = replace(config, heads=keep_heads, head_size=head_dim, intermediate=keep_neurons)
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    for index in range(config.layers):
        kept_heads = _keep(importance.heads[index], keep_heads)
        rows = (kept_heads[:, None] * head_dim + torch.arange(head_dim)).flatten()
        kept_neurons = _keep(importance.neurons[index], keep_neurons)
        prefix = f"encoder.layers.{index}."
        for name in ("query", "key", "value"):
            state[f"{prefix}attention.{name}.weight"] = state[f"{prefix}attention.{name}.weight"][rows]
            state[f"{prefix}attention.{name}.bias"] = state[f"{prefix}attention.{name}.bias"][rows]
        state[f"{prefix}attention.output.weight"] = state[f"{prefix}attention.output.weight"][:, rows]
        state[f"{prefix}ffn.intermediate.weight"] = state[f"{prefix}ffn.intermediate.weight"][kept_neurons]
        state[f"{prefix}ffn.intermediate.bias"] = state[f"{prefix}ffn.intermediate.bias"][kept_neurons]
        state[f"{prefix}ffn.output.weight"] = state[f"{prefix}ffn.output.weight"][:, kept_neurons]
    return _rebuild(model, new_config, state)


def factorize_embeddings(model: MultiExitModel, rank: int) -> MultiExitModel:
    """Replace the (vocab x d) word embedding by its best rank-`rank` factorization (truncated SVD)."""
    config = model.encoder.config
    embeddings = model.encoder.embeddings
    full = embeddings.word_embeddings.weight.detach()
    if embeddings.word_projection is not None:
        full = full @ embeddings.word_projection.weight.detach().T
    if not 1 <= rank < config.embedding_width:
        raise ValueError(f"embedding rank must be in 1..{config.embedding_width - 1}, not {rank}")
    u, s, vh = torch.linalg.svd(full.double(), full_matrices=False)
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    state["encoder.embeddings.word_embeddings.weight"] = (u[:, :rank] * s[:rank]).float()
    state["encoder.embeddings.word_projection.weight"] = vh[:rank].T.float()  # Linear(rank -> d)
    return _rebuild(model, replace(config, embedding_rank=rank), state)


def _rebuild(model: MultiExitModel, config: EncoderConfig, state: dict[str, torch.Tensor]) -> MultiExitModel:
    smaller = MultiExitModel(Encoder(config), model.labels, pooling=model.pooling,
                             last_exit_pooler=model.last_exit_pooler)
    smaller.load_state_dict(state)
    return smaller.train(model.training)


@dataclass(frozen=True)
class Width:
    """A slender size: heads per layer, FFN neurons per layer, word-embedding rank (None: keep)."""

    heads: int
    neurons: int
    embedding_rank: int | None = None

    @classmethod
    def of(cls, config: EncoderConfig, heads: float, neurons: float, embedding_rank: float | None) -> Width:
        """Each size a count, or a fraction (0 < f < 1) of the backbone's heads, FFN neurons or
        embedding width: 0.25, 0.25 and 1/6 are the quarter model on any backbone (3, 384 and 64 on
        all-MiniLM-L6-v2)."""
        def count(value: float, full: int, name: str) -> int:
            if 0 < value < 1:
                return max(1, round(value * full))
            if 1 <= value <= full and float(value).is_integer():
                return int(value)
            raise ValueError(f"{name}: a count from 1 to {full} (this backbone's) or a fraction between "
                             f"0 and 1, not {value:g}")
        return cls(count(heads, config.heads, "heads"), count(neurons, config.intermediate, "neurons"),
                   None if embedding_rank is None else count(embedding_rank, config.embedding_width,
                                                             "embedding_rank"))

    def steps(self, config: EncoderConfig, count: int) -> list[Width]:
        """`count` widths from just under the full model's down to this one, evenly spaced, so
        pruning removes a little at a time and re-scores what is left in between."""
        def between(full: int, target: int, step: int) -> int:
            return round(full - (full - target) * step / count)
        return [Width(between(config.heads, self.heads, step),
                      between(config.intermediate, self.neurons, step),
                      self.embedding_rank if step == count else None) for step in range(1, count + 1)]
