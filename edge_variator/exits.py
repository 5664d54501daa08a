"""COST-EFF exits: a classifier after every layer, and inference that stops at the first confident one.

Exit i pools layer i's tokens -> tanh -> dropout -> Linear(d, labels), as in the paper's code. The
paper's code offers CLS or the mean of the tokens; we default to the mean, because the default
backbone (all-MiniLM-L6-v2) was trained as a mean-pooling sentence encoder and its early layers'
CLS vectors barely differ between texts: CLS exits after layers 1-3 stayed at the majority class
on trec6 while mean-pooled ones learn.
Confidence is the softmax entropy (or 1 - max probability); an exit is confident when that
uncertainty is under the threshold, and the last exit always answers. The runners
(runtime/runner.py) run one text layer by layer as a phone does; `exit_decisions` takes every
exit's logits of a batch and makes the same decisions at once, for threshold sweeps over a dev set.

A multi-exit checkpoint is a folder: model.safetensors (our parameter names; width-pruned shapes
allowed), encoder.json (the EncoderConfig), exits.json (labels, max length, what it was distilled
from, calibrated thresholds) and the tokenizer files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from edge_variator.encoder import Encoder, EncoderConfig, ModelLoadError, additive_mask, mean_over_tokens
from edge_variator.files import atomic_directory, write_json
from edge_variator.runtime.confidence import uncertainty
from edge_variator.tokenizer import Tokenizer

POOLINGS = ("mean", "cls")


class ExitHead(nn.Module):
    """pool -> tanh -> dropout -> Linear(d, labels); with `dense`, BERT's pooler (a Linear(d, d)
    before the tanh), as a task model's head: the last exit can start as the teacher's own."""

    def __init__(self, hidden: int, num_labels: int, dropout: float = 0.1, pooling: str = "mean",
                 dense: bool = False):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
        self.pooling = pooling
        self.dense = nn.Linear(hidden, hidden) if dense else None
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_labels)

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.classify(self.pool(hidden, attention_mask))

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(batch, n, d) -> (batch, d): what the exit reads of its layer."""
        return hidden[:, 0] if self.pooling == "cls" else mean_over_tokens(hidden, attention_mask)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        if self.dense is not None:
            pooled = self.dense(pooled)
        return self.classifier(self.dropout(torch.tanh(pooled)))


class _RescaleGradient(torch.autograd.Function):
    """Identity forward; multiplies the gradient by `scale` on the way back."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.scale, None


class MultiExitModel(nn.Module):
    """An encoder with an exit after every layer; forward gives every exit's logits."""

    def __init__(self, encoder: Encoder, labels: Sequence[str], dropout: float = 0.1, pooling: str = "mean",
                 last_exit_pooler: str | None = None):
        """`last_exit_pooler`: the last exit is a task model's head instead, BERT's pooler over this
        pooling (train.ExitTrainConfig.last_exit starts it from the teacher's); None: like the others."""
        super().__init__()
        self.encoder = encoder
        self.labels = list(labels)
        self.pooling = pooling
        self.last_exit_pooler = last_exit_pooler
        hidden, layers = encoder.config.hidden, encoder.config.layers
        count = len(self.labels)
        self.exits = nn.ModuleList(ExitHead(hidden, count, dropout, pooling) for _ in range(layers - 1))
        self.exits.append(ExitHead(hidden, count, dropout, last_exit_pooler or pooling,
                                   dense=last_exit_pooler is not None))
        self.rescale_gradients = True  # while training; see forward_all
        # while training, the share of the early exits' gradients that reaches the encoder (the last
        # exit's always does): below 1 they pull less on the layers the last exit reads
        self.early_exit_gradient = 1.0

    def forward_all(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor | None = None
                    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """(hidden states: embeddings + every layer, exit logits: (layers, batch, labels)).

        Training rescales gradients as the paper's code does (Li et al. 2019's gradient
        equilibrium): into layer i's output (0-based, L layers) flow 1/(L-i) of exit i's gradient
        and (L-i-1)/(L-i) of the later layers', so the early layers are not swamped by the sum of
        every later exit's loss.
        """
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        layers = len(self.encoder.layers)
        training = self.training and torch.is_grad_enabled()
        rescale = training and self.rescale_gradients
        hidden = self.encoder.embeddings(input_ids, token_type_ids)
        mask = additive_mask(attention_mask, hidden.dtype)
        states, logits = [hidden], []
        for index, (layer, head) in enumerate(zip(self.encoder.layers, self.exits, strict=True)):
            hidden = layer(hidden, mask)
            if rescale:
                hidden = _RescaleGradient.apply(hidden, 1.0 / (layers - index))
            states.append(hidden)
            read = hidden
            if training and index < layers - 1 and self.early_exit_gradient != 1.0:
                read = (hidden.detach() if self.early_exit_gradient == 0
                        else _RescaleGradient.apply(hidden, self.early_exit_gradient))
            logits.append(head(read, attention_mask))
            if rescale and index < layers - 1:
                hidden = _RescaleGradient.apply(hidden, float(layers - index - 1))
        return tuple(states), torch.stack(logits)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_all(input_ids, attention_mask, token_type_ids)[1]


def exit_decisions(all_logits: torch.Tensor, threshold: float, criterion: str = "entropy"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(layers, batch, labels) logits -> (exit layer 1..L, predicted label) per example.

    The first exit whose uncertainty is under `threshold`; the last exit when none is.
    """
    confident = uncertainty(all_logits, criterion) < threshold  # (layers, batch)
    confident[-1] = True
    exit_index = confident.int().argmax(0)  # the first True
    predictions = all_logits.argmax(-1).gather(0, exit_index[None])[0]
    return exit_index + 1, predictions


CONFIDENCE = 0.9  # how sure calibration is that the share of changed answers stays within the target


def max_disagreements(examples: int, max_drop: float, confidence: float = CONFIDENCE) -> int:
    """The most changed answers among `examples` whose one-sided Clopper-Pearson upper bound at
    `confidence` stays within `max_drop`; -1 when not even zero does (too few examples)."""
    alpha, allowed, cdf = 1 - confidence, -1, 0.0
    if max_drop <= 0:
        return -1
    if max_drop >= 1:
        return examples
    log_p, log_q, log_n = math.log(max_drop), math.log1p(-max_drop), math.lgamma(examples + 1)
    for changed in range(examples + 1):
        others = examples - changed
        cdf += math.exp(log_n - math.lgamma(changed + 1) - math.lgamma(others + 1)
                        + changed * log_p + others * log_q)
        if cdf > alpha:  # P(X <= changed) at a true rate of max_drop: the bound is under it while <= alpha
            break
        allowed = changed
    return allowed


def calibrate_threshold(all_logits: torch.Tensor, max_drop: float, criterion: str = "entropy",
                        confidence: float = CONFIDENCE) -> float:
    """The most aggressive threshold at which early exit changes the last exit's answer on at most
    `max_drop` of texts (a fraction: 0.01 = one in a hundred), with `confidence`.

    Why changed answers and not accuracy: an early answer that agrees with the last exit is right
    or wrong with it, so the accuracy lost is at most the share that changed, on any texts; and that
    share, which needs no labels, carries from dev to test where the accuracy difference does not
    (mr's quarter model at the old drop_1: 10.3% changed on dev and on test, while the accuracy
    lost was 1.0 points on dev and 4.3 on test). Thresholds are tried from the most cautious up and
    the first that fails ends the search (fixed-sequence testing, as in Learn-then-Test and CALM),
    so trying many of them does not weaken the bound. 0 means never exit early.

    Each candidate lies halfway between two consecutive uncertainties on the set, not just above
    one: no text then sits within rounding of it, so a runtime whose numerics differ by 1e-7 (the
    ExecuTorch program against PyTorch) makes the same decisions on the texts it was calibrated on.
    """
    allowed = max_disagreements(all_logits.shape[1], max_drop, confidence)
    if allowed < 0:
        return 0.0
    last = all_logits[-1].argmax(-1)
    scores = uncertainty(all_logits[:-1], criterion).flatten().unique()  # sorted: cautious first
    above = torch.cat([scores[1:], scores[-1:] + 1.0])  # the next score up (past the last: 1 more)
    best = 0.0
    for threshold in ((scores + above) / 2).tolist():  # each fires for its score and the ones below
        _, predictions = exit_decisions(all_logits, threshold, criterion)
        if (predictions != last).sum().item() > allowed:
            break
        best = threshold
    return best


@dataclass
class ExitsInfo:
    """What exits.json holds."""

    labels: list[str]
    max_length: int
    criterion: str = "entropy"
    pooling: str = "mean"  # what each exit reads: the mean of the tokens or CLS
    last_exit_pooler: str | None = None  # the last exit is a task model's head: BERT's pooler over this
    distilled_from: str = ""  # the checkpoint (and its sha256) this model learnt from
    distilled_from_sha256: str = ""
    thresholds: dict[str, float] = field(default_factory=dict)  # "drop_1.0" -> threshold


# No exit reads the encoder's own pooler (a task model's head; the last exit has its own copy when it
# starts as the teacher's): checkpoints leave it out, and loading skips it where an older one has it.
UNUSED = "encoder.pooler."


def save_multi_exit(model: MultiExitModel, tokenizer: Tokenizer, info: ExitsInfo, out_dir: str | Path,
                    dtype: torch.dtype = torch.float32, extra_files: dict[str, dict] | None = None) -> None:
    """Write a multi-exit checkpoint atomically; fp16 halves the file (the shipped default). What its
    last exit is comes from the model, whatever `info` says, so the checkpoint always loads."""
    info = replace(info, last_exit_pooler=model.last_exit_pooler)
    with atomic_directory(out_dir) as tmp:
        state = {name: tensor.detach().to(dtype).contiguous() for name, tensor in model.state_dict().items()
                 if not name.startswith(UNUSED)}
        save_file(state, tmp / "model.safetensors")
        write_json(tmp / "encoder.json", model.encoder.config.to_dict())
        write_json(tmp / "exits.json", asdict(info))
        tokenizer.save(tmp)
        for name, content in (extra_files or {}).items():
            write_json(tmp / name, content)


def to_fp16(checkpoint: str | Path) -> None:
    """Re-save a multi-exit checkpoint (and its metrics.json) with fp16 weights, half the file, once:
    what ships, and what its plugins are then bound to."""
    checkpoint = Path(checkpoint)
    with safe_open(checkpoint / "model.safetensors", "pt") as weights:  # one tensor, not the whole file
        if weights.get_tensor(next(iter(weights.keys()))).dtype == torch.float16:
            return
    model, tokenizer, info = load_multi_exit(checkpoint)
    metrics = json.loads((checkpoint / "metrics.json").read_text())
    save_multi_exit(model, tokenizer, info, checkpoint, dtype=torch.float16,
                    extra_files={"metrics.json": metrics})


def save_thresholds(path: str | Path, thresholds: dict[str, float]) -> None:
    """Rewrite exits.json with calibrated thresholds (atomically; the weights are untouched)."""
    info = ExitsInfo(**json.loads((Path(path) / "exits.json").read_text()))
    info.thresholds = thresholds
    write_json(Path(path) / "exits.json", asdict(info))


def is_multi_exit(path: str | Path) -> bool:
    return (Path(path) / "exits.json").is_file()


def load_multi_exit(path: str | Path) -> tuple[MultiExitModel, Tokenizer, ExitsInfo]:
    path = Path(path)
    if not is_multi_exit(path):
        raise ModelLoadError(f"{path} is not a multi-exit checkpoint: no exits.json")
    info = ExitsInfo(**json.loads((path / "exits.json").read_text()))
    config = EncoderConfig(**json.loads((path / "encoder.json").read_text()))
    model = MultiExitModel(Encoder(config), info.labels, pooling=info.pooling,
                           last_exit_pooler=info.last_exit_pooler)
    weights = {name: tensor for name, tensor in load_file(path / "model.safetensors").items()
               if not name.startswith(UNUSED)}
    expected = {name: tensor for name, tensor in model.state_dict().items() if not name.startswith(UNUSED)}
    for name, tensor in weights.items():
        if name not in expected or expected[name].shape != tensor.shape:
            raise ModelLoadError(f"{path}/model.safetensors: {name} {tuple(tensor.shape)} does not fit "
                                 "the shapes encoder.json describes")
    missing = set(expected) - set(weights)
    if missing:
        raise ModelLoadError(f"{path}/model.safetensors lacks {sorted(missing)[:3]}")
    model.load_state_dict({name: tensor.float() for name, tensor in weights.items()}, strict=False)
    return model.eval(), Tokenizer(path, info.max_length), info

