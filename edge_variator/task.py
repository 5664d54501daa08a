"""A classifier on the encoder, LoRA task adaptation, and task checkpoints on disk.

A task checkpoint is a folder with `task.json` saying what it holds:
- kind "full": a complete Hugging Face BERT folder (config.json, model.safetensors, tokenizer)
  plus `head.safetensors`; `load_encoder` reads it like any other backbone.
- kind "lora": only `adapter.safetensors` (LoRA factors, LayerNorms, pooler, head) bound by
  sha256 to a base backbone (the pip-installed default, or a folder), so a task ships as a small
  file. Loading it onto another base raises `AdapterMismatchError`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from edge_variator.encoder import (
    Encoder,
    ModelLoadError,
    backbone_sha256,
    default_model_dir,
    hf_state_dict,
    load_encoder,
    mean_over_tokens,
)
from edge_variator.files import atomic_directory, file_sha256, write_json
from edge_variator.tokenizer import Tokenizer

DEFAULT_BASE = "default"  # how task.json names the packaged all-MiniLM-L6-v2
LORA_TARGETS = ("query", "key", "value", "output", "intermediate")


class AdapterMismatchError(ModelLoadError):
    """A LoRA adapter was trained on another backbone than the one it is being loaded onto."""


POOLINGS = ("mean", "cls")


class TaskModel(nn.Module):
    """Encoder + BERT's pooler + a linear classifier (dropout before it, as BertForSequenceClassification).

    The pooler, tanh(dense(.)), reads the mean of the last layer's real tokens ("mean", the default)
    or its CLS vector ("cls": BertForSequenceClassification, and every checkpoint written before
    the choice existed). A checkpoint's CLS vector need not tell texts apart: all-MiniLM-L6-v2 cut
    to its first 2 layers has CLS vectors with a spread of 0.001 across mr texts (0.2 after 6),
    and fully fine-tuned with the defaults it stayed at chance on CLS (48.3% dev) and reached 69.2%
    on the mean. The pooler is kept over the mean: without it, LoRA on 20ng lost 7 points."""

    def __init__(self, encoder: Encoder, labels: Sequence[str], dropout: float = 0.1, pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        self.encoder = encoder
        self.labels = list(labels)
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden, len(self.labels))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.classify(self.encoder(input_ids, attention_mask, token_type_ids)[-1], attention_mask)

    def classify(self, last: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits from the last layer's hidden states."""
        return self.classifier(self.dropout(pool(self.pooling, self.encoder.pooler, last, attention_mask)))


def pool(pooling: str, pooler: nn.Linear, last: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """What a TaskModel's classifier reads: BERT's pooler, tanh(dense(.)), over the mean of the real
    tokens or over CLS."""
    return torch.tanh(pooler(last[:, 0] if pooling == "cls" else mean_over_tokens(last, attention_mask)))


class LoRALinear(nn.Module):
    """y = W x + b + (alpha / rank) * B A x, with W and b frozen and B starting at zero."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.scaling = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.T @ self.lora_b.T) * self.scaling

    def merged(self) -> nn.Linear:
        """A plain Linear with the low-rank update folded in (what gets exported)."""
        merged = nn.Linear(self.base.in_features, self.base.out_features)
        with torch.no_grad():
            merged.weight.copy_(self.base.weight + self.scaling * self.lora_b @ self.lora_a)
            merged.bias.copy_(self.base.bias)
        return merged


def _linears_to_adapt(model: TaskModel, targets: Sequence[str]):
    for layer in model.encoder.layers:
        for parent in (layer.attention, layer.ffn):
            for name in targets:
                if isinstance(getattr(parent, name, None), (nn.Linear, LoRALinear)):
                    yield parent, name


def add_lora(model: TaskModel, rank: int = 8, alpha: float = 16.0,
             targets: Sequence[str] = LORA_TARGETS) -> None:
    """Freeze the backbone and inject LoRA; the LoRA factors, every LayerNorm, the pooler and the
    classifier train."""
    model.encoder.requires_grad_(False)
    for parent, name in _linears_to_adapt(model, targets):
        setattr(parent, name, LoRALinear(getattr(parent, name), rank, alpha))
    for module in model.encoder.modules():
        if isinstance(module, LoRALinear):
            module.lora_a.requires_grad_(True)
            module.lora_b.requires_grad_(True)
        elif isinstance(module, nn.LayerNorm):
            module.requires_grad_(True)
    model.encoder.pooler.requires_grad_(True)


def merge_lora(model: TaskModel) -> None:
    """Fold every LoRALinear back into a plain Linear, in place."""
    for parent, name in _linears_to_adapt(model, LORA_TARGETS):
        module = getattr(parent, name)
        if isinstance(module, LoRALinear):
            setattr(parent, name, module.merged())


@dataclass
class TaskInfo:
    """What task.json holds."""

    kind: str  # "full" | "lora"
    labels: list[str]
    max_length: int
    base: str | None = None  # lora: DEFAULT_BASE or a folder path
    base_sha256: str | None = None
    lora_rank: int | None = None
    lora_alpha: float | None = None
    lora_targets: list[str] | None = None
    pooling: str = "mean"  # TaskModel's; a task.json without it was trained on "cls" (TaskInfo.read)

    @classmethod
    def read(cls, path: Path) -> TaskInfo:
        """`path`/task.json; one written before pooling was a choice read BERT's pooler."""
        return cls(**{"pooling": "cls", **json.loads((path / "task.json").read_text())})


def checkpoint_sha256(path: str | Path) -> str:
    """Identity of the weights a task checkpoint runs with: what plugins and exits are bound to."""
    path = Path(path)
    if (path / "exits.json").is_file():  # a multi-exit checkpoint holds all its weights
        return file_sha256(path / "model.safetensors")
    if not (path / "task.json").is_file():  # a plain backbone folder
        return backbone_sha256(path)
    info = TaskInfo.read(path)
    if info.kind == "full":
        return backbone_sha256(path)
    adapter = file_sha256(path / "adapter.safetensors")
    return hashlib.sha256(f"{info.base_sha256}+{adapter}".encode()).hexdigest()


def resolve_base(base: str) -> Path:
    return default_model_dir() if base == DEFAULT_BASE else Path(base)


def save_task(model: TaskModel, tokenizer: Tokenizer, info: TaskInfo, out_dir: str | Path,
              extra_files: dict[str, dict] | None = None) -> None:
    """Write a task checkpoint atomically (a crash leaves the previous one, never half of one)."""
    with atomic_directory(out_dir) as tmp:
        state = model.state_dict()
        if info.kind == "full":
            save_file(hf_state_dict(model.encoder), tmp / "model.safetensors")
            write_json(tmp / "config.json", model.encoder.config.to_hf())
            tokenizer.save(tmp)
            head = {k: v for k, v in state.items() if k.startswith("classifier.")}
            save_file(head, tmp / "head.safetensors")
        else:
            trainable = {n for n, p in model.named_parameters() if p.requires_grad}
            adapter = {k: v.contiguous() for k, v in state.items() if k in trainable}
            save_file(adapter, tmp / "adapter.safetensors")
        write_json(tmp / "task.json", info.__dict__)
        for name, content in (extra_files or {}).items():
            write_json(tmp / name, content)


def check_keys(path: Path, found: set[str], expected: set[str]) -> None:
    """ModelLoadError naming the weights `path` lacks or has beyond what the model expects."""
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing or unexpected:
        raise ModelLoadError(f"{path} does not fit this model: missing {missing[:3]}"
                             f"{f' and {len(missing) - 3} more' if len(missing) > 3 else ''}, "
                             f"unexpected {unexpected[:3]}"
                             f"{f' and {len(unexpected) - 3} more' if len(unexpected) > 3 else ''}")


def load_task(path: str | Path, merge: bool = True) -> tuple[TaskModel, Tokenizer, TaskInfo]:
    """Load a task checkpoint; a LoRA one onto its base, refusing a base with another hash."""
    path = Path(path)
    if not (path / "task.json").is_file():
        raise ModelLoadError(f"{path} is not a task checkpoint: no task.json")
    info = TaskInfo.read(path)
    if info.kind == "full":
        model = TaskModel(load_encoder(path), info.labels, pooling=info.pooling)
        head = load_file(path / "head.safetensors")
        classifier = {name for name in model.state_dict() if name.startswith("classifier.")}
        check_keys(path / "head.safetensors", set(head), classifier)
        model.load_state_dict(head, strict=False)  # the encoder came with load_encoder
        return model.eval(), Tokenizer(path, info.max_length), info
    if info.kind != "lora":
        raise ModelLoadError(f"{path}/task.json: unknown kind {info.kind!r}")
    base_dir = resolve_base(info.base)
    found = backbone_sha256(base_dir)
    if found != info.base_sha256:
        raise AdapterMismatchError(
            f"{path} was trained on backbone sha256 {info.base_sha256[:12]}... ({info.base}), "
            f"but {base_dir} has sha256 {found[:12]}...: load it onto the backbone it was trained for"
        )
    model = TaskModel(load_encoder(base_dir), info.labels, pooling=info.pooling)
    add_lora(model, info.lora_rank, info.lora_alpha, info.lora_targets)
    weights = load_file(path / "adapter.safetensors")
    check_keys(path / "adapter.safetensors", set(weights),
               {name for name, parameter in model.named_parameters() if parameter.requires_grad})
    model.load_state_dict(weights, strict=False)  # the frozen base came with load_encoder
    if merge:
        merge_lora(model)
    return model.eval(), Tokenizer(base_dir, info.max_length), info


def load_hf_classifier(model_dir: str | Path, max_length: int = 128) -> tuple[TaskModel, Tokenizer]:
    """A Hugging Face `BertForSequenceClassification` folder (model.safetensors with `classifier.*`,
    config.json with id2label) as a TaskModel: what a user exports without training here."""
    model_dir = Path(model_dir)
    path = model_dir / "model.safetensors"
    weights = load_file(path) if path.is_file() else {}
    head = {key: weights[key] for key in ("classifier.weight", "classifier.bias") if key in weights}
    if len(head) != 2:
        raise ModelLoadError(f"{model_dir} has no classification head (classifier.weight/bias): export "
                             "a fine-tuned BertForSequenceClassification, or fine-tune with "
                             "`edge-variator finetune`")
    config = json.loads((model_dir / "config.json").read_text())
    count = head["classifier.weight"].shape[0]
    id2label = config.get("id2label") or {str(i): f"LABEL_{i}" for i in range(count)}
    labels = [id2label[str(i)] for i in range(len(id2label))]
    model = TaskModel(load_encoder(model_dir), labels, pooling="cls")  # BertForSequenceClassification's
    model.classifier.load_state_dict({"weight": head["classifier.weight"], "bias": head["classifier.bias"]})
    return model.eval(), Tokenizer(model_dir, max_length)
