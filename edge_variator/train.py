"""Training: task fine-tuning (the teacher every later stage distils from) and the distillation
of compression plugins into a frozen model.

CPU-friendly (dynamic padding, length-bucketed batches, seeded) and unchanged under `torchrun`
(DDP over gloo on CPU or nccl on GPUs): each rank takes every world-size-th batch, rank 0
evaluates and saves. Full fine-tuning or LoRA (`method="lora"`: a small file on the base weights).
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from edge_variator.cost import parameter_count
from edge_variator.data import Example, TaskData
from edge_variator.encoder import additive_mask, backbone_sha256, default_model_dir, load_encoder
from edge_variator.evaluation import compare_quality, evaluate, evaluate_exits, exit_inputs, logits_of
from edge_variator.exits import ExitsInfo, MultiExitModel, is_multi_exit, load_multi_exit, save_multi_exit
from edge_variator.files import write_bytes, write_json
from edge_variator.plugins import PluginMismatchError, PluginSet, attach, set_ratio
from edge_variator.slender import Width, factorize_embeddings, prune, taylor_importance
from edge_variator.task import (
    DEFAULT_BASE,
    LORA_TARGETS,
    TaskInfo,
    TaskModel,
    add_lora,
    checkpoint_sha256,
    load_task,
    save_task,
)
from edge_variator.teacher_cache import TeacherCache
from edge_variator.tokenizer import Batch, Tokenizer, padded_length


@dataclass
class LoopConfig:
    """What every training stage shares: the schedule and the data it walks through."""

    epochs: int = 3
    batch_size: int = 32
    lr: float | None = None  # None: the stage's default
    weight_decay: float = 0.01
    decay_biases_and_norms: bool = True  # False: AdamW decays matrices only (nanoGPT's no-decay group)
    warmup_fraction: float = 0.06
    max_length: int = 128
    seed: int = 0
    max_train: int | None = None  # train on a seeded subset (long-text sets on a CPU)
    device: str = "cpu"  # "cuda" where a GPU is lent; torchrun picks each rank's own
    checkpoint_seconds: float = 180.0  # how often a resumable stage checkpoints mid-epoch
    compile: bool = False  # torch.compile the model a fine-tuning step runs (bench/train_cost.py measures it)


@dataclass
class FinetuneConfig(LoopConfig):
    method: str = "full"  # "full" | "lora"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    pooling: str = "mean"  # what BERT's pooler reads (task.TaskModel): the tokens' mean, or "cls"
    # what the code did before a setting existed, where that is not its default (resuming old checkpoints)
    before_they_existed: ClassVar[dict] = {"pooling": "cls"}
    strict: bool = False  # an epoch that learns nothing (dev no better than the majority class) raises


class LearningStalledWarning(UserWarning):
    """An epoch ended with dev accuracy no better than always answering the majority class."""


class LearningStalledError(RuntimeError):
    """The same, under FinetuneConfig.strict (--strict)."""


def check_learning(stage: str, epoch: int, dev_accuracy: float, data: TaskData, lr: float,
                   config: FinetuneConfig) -> None:
    """Say loudly when a model answers no better than a constant: a learning rate too low (or too
    high) for this checkpoint is the usual cause, and nothing else would flag it."""
    counts = Counter(e.label for e in data.train)
    majority = counts.most_common(1)[0][0]
    constant = sum(e.label == majority for e in data.dev) / max(len(data.dev), 1)
    if dev_accuracy > constant + 1e-9:
        return
    pooling = "" if config.pooling == "mean" else ", or --pooling mean (CLS vectors may not tell texts apart)"
    message = (f"{stage}: dev accuracy after epoch {epoch} is {dev_accuracy:.1%}, no better than always "
               f"answering {data.labels[majority]!r} ({constant:.1%}): the model has learnt nothing. Try "
               f"another --lr (this run: {lr:g}), more --epochs, --method lora{pooling}")
    if config.strict:
        raise LearningStalledError(message)
    warnings.warn(message, LearningStalledWarning, stacklevel=2)


def length_bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort by length within pools of 50 batches, cut batches, shuffle their order.

    Batches then hold texts of similar length (little padding) yet every epoch differs.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    pool = batch_size * 50
    batches = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start:start + pool], key=lengths.__getitem__)
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _distributed(config: LoopConfig | None = None) -> tuple[int, int, torch.device]:
    """(rank, world size, device); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, torch.device(config.device if config is not None else "cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return dist.get_rank(), world, torch.device("cuda", local_rank)
    return dist.get_rank(), world, torch.device("cpu")


def _average_gradients(parameters: list[torch.nn.Parameter], world: int) -> None:
    """What DDP does, for stages whose loss does not go through one module's forward."""
    for parameter in parameters:
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad)
            parameter.grad /= world


def subsample(examples: list[Example], config: LoopConfig) -> list[Example]:
    if config.max_train is not None and config.max_train < len(examples):
        return random.Random(config.seed).sample(examples, config.max_train)
    return list(examples)


def optimizer_groups(parameters: list[torch.nn.Parameter], config: LoopConfig, lr: float,
                     fast_parameters: Sequence[torch.nn.Parameter] = (), fast_lr: float | None = None
                     ) -> list[dict]:
    """AdamW's parameter groups: freshly initialised heads (`fast_parameters`) at their own, higher
    rate; with decay_biases_and_norms off, the vectors (biases, LayerNorm gains) without decay."""
    faster = {id(p) for p in fast_parameters}
    groups = []
    for rate, chosen in ((lr, [p for p in parameters if id(p) not in faster]),
                         (fast_lr, [p for p in parameters if id(p) in faster])):
        exempt = set() if config.decay_biases_and_norms else {id(p) for p in chosen if p.dim() < 2}
        for decay, members in ((config.weight_decay, [p for p in chosen if id(p) not in exempt]),
                               (0.0, [p for p in chosen if id(p) in exempt])):
            if members:
                groups.append({"params": members, "lr": rate, "weight_decay": decay})
    return groups


def train_loop(
    model: torch.nn.Module,
    train: list[Example],
    tokenizer: Tokenizer,
    config: LoopConfig,
    lr: float,
    batch_loss: Callable[[Batch, torch.Tensor, list[int]], torch.Tensor],
    end_of_epoch: Callable[[int, list[float]], None],
    progress: bool = True,
    train_mode: bool = True,
    fast_parameters: list[torch.nn.Parameter] | None = None,
    fast_lr: float | None = None,
    resume: Path | None = None,
    history: list[dict] | None = None,
    stage: str = "",
) -> None:
    """AdamW with linear warmup and decay over length-bucketed batches of `train`.

    `batch_loss(batch, labels, indices)` gives the loss of one batch (already on the model's
    device; `indices` are the batch's positions in `train`, for precomputed targets);
    `end_of_epoch(epoch, losses)` runs on rank 0 after each epoch (evaluate, keep the best).
    Under torchrun each rank takes every world-th batch; gradients are averaged by DDP when the
    caller wrapped `model` in it, else here after each backward.

    With `resume`, the loop checkpoints there (trainable weights, optimizer, schedule, RNG, the
    caller's `history`, which it refills in place) every `config.checkpoint_seconds` and after
    every epoch, and a rerun of the same call continues from it to the same result; a finished
    loop's checkpoint restores its final weights and trains nothing more.
    """
    rank, world, device = _distributed(config)
    has_pairs = bool(train[0].text_pair)
    lengths = tokenizer.token_lengths([e.text for e in train],
                                      [e.text_pair for e in train] if has_pairs else None)
    # every rank must take the same number of steps, or DDP's gradient all-reduce hangs
    steps_per_epoch = len(length_bucketed_batches(lengths, config.batch_size, random.Random(0))) // world
    total_steps = steps_per_epoch * config.epochs
    warmup = max(1, int(config.warmup_fraction * total_steps))
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(optimizer_groups(parameters, config, lr, fast_parameters or [], fast_lr))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup,
                                    max(0.0, (total_steps - step) / max(1, total_steps - warmup))))
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    start_epoch, start_step, resumed_losses = 0, 0, []
    fingerprint = {k: v for k, v in asdict(config).items() if k not in ("device", "checkpoint_seconds")}
    state = load_resume_state(resume, fingerprint, {**asdict(type(config)()),
                                                    **getattr(config, "before_they_existed", {})})
    if state is not None:
        with torch.no_grad():
            for name, tensor in state["weights"].items():
                trainable[name].copy_(tensor)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        torch.set_rng_state(state["rng"])
        if history is not None:
            history[:] = state["history"]
        start_epoch, start_step, resumed_losses = state["epoch"], state["step"], state["losses"]

    def checkpoint(epoch: int, step: int, losses: list[float]) -> None:
        if resume is not None and rank == 0:
            save_resume_state(resume, {
                "config": fingerprint, "epoch": epoch, "step": step, "losses": losses,
                "history": history if history is not None else [],
                "weights": {name: p.detach().cpu() for name, p in trainable.items()},
                "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "rng": torch.get_rng_state()})

    last_checkpoint = time.monotonic()
    # one bar for the whole stage: its steps over every epoch, so the ETA is the stage's
    done = start_epoch * steps_per_epoch + start_step
    bar = tqdm(desc=stage or "training", total=total_steps, initial=done, disable=not progress or rank > 0,
               unit="step")
    for epoch in range(start_epoch, config.epochs):
        model.train(train_mode)
        batches = length_bucketed_batches(lengths, config.batch_size, random.Random(config.seed + epoch))
        mine = batches[rank::world][:steps_per_epoch]
        skip = start_step if epoch == start_epoch else 0
        losses = list(resumed_losses) if epoch == start_epoch else []
        for step, indices in enumerate(mine[skip:], start=skip):
            batch = tokenizer([train[i].text for i in indices],
                              [train[i].text_pair for i in indices] if has_pairs else None).to(device)
            labels = torch.tensor([train[i].label for i in indices], device=device)
            loss = batch_loss(batch, labels, indices)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if world > 1 and not isinstance(model, DistributedDataParallel):
                _average_gradients(parameters, world)
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            schedule.step()
            losses.append(round(loss.item(), 5))
            bar.update()
            recent = losses[-20:]
            bar.set_postfix(epoch=f"{epoch + 1}/{config.epochs}", loss=f"{sum(recent) / len(recent):.4f}")
            if time.monotonic() - last_checkpoint >= config.checkpoint_seconds:
                checkpoint(epoch, step + 1, losses)
                last_checkpoint = time.monotonic()
        if rank == 0:
            end_of_epoch(epoch, losses)
        checkpoint(epoch + 1, 0, [])
        if world > 1:
            dist.barrier()
    bar.close()


class ResumeError(RuntimeError):
    """A stage's checkpoint was written by a run with other settings."""


def resume_dir(out_dir: str | Path) -> Path:
    """Where the stages writing `out_dir` keep their checkpoints and caches until it is finished."""
    out_dir = Path(out_dir)
    return out_dir.with_name(out_dir.name + ".resume")


def load_resume_state(path: Path | None, fingerprint: dict, defaults: dict | None = None) -> dict | None:
    """The checkpoint at `path` if it was written with these settings. A setting added to the code
    after it was written matches at its default (`defaults`), which is what that older code did."""
    if path is None or not Path(path).is_file():
        return None
    state = torch.load(path, weights_only=False)
    state["config"] = {**{k: v for k, v in (defaults or {}).items() if k in fingerprint}, **state["config"]}
    if state["config"] != fingerprint:
        changed = sorted(k for k in fingerprint if state["config"].get(k) != fingerprint[k])
        raise ResumeError(f"{path} was written with other settings ({', '.join(changed)}): rerun with "
                          f"the same settings to continue it, or delete {Path(path).parent} to start over")
    return state


def save_resume_state(path: Path, state: dict) -> None:
    """Atomically: a kill while saving leaves the previous checkpoint."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(path, buffer.getvalue())


def finetune(data: TaskData, out_dir: str | Path, config: FinetuneConfig,
             model_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Train on data.train, keep the best dev accuracy checkpoint in out_dir; returns metrics."""
    rank, world, device = _distributed(config)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    base = DEFAULT_BASE if model_dir is None else str(model_dir)
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    tokenizer = Tokenizer(model_dir, config.max_length)
    model = TaskModel(load_encoder(model_dir), data.labels, pooling=config.pooling)
    info = TaskInfo(kind=config.method, labels=data.labels, max_length=config.max_length,
                    pooling=config.pooling)
    if config.method == "lora":
        add_lora(model, config.lora_rank, config.lora_alpha)
        info.base, info.base_sha256 = base, backbone_sha256(model_dir)
        info.lora_rank, info.lora_alpha = config.lora_rank, config.lora_alpha
        info.lora_targets = list(LORA_TARGETS)
    elif config.method != "full":
        raise ValueError(f"method must be 'full' or 'lora', not {config.method!r}")
    model.to(device)
    trained = model if world == 1 else DistributedDataParallel(model)
    if config.compile:  # dynamic: length-bucketed batches change the sequence length every step
        trained = torch.compile(trained, dynamic=True)
    train = subsample(data.train, config)

    def batch_loss(batch: Batch, labels: torch.Tensor, indices: list[int]) -> torch.Tensor:
        logits = trained(batch.input_ids, batch.attention_mask, batch.token_type_ids)
        return torch.nn.functional.cross_entropy(logits, labels)

    history: list[dict] = []

    lr = config.lr or (5e-5 if config.method == "full" else 1e-3)

    def end_of_epoch(epoch: int, losses: list[float]) -> None:
        dev = evaluate(model, tokenizer, data.dev)
        history.append({"epoch": epoch + 1, "train_loss": sum(losses) / len(losses),
                        "losses": losses, **{f"dev_{k}": v for k, v in dev.items()}})
        if all(dev["accuracy"] > h["dev_accuracy"] for h in history[:-1]):  # ties keep the first
            save_task(model, tokenizer, info, out_dir)
        if rank == 0:
            check_learning(f"fine-tune {data.name}", epoch + 1, dev["accuracy"], data, lr, config)

    started = time.perf_counter()
    train_loop(trained, train, tokenizer, config, lr, batch_loss, end_of_epoch, progress,
               resume=resume_dir(out_dir) / "finetune.pt", history=history, stage=f"fine-tune {data.name}")
    if rank != 0:
        return {}
    best = max(history, key=lambda h: h["dev_accuracy"])  # the first of equals, as saved
    best_model, _, _ = load_task(out_dir)
    metrics = {
        "task": data.name,
        "config": asdict(config),
        "lr": lr,  # the one used (config.lr None: the method's default)
        "train_examples": len(train),
        "test_examples": len(data.test),
        "train_seconds": round(time.perf_counter() - started, 1),
        "best_epoch": best["epoch"],
        "dev": {k[4:]: v for k, v in best.items() if k.startswith("dev_")},
        "test": evaluate(best_model, tokenizer, data.test),
        "history": history,
        "trainable_parameters": parameter_count(model, trainable_only=True),
    }
    write_json(Path(out_dir) / "metrics.json", metrics)
    shutil.rmtree(resume_dir(out_dir), ignore_errors=True)
    return metrics


@dataclass
class PluginTrainConfig(LoopConfig):
    hidden_loss: str = "all"  # distil every layer's output ("all") or only the last ("last")
    mse_weight: float = 1.0
    ce_weight: float = 1.0  # 0 for the pre-training stage on unlabelled text
    # KL to the uncompressed model's own predictions at `temperature` (scaled by T^2), which needs
    # no labels and carries the teacher's confidence on every class, not only the right one
    kl_weight: float = 0.0
    temperature: float = 2.0
    bottleneck: int = 64
    layers: list[int] | None = None  # None: every layer gets a plugin
    init_from: str | None = None  # a plugin-set folder to start from (pre-trained plugins)
    # Before the end-to-end epochs: fit each layer's plugin alone, layer after layer, to that layer's
    # teacher output (fit_plugins_layerwise). 0 skips it; `epochs` may then be 0 or 1.
    layerwise_epochs: int = 0
    cache_teacher: bool = True  # the teacher's hidden states computed once (teacher_cache.py), not per step
    cache_dir: str | None = None  # share one cache between ratios; default: beside out_dir
    cache_dtype: str = "float16"


def masked_mse(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over real tokens only (padding outputs are don't-care)."""
    per_token = ((student - teacher) ** 2).mean(-1)
    mask = attention_mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum()


def plugin_distillation_loss(model: TaskModel | MultiExitModel, ratio: int, batch: Batch,
                             config: PluginTrainConfig, labels: torch.Tensor | None = None,
                             teacher: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """Hidden-state MSE against the same model with plugins bypassed (`teacher`: its states,
    cached; None: computed here), plus the task loss."""
    inputs = (batch.input_ids, batch.attention_mask, batch.token_type_ids)
    if teacher is None:
        with torch.no_grad():
            set_ratio(model.encoder, 1)
            teacher = model.encoder(*inputs)
    set_ratio(model.encoder, ratio)
    student = model.encoder(*inputs)
    chosen = range(1, len(student)) if config.hidden_loss == "all" else [len(student) - 1]
    mse = sum(masked_mse(student[i], teacher[i], batch.attention_mask) for i in chosen) / len(chosen)
    loss = config.mse_weight * mse
    if (config.ce_weight and labels is not None) or config.kl_weight:
        logits = _all_logits(model, student, batch.attention_mask)
        if config.ce_weight and labels is not None:  # every exit must stay right under compression
            ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.repeat(len(logits)))
            loss = loss + config.ce_weight * ce
        if config.kl_weight:
            with torch.no_grad():
                targets = _all_logits(model, teacher, batch.attention_mask)
            loss = loss + config.kl_weight * soft_distillation_loss(logits, targets, config.temperature)
    return loss


def _all_logits(model: TaskModel | MultiExitModel, states: Sequence[torch.Tensor],
                attention_mask: torch.Tensor) -> torch.Tensor:
    """(exits, batch, labels): every exit's logits for a multi-exit model, the one head's else."""
    if isinstance(model, MultiExitModel):
        return torch.stack([head(state, attention_mask)
                            for head, state in zip(model.exits, states[1:], strict=True)])
    return model.classify(states[-1], attention_mask).unsqueeze(0)


@torch.no_grad()
def dev_distillation_loss(model: TaskModel, tokenizer: Tokenizer, ratio: int, examples: list[Example],
                          config: PluginTrainConfig, batch_size: int = 64) -> float:
    losses, device = [], next(model.parameters()).device
    for start in range(0, len(examples), batch_size):
        batch = tokenizer([e.text for e in examples[start:start + batch_size]]).to(device)
        losses.append(plugin_distillation_loss(model, ratio, batch, config).item())
    return sum(losses) / len(losses)


def cache_backbone_states(model: TaskModel | MultiExitModel, tokenizer: Tokenizer, train: list[Example],
                          folder: Path, key: str, dtype: str = "float16") -> TeacherCache:
    """Every hidden state (embeddings + each layer) of the model at ratio 1: the plugins' teacher."""
    def states_of(batch: Batch) -> tuple[torch.Tensor, ...]:
        set_ratio(model.encoder, 1)
        return model.encoder(batch.input_ids, batch.attention_mask, batch.token_type_ids)

    model.eval()
    return TeacherCache.build(folder, states_of, tokenizer, train, key, dtype,
                              device=next(model.parameters()).device)


def _padded(flat: torch.Tensor, cache: TeacherCache, indices: Sequence[int], seq_len: int) -> torch.Tensor:
    """(batch, seq_len, hidden) from per-token rows laid out as the cache lays out its examples."""
    out = torch.zeros(len(indices), seq_len, flat.shape[-1])
    for row, index in enumerate(indices):
        start, length = int(cache.offsets[index]), int(cache.lengths[index])
        out[row, :length] = flat[start:start + length]
    return out


@torch.no_grad()
def _map_tokens(block: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], flat: torch.Tensor,
                cache: TeacherCache, target_state: int | None = None, batch_size: int = 64,
                device: torch.device | str = "cpu") -> tuple[torch.Tensor, float]:
    """Run `block(hidden, additive_mask)` over every example's rows of `flat`; the new rows, and their
    masked MSE against the cache's state `target_state` (0.0 without one)."""
    out = torch.empty_like(flat)
    order = sorted(range(len(cache.lengths)), key=lambda i: cache.lengths[i])
    squared, tokens = 0.0, 0
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        seq = padded_length(int(cache.lengths[chunk[-1]]))
        mask = torch.zeros(len(chunk), seq)
        for row, index in enumerate(chunk):
            mask[row, :cache.lengths[index]] = 1
        hidden = _padded(flat, cache, chunk, seq).to(device)
        result = block(hidden, additive_mask(mask, flat.dtype).to(device)).cpu()
        if target_state is not None:
            target = cache.gather(chunk, seq, [target_state])[0]
            squared += (((result - target) ** 2).mean(-1) * mask).sum().item()
            tokens += int(mask.sum())
        for row, index in enumerate(chunk):
            start_row, length = int(cache.offsets[index]), int(cache.lengths[index])
            out[start_row:start_row + length] = result[row, :length]
    return out, squared / max(tokens, 1)


def fit_plugins_layerwise(model: TaskModel | MultiExitModel, plugin_set: PluginSet, ratio: int,
                          cache: TeacherCache, train: list[Example], tokenizer: Tokenizer,
                          config: PluginTrainConfig, resume: Path | None = None,
                          progress: bool = True) -> list[dict]:
    """Fit each layer's plugin to reproduce the teacher's output of that layer from the compressed
    model's own input to it, layer after layer, as post-training reconstruction methods do: each
    plugin sees the errors of those before it, and no backward pass runs through another layer.

    The backbone is frozen, so a layer's attention output is fixed given its input: it is computed
    once per layer and the plugin trains on the FFN sub-block alone. Returns, per plugged layer,
    the masked MSE to the teacher before and after fitting.
    """
    encoder = model.encoder
    device = next(model.parameters()).device
    set_ratio(encoder, ratio)
    model.eval()
    student = torch.from_numpy(np.asarray(cache.states[:, 0], dtype=np.float32))  # the embeddings
    errors = []
    for index, layer in enumerate(encoder.layers):
        def attend(hidden: torch.Tensor, mask: torch.Tensor, layer=layer) -> torch.Tensor:
            return layer.attention_norm(hidden + layer.attention(hidden, mask))

        def ffn_block(attended: torch.Tensor, mask: torch.Tensor, layer=layer) -> torch.Tensor:
            return layer.ffn_norm(attended + layer.ffn(attended, mask))

        attended, _ = _map_tokens(attend, student, cache, device=device)
        if str(index) in plugin_set.plugins:
            _, before = _map_tokens(ffn_block, attended, cache, index + 1, device=device)

            def batch_loss(batch: Batch, labels: torch.Tensor, indices: list[int], attended=attended,
                           ffn_block=ffn_block, index=index) -> torch.Tensor:
                seq = batch.input_ids.shape[1]
                hidden = _padded(attended, cache, indices, seq).to(device)
                target = cache.gather(indices, seq, [index + 1])[0].to(device)
                output = ffn_block(hidden, additive_mask(batch.attention_mask, hidden.dtype))
                return masked_mse(output, target, batch.attention_mask)

            train_loop(plugin_set.plugins[str(index)], train, tokenizer,
                       replace(config, epochs=config.layerwise_epochs), config.lr or 1e-3, batch_loss,
                       lambda epoch, losses: None, progress, train_mode=False,
                       resume=None if resume is None else resume / f"layer{index}.pt",
                       stage=f"k={ratio} plugin, layer {index + 1}/{len(encoder.layers)}")
        student, after = _map_tokens(ffn_block, attended, cache, index + 1, device=device)
        if str(index) in plugin_set.plugins:
            errors.append({"layer": index, "mse_before": before, "mse_after": after})
    return errors


def train_plugins(checkpoint: str | Path, data: TaskData, out_dir: str | Path, ratio: int,
                  config: PluginTrainConfig, progress: bool = True) -> dict:
    """Train the ratio-`ratio` plugins of a frozen model; keep the best on dev in out_dir.

    `checkpoint` is a task checkpoint (task adaptation: dev accuracy picks the best), a
    multi-exit checkpoint (the same, with every exit's loss and their mean dev accuracy), or a
    plain backbone folder (pre-training by distillation alone: dev distillation loss picks the best).
    With `config.layerwise_epochs`, each layer's plugin is first fitted alone (fit_plugins_layerwise);
    the end-to-end epochs that follow are kept only where they improve on it on dev.
    Resumable: rerunning the same call continues from the checkpoints beside out_dir.
    """
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    checkpoint = Path(checkpoint)
    pretraining = not (checkpoint / "task.json").is_file()
    pretraining = pretraining and not is_multi_exit(checkpoint)
    if pretraining:
        model = TaskModel(load_encoder(checkpoint), ["-"])
        model_dir = checkpoint
    else:
        loader = load_multi_exit if is_multi_exit(checkpoint) else load_task
        model, task_tokenizer, info = loader(checkpoint)
        if info.labels != data.labels:
            raise ValueError(f"{checkpoint} predicts {info.labels}, the data has {data.labels}")
        model_dir = task_tokenizer.model_dir
    tokenizer = Tokenizer(model_dir, config.max_length)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    sha = checkpoint_sha256(checkpoint)
    plugin_set = PluginSet.for_backbone(model.encoder, sha, ratio, config.layers, config.bottleneck)
    if config.init_from:
        start = PluginSet.load(config.init_from)
        if (start.config.ratio, start.config.backbone) != (ratio, model.encoder.config.to_dict()):
            raise PluginMismatchError(f"{config.init_from} holds ratio-{start.config.ratio} plugins "
                                      f"for another shape; cannot start ratio-{ratio} training from it")
        plugin_set.load_state_dict(start.state_dict())
    attach(model.encoder, plugin_set, sha)
    rank, world, device = _distributed(config)
    model.to(device)
    backbone = [p for name, p in model.named_parameters() if ".plugins." not in name]
    train = subsample(data.train, config)
    resume = resume_dir(out_dir)
    started = time.perf_counter()
    cache = None
    if config.cache_teacher or config.layerwise_epochs:
        folder = Path(config.cache_dir) if config.cache_dir else resume / "teacher"

        def open_cache() -> TeacherCache:
            return cache_backbone_states(model, tokenizer, train, folder, f"{sha}:{config.max_length}",
                                         config.cache_dtype)

        if rank == 0:  # under torchrun rank 0 builds it; the others then open what it wrote
            cache = open_cache()
        if world > 1:
            dist.barrier()
        if rank != 0:
            cache = open_cache()
    cached_seconds = round(time.perf_counter() - started, 1)

    history: list[dict] = []

    def score(record: dict) -> dict:
        record["dev_distillation_loss"] = dev_distillation_loss(model, tokenizer, ratio, data.dev, config)
        set_ratio(model.encoder, ratio)
        if isinstance(model, MultiExitModel):
            per_exit = evaluate_exits(model, tokenizer, data.dev)
            record.update({"dev_exit_accuracy": per_exit, "dev_accuracy": sum(per_exit) / len(per_exit)})
        elif not pretraining:
            record.update({f"dev_{k}": v for k, v in evaluate(model, tokenizer, data.dev).items()})
        history.append(record)
        if pretraining:
            improved = all(record["dev_distillation_loss"] < h["dev_distillation_loss"] for h in history[:-1])
        else:
            improved = all(record["dev_accuracy"] > h["dev_accuracy"] for h in history[:-1])
        if improved:
            plugin_set.save(out_dir)
        return record

    uncompressed = None  # dev accuracy at k = 1 (multi-exit: per exit), what the plugins are held to
    if rank == 0 and not pretraining:
        set_ratio(model.encoder, 1)
        uncompressed = (evaluate_exits(model, tokenizer, data.dev) if isinstance(model, MultiExitModel)
                        else evaluate(model, tokenizer, data.dev)["accuracy"])

    layerwise: list[dict] = []
    if config.layerwise_epochs:
        layerwise = fit_plugins_layerwise(model, plugin_set, ratio, cache, train, tokenizer, config,
                                          resume, progress)
        if rank == 0 and not (resume / "e2e.pt").is_file():  # once; a resumed e2e pass has it in its history
            score({"epoch": 0, "stage": "layerwise"})
        if world > 1:
            dist.barrier()
    layerwise_seconds = round(time.perf_counter() - started, 1)

    def batch_loss(batch: Batch, labels_: torch.Tensor, indices: list[int]) -> torch.Tensor:
        teacher = None if cache is None else cache.gather(indices, batch.input_ids.shape[1]).to(device)
        labels = None if pretraining else labels_
        return plugin_distillation_loss(model, ratio, batch, config, labels, teacher)

    def end_of_epoch(epoch: int, losses: list[float]) -> None:
        if any(p.grad is not None for p in backbone):
            raise RuntimeError("a backbone parameter received a gradient: the backbone must stay frozen")
        score({"epoch": epoch + 1, "stage": "end-to-end", "train_loss": sum(losses) / len(losses),
               "losses": losses})

    if config.epochs:
        train_loop(model, train, tokenizer, config, config.lr or 1e-3, batch_loss, end_of_epoch,
                   progress, train_mode=False,  # dropout off: teacher and student see the same network
                   resume=resume / "e2e.pt", history=history, stage=f"k={ratio} plugins, end to end")
    if rank != 0:
        return {}
    metrics = {
        "task": data.name,
        "ratio": ratio,
        "config": asdict(config),
        "train_examples": len(train),
        "train_seconds": round(time.perf_counter() - started, 1),
        "seconds": {"teacher_cache": cached_seconds, "layerwise": layerwise_seconds - cached_seconds,
                    "end_to_end": round(time.perf_counter() - started - layerwise_seconds, 1)},
        "layerwise": layerwise,
        "quality": [] if pretraining else plugin_quality(ratio, history, uncompressed),
        "plugin_parameters": parameter_count(plugin_set),
        "backbone_parameters": sum(p.numel() for p in backbone),
        "history": history,
    }
    write_json(Path(out_dir) / "metrics.json", metrics)
    shutil.rmtree(resume, ignore_errors=True)
    return metrics


def plugin_quality(ratio: int, history: list[dict], uncompressed: float | list[float]) -> list[dict]:
    """The kept plugin set's dev accuracy (each exit's, on a multi-exit model) against k = 1's."""
    best = max(history, key=lambda h: h["dev_accuracy"])  # the first of equals, as saved
    if isinstance(uncompressed, list):
        rows = [(f"k={ratio}, exit {i + 1}", a, r)
                for i, (a, r) in enumerate(zip(best["dev_exit_accuracy"], uncompressed, strict=True))]
    else:
        rows = [(f"k={ratio}", best["dev_accuracy"], uncompressed)]
    return compare_quality(f"k={ratio} plugins", rows)


# ---- COST-EFF: the multi-exit teacher assistant, then slenderization -------------------------

LAST_EXITS = ("fresh", "teacher")  # ExitTrainConfig.last_exit


@dataclass
class ExitTrainConfig(LoopConfig):
    temperature: float = 2.0  # soft cross-entropy against the teacher's (or assistant's) logits
    soft_weight: float = 0.5  # the rest of the loss is hard-label cross-entropy
    exit_lr: float = 1e-3  # the exit heads: fresh linear layers that the encoder's 5e-5 barely moves
    pooling: str = "mean"  # what an exit reads: "mean" of the tokens or "cls" (exits.py says why)
    # the assistant's last exit: "fresh" like the others, or "teacher": the teacher's own head (its
    # pooler and classifier), trained at the encoder's rate; it starts at the teacher's accuracy
    last_exit: str = "fresh"
    # the assistant's fresh exits first learn alone, this many epochs over the frozen teacher's
    # pooled states (one forward pass, cached), so the joint stage does not start from their random
    # heads' large gradients through the encoder
    warm_exits_epochs: int = 0
    # the share of the early exits' gradients that reaches the encoder (MultiExitModel.early_exit_gradient)
    early_exit_gradient: float = 1.0

    def __post_init__(self) -> None:  # refused here, not after a stage's first pass over the data
        if self.last_exit not in LAST_EXITS:
            raise ValueError(f"last_exit must be one of {LAST_EXITS}, not {self.last_exit!r}")
        if not 0 <= self.early_exit_gradient <= 1:
            raise ValueError(f"early_exit_gradient is a share, from 0 to 1, not {self.early_exit_gradient}")
        if self.warm_exits_epochs < 0:
            raise ValueError(f"warm_exits_epochs must be 0 or more, not {self.warm_exits_epochs}")


@dataclass
class SlenderConfig(ExitTrainConfig):
    # counts, or fractions (0 < f < 1) of the assistant's (slender.Width.of); the default is the half
    heads: float = 0.5  # per layer (all-MiniLM-L6-v2: 6 of 12)
    neurons: float = 0.5  # FFN width per layer (768 of 1536)
    embedding_rank: float | None = 1 / 3  # the word embedding's rank (128 of 384); None keeps it
    prune_steps: int = 3  # prune a little at a time, re-scoring importance in between
    between_epochs: int = 0  # hidden-state distillation at each width but the last, before pruning on
    importance_batches: int = 32  # batches of train text per importance pass
    repr_epochs: int = 1  # hidden-state distillation from the assistant ...
    epochs: int = 2  # ... then prediction distillation, exit i from the assistant's exit i


def soft_distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL from the teacher's logits to the student's at `temperature`, scaled by T^2 (the soft
    cross-entropy's gradient, but 0 when matched), summed over labels, averaged over the rest."""
    t = temperature
    return torch.nn.functional.kl_div(torch.log_softmax(student / t, -1), torch.log_softmax(teacher / t, -1),
                                      reduction="none", log_target=True).sum(-1).mean() * t * t


def exit_distillation_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor,
                           config: ExitTrainConfig) -> torch.Tensor:
    """Mean over exits of the soft loss (soft_distillation_loss: 0 when matched, so its curve shows
    progress) + hard CE.

    `student` is (exits, batch, labels); `teacher` is (batch, labels) — the fine-tuned teacher,
    one target for every exit — or (exits, batch, labels), exit i learning from exit i.
    """
    soft = soft_distillation_loss(student, teacher.expand_as(student), config.temperature)
    hard = torch.nn.functional.cross_entropy(student.flatten(0, 1), labels.repeat(student.shape[0]))
    return config.soft_weight * soft + (1 - config.soft_weight) * hard


def _train_exits_stage(model: MultiExitModel, tokenizer: Tokenizer, data: TaskData, train: list[Example],
                       targets: torch.Tensor, config: ExitTrainConfig, out_dir: Path, info: ExitsInfo,
                       lr: float, progress: bool, resume: Path | None = None,
                       fast: list[torch.nn.Parameter] | None = None) -> list[dict]:
    """Every exit trained jointly against `targets` (teacher logits per train example, computed
    once rather than once per epoch); keeps the best mean dev accuracy over exits in out_dir.
    `fast` (default: every exit's parameters) train at config.exit_lr, the rest at `lr`."""
    history: list[dict] = []
    model.early_exit_gradient = config.early_exit_gradient

    def batch_loss(batch: Batch, labels: torch.Tensor, indices: list[int]) -> torch.Tensor:
        logits = model(batch.input_ids, batch.attention_mask, batch.token_type_ids)
        return exit_distillation_loss(logits, targets[..., indices, :].to(logits.device), labels, config)

    def end_of_epoch(epoch: int, losses: list[float]) -> None:
        per_exit = evaluate_exits(model, tokenizer, data.dev)
        history.append({"epoch": epoch + 1, "train_loss": sum(losses) / len(losses), "losses": losses,
                        "dev_exit_accuracy": per_exit, "dev_mean_accuracy": sum(per_exit) / len(per_exit)})
        if all(history[-1]["dev_mean_accuracy"] > h["dev_mean_accuracy"] for h in history[:-1]):
            save_multi_exit(model, tokenizer, info, out_dir)

    train_loop(model, train, tokenizer, config, lr, batch_loss, end_of_epoch, progress,
               fast_parameters=list(model.exits.parameters()) if fast is None else fast,
               fast_lr=config.exit_lr, resume=resume, history=history, stage="every exit")
    return history


def warm_exits(exits: torch.nn.ModuleList, inputs: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor,
               config: ExitTrainConfig) -> list[float]:
    """Train `exits` (the first len(exits) of a model's) on cached `inputs` (exits or more, examples,
    d: what each reads, evaluation.exit_inputs) against the teacher's `targets` and the labels, with
    the joint stage's loss, at config.exit_lr for config.warm_exits_epochs: heads alone, no encoder
    pass. Returns the mean loss of each epoch."""
    exits.train()
    device = next(exits.parameters()).device
    optimizer = torch.optim.AdamW(exits.parameters(), lr=config.exit_lr, weight_decay=config.weight_decay)
    order = torch.Generator().manual_seed(config.seed)
    losses = []
    for _ in range(config.warm_exits_epochs):
        epoch = []
        for batch in torch.randperm(len(labels), generator=order).split(config.batch_size):
            logits = torch.stack([head.classify(inputs[i, batch].to(device)) for i, head in enumerate(exits)])
            loss = exit_distillation_loss(logits, targets[..., batch, :].to(device), labels[batch].to(device),
                                          config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            epoch.append(loss.item())
        losses.append(sum(epoch) / len(epoch))
    return losses


def assistant_of(teacher: TaskModel | MultiExitModel, config: ExitTrainConfig) -> MultiExitModel:
    """The teacher's encoder (shared, not copied) with a fresh exit after every layer; with
    config.last_exit "teacher" the last one is the teacher's own head, so it answers as the teacher."""
    from_teacher = config.last_exit == "teacher"
    if from_teacher and not isinstance(teacher, TaskModel):
        raise ValueError("last_exit='teacher' needs a task model's head to start from, "
                         "not a multi-exit model")
    model = MultiExitModel(teacher.encoder, teacher.labels, pooling=config.pooling,
                           last_exit_pooler=teacher.pooling if from_teacher else None)
    if from_teacher:
        model.exits[-1].dense.load_state_dict(teacher.encoder.pooler.state_dict())
        model.exits[-1].classifier.load_state_dict(teacher.classifier.state_dict())
    return model


def train_multi_exit(teacher: str | Path, data: TaskData, out_dir: str | Path, config: ExitTrainConfig,
                     progress: bool = True) -> dict:
    """The multi-exit teacher assistant: the teacher's encoder, full width, an exit after every
    layer, every exit distilled from the teacher's logits plus the labels (all weights train)."""
    teacher_model, tokenizer = _seeded_source(teacher, data, config)
    model = assistant_of(teacher_model, config)  # refuses a teacher without a head before its logits
    train = subsample(data.train, config)
    targets = logits_of(teacher_model, tokenizer, train)
    from_teacher = model.last_exit_pooler is not None
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    exits_info = ExitsInfo(data.labels, config.max_length, pooling=config.pooling,
                           distilled_from=str(teacher), distilled_from_sha256=checkpoint_sha256(teacher))
    model.to(_distributed(config)[2])
    started = time.perf_counter()
    reference = evaluate(teacher_model, tokenizer, data.dev)["accuracy"]  # before training moves its encoder
    fresh = model.exits[:-1] if from_teacher else model.exits  # the teacher's head is trained already
    if config.warm_exits_epochs and not (resume_dir(out_dir) / "exits.pt").is_file():  # else resumed below
        warm_exits(fresh, exit_inputs(model, tokenizer, train), targets,
                   torch.tensor([e.label for e in train]), config)
    history = _train_exits_stage(model, tokenizer, data, train, targets, config, Path(out_dir), exits_info,
                                 config.lr or 5e-5, progress, resume_dir(out_dir) / "exits.pt",
                                 fast=list(fresh.parameters()))
    best = max(history, key=lambda h: h["dev_mean_accuracy"])
    # the last exit only: the early ones are weaker by design, and calibration keeps them honest
    quality = compare_quality("multi-exit assistant",
                              [("the last exit", best["dev_exit_accuracy"][-1], reference)])
    return _write_exit_metrics(out_dir, data, config, train, history, started, quality=quality)


def _seeded_source(path: str | Path, data: TaskData, config: LoopConfig
                   ) -> tuple[TaskModel | MultiExitModel, Tokenizer]:
    """Seed, then load the checkpoint a stage learns from (task or multi-exit), refusing one trained
    for other labels; its tokenizer at the stage's max_length."""
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    model, tokenizer, info = (load_multi_exit if is_multi_exit(path) else load_task)(path)
    if info.labels != data.labels:
        raise ValueError(f"{path} predicts {info.labels}, the data has {data.labels}")
    return model.to(_distributed(config)[2]), Tokenizer(tokenizer.model_dir, config.max_length)


def _write_exit_metrics(out_dir: str | Path, data: TaskData, config: LoopConfig, train: list[Example],
                        history: list[dict], started: float, **extra) -> dict:
    best_model, tokenizer, _ = load_multi_exit(out_dir)
    best = max(history, key=lambda h: h["dev_mean_accuracy"])
    metrics = {
        "task": data.name,
        "config": asdict(config),
        "train_examples": len(train),
        "train_seconds": round(time.perf_counter() - started, 1),
        "best_epoch": best["epoch"],
        "parameters": parameter_count(best_model),
        "encoder": best_model.encoder.config.to_dict(),
        "dev_exit_accuracy": best["dev_exit_accuracy"],
        "test_exit_accuracy": evaluate_exits(best_model, tokenizer, data.test),
        "history": history,
        **extra,
    }
    write_json(Path(out_dir) / "metrics.json", metrics)
    shutil.rmtree(resume_dir(out_dir), ignore_errors=True)
    return metrics


def _exit_batches(train: list[Example], tokenizer: Tokenizer, targets: torch.Tensor, config: LoopConfig,
                  count: int) -> list[tuple[Batch, torch.Tensor, torch.Tensor]]:
    """`count` seeded training batches (inputs, labels, their targets) for importance scoring."""
    lengths = tokenizer.token_lengths([e.text for e in train])
    batches = length_bucketed_batches(lengths, config.batch_size, random.Random(config.seed))[:count]
    has_pairs = bool(train[0].text_pair)
    return [(tokenizer([train[i].text for i in b], [train[i].text_pair for i in b] if has_pairs else None),
             torch.tensor([train[i].label for i in b]), targets[..., b, :]) for b in batches]


def train_slender(assistant: str | Path, data: TaskData, out_dir: str | Path, config: SlenderConfig,
                  progress: bool = True) -> dict:
    """Slenderize the multi-exit assistant: iterative Taylor pruning of heads and FFN neurons (and
    SVD of the word embedding), then hidden-state distillation, then exit-by-exit prediction
    distillation from the assistant. Resumable: the pruned model and each stage's checkpoints
    are kept beside out_dir until it is finished."""
    if not is_multi_exit(assistant):
        raise ValueError(f"{assistant} is not a multi-exit assistant: train one with train_multi_exit first")
    teacher, tokenizer = _seeded_source(assistant, data, config)
    target = Width.of(teacher.encoder.config, config.heads, config.neurons, config.embedding_rank)
    config = replace(config, **asdict(target))  # counts: the same run whichever way it was asked for
    device = _distributed(config)[2]
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    train = subsample(data.train, config)
    targets = logits_of(teacher, tokenizer, train)  # (exits, examples, labels)
    reference = evaluate_exits(teacher, tokenizer, data.dev)  # the full-width exits, one by one
    started = time.perf_counter()
    resume = resume_dir(out_dir)
    info = ExitsInfo(data.labels, config.max_length, pooling=teacher.pooling,
                     distilled_from=str(assistant),
                     distilled_from_sha256=checkpoint_sha256(assistant))

    def inputs(batch: Batch) -> tuple[torch.Tensor, ...]:
        return batch.input_ids, batch.attention_mask, batch.token_type_ids

    def hidden_loss(batch: Batch, labels: torch.Tensor, indices: list[int]) -> torch.Tensor:
        with torch.no_grad():
            target_states, _ = teacher.forward_all(*inputs(batch))
        states, _ = student.forward_all(*inputs(batch))
        pairs = zip(states, target_states, strict=True)
        return sum(masked_mse(s, t, batch.attention_mask) for s, t in pairs) / len(states)

    def distil_hidden(epochs: int, checkpoint: Path, history: list[dict], stage: str,
                      seed: int | None) -> None:
        def after_epoch(epoch: int, losses: list[float]) -> None:
            history.append({"epoch": epoch + 1, "train_loss": sum(losses) / len(losses), "losses": losses})

        if seed is not None:  # the same dropout noise whether or not the run was resumed before this loop
            torch.manual_seed(seed)
        teacher.eval()
        student.rescale_gradients = False
        train_loop(student, train, tokenizer, replace(config, epochs=epochs), config.lr or 1e-4, hidden_loss,
                   after_epoch, progress, resume=checkpoint, history=history, stage=stage)

    # 1. iterative pruning, scored with every exit's distillation loss; with between_epochs, the
    # student recovers by hidden-state distillation at each width before the last. Each width is
    # saved once reached (and trained), so a rerun continues from the last one.
    steps = target.steps(teacher.encoder.config, config.prune_steps)
    reached = [i for i in range(len(steps)) if (resume / f"pruned-{i + 1}" / "pruning.json").is_file()]
    if reached:
        student, _, pruned_info = load_multi_exit(resume / f"pruned-{reached[-1] + 1}")
        if pruned_info.distilled_from_sha256 != info.distilled_from_sha256:
            raise ResumeError(f"{resume} holds a model pruned from another assistant than {assistant}: "
                              "remove it to prune this one")
        student = student.to(device)
        pruning = json.loads((resume / f"pruned-{reached[-1] + 1}" / "pruning.json").read_text())
    else:
        student = load_multi_exit(assistant)[0].to(device)
        pruning = {"widths": [], "between": []}
    scoring = _exit_batches(train, tokenizer, targets, config, config.importance_batches)

    def all_exits_loss(model: MultiExitModel, item) -> torch.Tensor:
        batch, labels, batch_targets = item
        batch, labels, batch_targets = batch.to(device), labels.to(device), batch_targets.to(device)
        logits = model(batch.input_ids, batch.attention_mask, batch.token_type_ids)
        return exit_distillation_loss(logits, batch_targets, labels, config)

    for step in range(len(pruning["widths"]), len(steps)):
        width = steps[step]
        importance = taylor_importance(student, scoring, all_exits_loss)
        student = prune(student, width.heads, width.neurons, importance).to(device)
        if width.embedding_rank:
            student = factorize_embeddings(student, width.embedding_rank).to(device)
        pruning["widths"].append(asdict(width))
        if config.between_epochs and step < len(steps) - 1:
            between: list[dict] = []
            distil_hidden(config.between_epochs, resume / f"between-{step + 1}.pt", between,
                          f"hidden-state distillation at width {step + 1} of {len(steps)}",
                          config.seed + step)
            pruning["between"].append(between)
        if step == len(steps) - 1:
            pruning["dev_exit_accuracy"] = evaluate_exits(student, tokenizer, data.dev)
        if config.between_epochs or step == len(steps) - 1:  # re-pruning an untrained width is cheap
            save_multi_exit(student, tokenizer, info, resume / f"pruned-{step + 1}",
                            extra_files={"pruning.json": pruning})
    widths, pruned_dev = pruning["widths"], pruning["dev_exit_accuracy"]

    # 2. representation distillation: every hidden state (the width d is kept) towards the assistant's
    repr_history: list[dict] = []
    # (seeded only with between_epochs, so that runs without them are the ones shipped before they existed)
    distil_hidden(config.repr_epochs, resume / "representation.pt", repr_history, "hidden-state distillation",
                  config.seed + len(steps) if config.between_epochs else None)

    # 3. prediction distillation: exit i of the student from exit i of the assistant
    student.rescale_gradients = True
    history = _train_exits_stage(student, tokenizer, data, train, targets, config, Path(out_dir), info,
                                 config.lr or 1e-4, progress, resume / "exits.pt")
    best = max(history, key=lambda h: h["dev_mean_accuracy"])
    quality = compare_quality("slender model", [(f"exit {i + 1}", a, r) for i, (a, r) in enumerate(
        zip(best["dev_exit_accuracy"], reference, strict=True))])
    return _write_exit_metrics(out_dir, data, config, train, history, started, pruning_steps=widths,
                               dev_exit_accuracy_after_pruning=pruned_dev, representation=repr_history,
                               representation_between_steps=pruning["between"], quality=quality)


@dataclass
class RefineConfig(ExitTrainConfig):
    """lr None is 5e-5, half the quarter's own: at 1e-4 trec6's last exit lost 1.3 dev points."""

    epochs: int = 3
    exit_lr: float = 5e-5  # the exits are trained already: no faster than the encoder


def refine_exits(slender: str | Path, teacher: str | Path, data: TaskData, out_dir: str | Path,
                 config: RefineConfig, progress: bool = True) -> dict:
    """Prediction distillation of a finished slender model once more, every exit from the fine-tuned
    teacher's logits. Its exits learnt from the assistant's, so an assistant short of the teacher caps
    it (20ng: the assistant's last exit 3.6 dev points under the teacher); this lifts that cap.
    Resumable: the teacher's logits and the loop's checkpoints stay beside out_dir until it is done."""
    if not is_multi_exit(slender):
        raise ValueError(f"{slender} is not a multi-exit model: train one with train_slender first")
    student, tokenizer = _seeded_source(slender, data, config)
    teacher_model = _seeded_source(teacher, data, config)[0]
    if isinstance(teacher_model, MultiExitModel):
        raise ValueError(f"{teacher} is a multi-exit model: refine from the fine-tuned task teacher")
    train = subsample(data.train, config)
    resume = resume_dir(out_dir)
    cached = resume / "teacher_logits.pt"
    if cached.is_file():
        targets = torch.load(cached)["targets"]
    else:  # one teacher pass over the training split (20ng: minutes), kept for a rerun after a kill
        targets = logits_of(teacher_model, tokenizer, train)  # (examples, labels): every exit's target
        save_resume_state(cached, {"targets": targets})
    reference = evaluate(teacher_model, tokenizer, data.dev)["accuracy"]
    before = evaluate_exits(student, tokenizer, data.dev)
    info = replace(load_multi_exit(slender)[2], distilled_from=str(teacher),
                   distilled_from_sha256=checkpoint_sha256(teacher), thresholds={})  # calibrate again
    for parameter in student.parameters():
        parameter.requires_grad_(True)
    student.rescale_gradients = True
    started = time.perf_counter()
    history = _train_exits_stage(student, tokenizer, data, train, targets, config, Path(out_dir), info,
                                 config.lr or 5e-5, progress, resume / "exits.pt")
    best = max(history, key=lambda h: h["dev_mean_accuracy"])
    quality = compare_quality("refined slender model",
                              [("the last exit", best["dev_exit_accuracy"][-1], reference)])
    return _write_exit_metrics(out_dir, data, config, train, history, started, refined_from=str(slender),
                               dev_exit_accuracy_before=before, teacher_dev_accuracy=reference,
                               quality=quality)


def plugin_summary(ratio: int, metrics: dict, out: str | Path) -> str:
    """One line on a trained plugin set: its size, its last dev scores, its time."""
    dev = {k: v for k, v in metrics["history"][-1].items() if k.startswith("dev_")}
    share = 100 * metrics["plugin_parameters"] / metrics["backbone_parameters"]
    return (f"k={ratio}: {metrics['plugin_parameters']:,} parameters ({share:.2f}% of the backbone), "
            f"last dev {dev}, {metrics['train_seconds']:.0f} s -> {out}" + quality_lines(metrics))


def quality_lines(metrics: dict) -> str:
    """Dev accuracy against the uncompressed model, one line per ratio or exit compared."""
    return "".join(f"\n  {q['name']}: dev {100 * q['dev_accuracy']:.2f}% vs "
                   f"{100 * q['uncompressed_dev_accuracy']:.2f}% uncompressed "
                   f"({0.0 - q['points_lost']:+.2f} points)" for q in metrics.get("quality", []))


def exit_summary(metrics: dict, out: str | Path) -> str:
    """One line on a trained multi-exit model: its size and every exit's test accuracy."""
    return (f"{metrics['parameters'] / 1e6:.2f} M parameters; test accuracy per exit: "
            + " ".join(f"{100 * a:.1f}" for a in metrics["test_exit_accuracy"]) + f" -> {out}"
            + quality_lines(metrics))
