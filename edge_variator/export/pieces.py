"""The pieces a bundle is made of, as modules `torch.export` traces one by one.

A phone runs `embed`, then `layer_{i}_k{k}` layer after layer at the ratio its policy chose, and
`exit_{i}` after a layer to decide whether to stop (layers and exits take the hidden states and the
attention mask; embed takes the token ids). Every piece takes a sequence length that is a
multiple of 8 between 16 and the maximum (the tokenizer pads to that), declared dynamic.

For ExecuTorch the pieces are rebuilt from the same weights as plainer modules that XNNPACK runs
whole (bmm attention, LayerNorm as matmuls), as Apple's ml-ane-transformers rewrites a Hugging Face
model for the Neural Engine; nothing patches the live model. tests/test_export.py holds them equal.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.export import Dim, ExportedProgram, export

from edge_variator.encoder import Embeddings, EncoderLayer, SelfAttention, additive_mask
from edge_variator.exits import MultiExitModel
from edge_variator.plugins import available_ratios
from edge_variator.task import TaskModel, pool
from edge_variator.tokenizer import MIN_LENGTH, PAD_MULTIPLE


class Embed(nn.Module):
    """Token ids -> the first hidden states (no token types: one text per call)."""

    def __init__(self, embeddings: Embeddings):
        super().__init__()
        self.embeddings = embeddings

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


class MatmulLayerNorm(nn.Module):
    """LayerNorm with its two means as products with a constant (1, d) row of 1/d: XNNPACK has no
    LayerNorm and its mean only pools 4-D tensors, so each native LayerNorm is a portable kernel
    that splits a layer into delegate islands; linear, sub, mul and rsqrt it runs in one."""

    def __init__(self, norm: nn.LayerNorm):
        super().__init__()
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps
        width = norm.normalized_shape[-1]
        self.averager = torch.full((1, width), 1.0 / width)  # a plain tensor: a constant of the trace

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        centred = hidden - nn.functional.linear(hidden, self.averager)
        variance = nn.functional.linear(centred * centred, self.averager)
        return centred * torch.rsqrt(variance + self.eps) * self.weight + self.bias


class BmmAttention(nn.Module):
    """SelfAttention's weights as bmm, softmax, bmm over (batch x heads, n, head_dim): XNNPACK runs
    that whole, about 1.3x faster at 256 tokens than SDPA, which decomposes with a guard for fully
    masked rows (eq/any/where over heads x n x n) left to the portable kernels. A 4-D matmul would
    trace to expand + reshape with two symbolic sizes, which XNNPACK leaves out too."""

    def __init__(self, attention: SelfAttention):
        super().__init__()
        self.query, self.key, self.value = attention.query, attention.key, attention.value
        self.output = attention.output
        self.heads, self.head_dim = attention.heads, attention.head_dim

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        batch, seq, _ = hidden.shape

        def split_heads(x: torch.Tensor) -> torch.Tensor:
            return (x.view(batch, seq, self.heads, self.head_dim).transpose(1, 2)
                    .reshape(batch * self.heads, seq, self.head_dim))

        query = split_heads(self.query(hidden)) * self.head_dim ** -0.5
        mask = additive_mask.expand(batch, self.heads, 1, seq).reshape(batch * self.heads, 1, seq)
        scores = torch.bmm(query, split_heads(self.key(hidden)).transpose(1, 2)) + mask
        context = torch.bmm(torch.softmax(scores, dim=-1), split_heads(self.value(hidden)))
        context = context.view(batch, self.heads, seq, self.head_dim).transpose(1, 2)
        return self.output(context.reshape(batch, seq, self.heads * self.head_dim))


class XnnpackEmbed(nn.Module):
    """Embed, rebuilt from the same weights with MatmulLayerNorm."""

    def __init__(self, embeddings: Embeddings):
        super().__init__()
        self.embeddings = embeddings  # its summed(): words, positions and token type 0
        self.norm = MatmulLayerNorm(embeddings.LayerNorm)
        self.projection = embeddings.projection  # ELECTRA's, up to the layers' width

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.norm(self.embeddings.summed(input_ids, None))
        return hidden if self.projection is None else self.projection(hidden)


class XnnpackLayer(nn.Module):
    """Layer, rebuilt from the same weights for XNNPACK: BmmAttention and MatmulLayerNorms around the
    layer's own FFN (plain or plugged; no norm inside), in EncoderLayer's order (eval: no dropout)."""

    def __init__(self, layer: EncoderLayer, ratio: int):
        super().__init__()
        self.attention = BmmAttention(layer.attention)
        self.attention_norm = MatmulLayerNorm(layer.attention_norm)
        self.ffn = layer.ffn
        self.ffn_norm = MatmulLayerNorm(layer.ffn_norm)
        self.ratio = ratio

    def attention_half(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention + residual + LayerNorm: what no ratio changes (`mask` is additive)."""
        return self.attention_norm(hidden + self.attention(hidden, mask))

    def ffn_half(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The FFN, plugged at k > 1, + residual + LayerNorm."""
        return self.ffn_norm(hidden + self.ffn(hidden, mask, self.ratio))

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = additive_mask(attention_mask, hidden.dtype)
        return self.ffn_half(self.attention_half(hidden, mask), mask)


class PooledClassifier(nn.Module):
    """A plain task model's answer: BERT's pooler over the mean of the tokens or over CLS, then its
    classifier, after the last layer only."""

    def __init__(self, model: TaskModel):
        super().__init__()
        self.pooling = model.pooling
        self.encoder_pooler = model.encoder.pooler
        self.classifier = model.classifier

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # pooling on CLS ignores the mask; every exit takes it so a runner calls all alike
        return self.classifier(pool(self.pooling, self.encoder_pooler, hidden, attention_mask))


def exit_layers(model: TaskModel | MultiExitModel) -> list[int]:
    """0-based layers after which the model can answer."""
    layers = model.encoder.config.layers
    return list(range(layers)) if isinstance(model, MultiExitModel) else [layers - 1]


def pieces(model: TaskModel | MultiExitModel, ratios: list[int] | None = None,
           xnnpack: bool = False) -> dict[str, nn.Module]:
    """Method name -> module, in the order a phone calls them; ratios default to every attached one.
    The model's own modules (the reference, and what Core ML converts: its fused attention and
    layer_norm ops), or with `xnnpack` the ones rebuilt from the same weights for XNNPACK."""
    encoder = model.encoder
    ratios = available_ratios(encoder) if ratios is None else sorted(set([1, *ratios]))
    missing = set(ratios) - set(available_ratios(encoder))
    if missing:
        raise ValueError(f"ratios {sorted(missing)} have no plugins attached "
                         f"(attached: {available_ratios(encoder)})")
    embed, layer_at = (XnnpackEmbed, XnnpackLayer) if xnnpack else (Embed, Layer)
    methods: dict[str, nn.Module] = {"embed": embed(encoder.embeddings)}
    for index, layer in enumerate(encoder.layers):
        for ratio in ratios:
            methods[f"layer_{index}_k{ratio}"] = layer_at(layer, ratio)
    for index in exit_layers(model):
        head = model.exits[index] if isinstance(model, MultiExitModel) else PooledClassifier(model)
        methods[f"exit_{index}"] = head
    return {name: module.eval() for name, module in methods.items()}


def example_inputs(name: str, hidden: int, length: int = 32) -> tuple[torch.Tensor, ...]:
    ids = torch.randint(1, 100, (1, length))  # ids every vocabulary has
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


def export_piece(name: str, module: nn.Module, hidden: int, max_length: int) -> ExportedProgram:
    """torch.export one piece at a dynamic length."""
    with torch.no_grad():
        return export(module, example_inputs(name, hidden), dynamic_shapes=dynamic_shapes(name, max_length))
