"""The pieces a bundle is made of, as modules `torch.export` traces one by one.

A phone runs `embed`, then `layer_{i}_k{k}` layer after layer at the ratio its policy chose, and
`exit_{i}` after a layer to decide whether to stop (layers and exits take the hidden states and the
attention mask; embed takes the token ids). Every piece takes a sequence length that is a
multiple of 8 between 16 and the maximum (the tokenizer pads to that), declared dynamic.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import torch
from torch import nn
from torch.export import Dim, ExportedProgram, export

from edge_variator.encoder import EncoderLayer, SelfAttention, additive_mask
from edge_variator.exits import MultiExitModel
from edge_variator.plugins import available_ratios
from edge_variator.task import TaskModel
from edge_variator.tokenizer import MIN_LENGTH, PAD_MULTIPLE


class Embed(nn.Module):
    def __init__(self, model: TaskModel | MultiExitModel):
        super().__init__()
        self.embeddings = model.encoder.embeddings

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.embeddings(input_ids, torch.zeros_like(input_ids))


class Layer(nn.Module):
    """One encoder layer at one compression ratio (1: the plain layer)."""

    def __init__(self, layer: EncoderLayer, ratio: int):
        super().__init__()
        self.layer = layer
        self.ratio = ratio

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.layer(hidden, additive_mask(attention_mask, hidden.dtype), self.ratio)


class PooledClassifier(nn.Module):
    """A plain task model's answer: BERT's pooler + its classifier, after the last layer only."""

    def __init__(self, model: TaskModel):
        super().__init__()
        self.encoder_pooler = model.encoder.pooler
        self.classifier = model.classifier

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # the mask is not needed by BERT's CLS pooler; every exit takes it so a runner calls all alike
        return self.classifier(torch.tanh(self.encoder_pooler(hidden[:, 0])))


def exit_layers(model: TaskModel | MultiExitModel) -> list[int]:
    """0-based layers after which the model can answer."""
    layers = model.encoder.config.layers
    return list(range(layers)) if isinstance(model, MultiExitModel) else [layers - 1]


def pieces(model: TaskModel | MultiExitModel, ratios: list[int] | None = None) -> dict[str, nn.Module]:
    """Method name -> module, in the order a phone calls them; ratios default to every attached one."""
    encoder = model.encoder
    ratios = available_ratios(encoder) if ratios is None else sorted(set([1, *ratios]))
    missing = set(ratios) - set(available_ratios(encoder))
    if missing:
        raise ValueError(f"ratios {sorted(missing)} have no plugins attached "
                         f"(attached: {available_ratios(encoder)})")
    methods: dict[str, nn.Module] = {"embed": Embed(model)}
    for index, layer in enumerate(encoder.layers):
        for ratio in ratios:
            methods[f"layer_{index}_k{ratio}"] = Layer(layer, ratio)
    for index in exit_layers(model):
        head = model.exits[index] if isinstance(model, MultiExitModel) else PooledClassifier(model)
        methods[f"exit_{index}"] = head
    return {name: module.eval() for name, module in methods.items()}


def example_inputs(name: str, hidden: int, length: int = 32) -> tuple[torch.Tensor, ...]:
    ids = torch.randint(1000, 2000, (1, length))
    if name == "embed":
        return (ids,)
    states = torch.randn(1, length, hidden)
    return states, torch.ones_like(ids)  # layers and exits: (hidden, attention_mask)


def sequence_dim(max_length: int) -> Dim:
    """A multiple of 8 from 16 to max_length (one block of 8 would be specialised away)."""
    return PAD_MULTIPLE * Dim("blocks", min=MIN_LENGTH // PAD_MULTIPLE, max=max_length // PAD_MULTIPLE)


def dynamic_shapes(name: str, max_length: int) -> tuple[dict[int, Dim], ...]:
    seq = sequence_dim(max_length)
    return ({1: seq},) if name == "embed" else ({1: seq}, {1: seq})


def matmul_layer_norm(norm: nn.LayerNorm, averager: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
    """LayerNorm with its two means as products with a constant (1, d) row of 1/d: XNNPACK has no
    LayerNorm and its mean only pools 4-D tensors, so each native LayerNorm is a portable kernel
    that splits a layer into delegate islands; linear, sub, mul and rsqrt it runs in one. (The
    averager is made outside the trace, so that it is a constant weight, not a traced `full`.)"""
    centred = hidden - nn.functional.linear(hidden, averager)
    variance = nn.functional.linear(centred * centred, averager)
    return centred * torch.rsqrt(variance + norm.eps) * norm.weight + norm.bias


@contextmanager
def fused_ops(module: nn.Module, fused: bool) -> Iterator[None]:
    """Trace attention and LayerNorm as fused ops (Core ML's SDPA and layer_norm) or as plain ones
    that XNNPACK runs whole (bmm + softmax, about 1.3x faster at 256 tokens than SDPA's
    decomposition; matmul_layer_norm); then put the modules back."""
    attentions = [m for m in module.modules() if isinstance(m, SelfAttention)]
    norms = [m for m in module.modules() if isinstance(m, nn.LayerNorm)]
    before = [m.fused for m in attentions]
    for attention in attentions:
        attention.fused = fused
    if not fused:
        for norm in norms:
            averager = torch.full((1, norm.normalized_shape[-1]), 1.0 / norm.normalized_shape[-1])
            norm.forward = partial(matmul_layer_norm, norm, averager)
    try:
        yield
    finally:
        for attention, fused_before in zip(attentions, before, strict=True):
            attention.fused = fused_before
        for norm in norms:
            norm.__dict__.pop("forward", None)


def export_piece(name: str, module: nn.Module, hidden: int, max_length: int,
                 fused_attention: bool = False) -> ExportedProgram:
    """torch.export one piece at a dynamic length; unfused attention (for ExecuTorch) by default."""
    with torch.no_grad(), fused_ops(module, fused_attention):
        return export(module, example_inputs(name, hidden), dynamic_shapes=dynamic_shapes(name, max_length))
