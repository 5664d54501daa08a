"""Training: task fine-tuning (the teacher every later stage distils from) and the distillation
of compression plugins into a frozen model.

CPU-friendly (dynamic padding, length-bucketed batches, seeded) and unchanged under `torchrun`
(DDP over gloo on CPU or nccl on GPUs): each rank takes every world-size-th batch, rank 0
evaluates and saves. Full fine-tuning or LoRA (`method="lora"`: a small file on the base weights).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from edge_variator.cost import parameter_count
from edge_variator.data import Example, TaskData
from edge_variator.encoder import backbone_sha256, default_model_dir, load_encoder
from edge_variator.files import write_json
from edge_variator.metrics import classification_metrics
from edge_variator.plugins import PluginMismatchError, PluginSet, attach, set_ratio
from edge_variator.task import (
    DEFAULT_BASE,
    LORA_TARGETS,
    TaskInfo,
    TaskModel,
    add_lora,
    checkpoint_sha256,
    load_task,
    predict_logits,
    save_task,
)
from edge_variator.tokenizer import Batch, Tokenizer


@dataclass
class LoopConfig:
    """What every training stage shares: the schedule and the data it walks through."""

    epochs: int = 3
    batch_size: int = 32
    lr: float | None = None  # None: the stage's default
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    max_length: int = 128
    seed: int = 0
    max_train: int | None = None  # train on a seeded subset (long-text sets on a CPU)


@dataclass
class FinetuneConfig(LoopConfig):
    method: str = "full"  # "full" | "lora"
    lora_rank: int = 8
    lora_alpha: float = 16.0


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


def _distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, torch.device("cpu")
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


def evaluate(model: TaskModel, tokenizer: Tokenizer, examples: list[Example]) -> dict[str, float]:
    pairs = [e.text_pair for e in examples] if examples and examples[0].text_pair else None
    logits = predict_logits(model, tokenizer, [e.text for e in examples], pairs)
    return classification_metrics(logits.argmax(1).tolist(), [e.label for e in examples],
                                  len(model.labels))


def subsample(examples: list[Example], config: LoopConfig) -> list[Example]:
    if config.max_train is not None and config.max_train < len(examples):
        return random.Random(config.seed).sample(examples, config.max_train)
    return list(examples)


def train_loop(
    model: torch.nn.Module,
    train: list[Example],
    tokenizer: Tokenizer,
    config: LoopConfig,
    lr: float,
    batch_loss: Callable[[Batch, torch.Tensor], torch.Tensor],
    end_of_epoch: Callable[[int, list[float]], None],
    progress: bool = True,
    train_mode: bool = True,
) -> None:
    """AdamW with linear warmup and decay over length-bucketed batches of `train`.

    `batch_loss(batch, labels)` gives the loss of one batch (already on the model's device);
    `end_of_epoch(epoch, losses)` runs on rank 0 after each epoch (evaluate, keep the best).
    Under torchrun each rank takes every world-th batch; gradients are averaged by DDP when the
    caller wrapped `model` in it, else here after each backward.
    """
    rank, world, device = _distributed()
    has_pairs = bool(train[0].text_pair)
    lengths = tokenizer.token_lengths([e.text for e in train],
                                      [e.text_pair for e in train] if has_pairs else None)
    # every rank must take the same number of steps, or DDP's gradient all-reduce hangs
    steps_per_epoch = len(length_bucketed_batches(lengths, config.batch_size, random.Random(0))) // world
    total_steps = steps_per_epoch * config.epochs
    warmup = max(1, int(config.warmup_fraction * total_steps))
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup,
                                    max(0.0, (total_steps - step) / max(1, total_steps - warmup))))
    for epoch in range(config.epochs):
        model.train(train_mode)
        batches = length_bucketed_batches(lengths, config.batch_size, random.Random(config.seed + epoch))
        mine = batches[rank::world][:steps_per_epoch]
        bar = tqdm(mine, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress or rank)
        losses = []
        for indices in bar:
            batch = tokenizer([train[i].text for i in indices],
                              [train[i].text_pair for i in indices] if has_pairs else None).to(device)
            labels = torch.tensor([train[i].label for i in indices], device=device)
            loss = batch_loss(batch, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if world > 1 and not isinstance(model, DistributedDataParallel):
                _average_gradients(parameters, world)
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            schedule.step()
            losses.append(round(loss.item(), 5))
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
        if rank == 0:
            end_of_epoch(epoch, losses)
        if world > 1:
            dist.barrier()


def finetune(data: TaskData, out_dir: str | Path, config: FinetuneConfig,
             model_dir: str | Path | None = None, progress: bool = True) -> dict:
    """Train on data.train, keep the best dev accuracy checkpoint in out_dir; returns metrics."""
    rank, world, device = _distributed()
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    base = DEFAULT_BASE if model_dir is None else str(model_dir)
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
    tokenizer = Tokenizer(model_dir, config.max_length)
    model = TaskModel(load_encoder(model_dir), data.labels)
    info = TaskInfo(kind=config.method, labels=data.labels, max_length=config.max_length)
    if config.method == "lora":
        add_lora(model, config.lora_rank, config.lora_alpha)
        info.base, info.base_sha256 = base, backbone_sha256(model_dir)
        info.lora_rank, info.lora_alpha = config.lora_rank, config.lora_alpha
        info.lora_targets = list(LORA_TARGETS)
    elif config.method != "full":
        raise ValueError(f"method must be 'full' or 'lora', not {config.method!r}")
    model.to(device)
    trained = model if world == 1 else DistributedDataParallel(model)
    train = subsample(data.train, config)

    def batch_loss(batch: Batch, labels: torch.Tensor) -> torch.Tensor:
        logits = trained(batch.input_ids, batch.attention_mask, batch.token_type_ids)
        return torch.nn.functional.cross_entropy(logits, labels)

    history: list[dict] = []

    def end_of_epoch(epoch: int, losses: list[float]) -> None:
        dev = evaluate(model, tokenizer, data.dev)
        history.append({"epoch": epoch + 1, "train_loss": sum(losses) / len(losses),
                        "losses": losses, **{f"dev_{k}": v for k, v in dev.items()}})
        if all(dev["accuracy"] > h["dev_accuracy"] for h in history[:-1]):  # ties keep the first
            save_task(model, tokenizer, info, out_dir)

    started = time.perf_counter()
    default_lr = 5e-5 if config.method == "full" else 1e-3
    train_loop(trained, train, tokenizer, config, config.lr or default_lr, batch_loss,
               end_of_epoch, progress)
    if rank != 0:
        return {}
    best = max(history, key=lambda h: h["dev_accuracy"])  # the first of equals, as saved
    best_model, _, _ = load_task(out_dir)
    metrics = {
        "task": data.name,
        "config": asdict(config),
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
    return metrics


@dataclass
class PluginTrainConfig(LoopConfig):
    hidden_loss: str = "all"  # distil every layer's output ("all") or only the last ("last")
    mse_weight: float = 1.0
    ce_weight: float = 1.0  # 0 for the pre-training stage on unlabelled text
    bottleneck: int = 64
    layers: list[int] | None = None  # None: every layer gets a plugin
    init_from: str | None = None  # a plugin-set folder to start from (pre-trained plugins)


def masked_mse(student: torch.Tensor, teacher: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over real tokens only (padding outputs are don't-care)."""
    per_token = ((student - teacher) ** 2).mean(-1)
    mask = attention_mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum()


def plugin_distillation_loss(model: TaskModel, ratio: int, batch: Batch, config: PluginTrainConfig,
                             labels: torch.Tensor | None = None) -> torch.Tensor:
    """Hidden-state MSE against the same model with plugins bypassed, plus the task loss."""
    inputs = (batch.input_ids, batch.attention_mask, batch.token_type_ids)
    with torch.no_grad():
        set_ratio(model.encoder, 1)
        teacher = model.encoder(*inputs)
    set_ratio(model.encoder, ratio)
    student = model.encoder(*inputs)
    chosen = range(1, len(student)) if config.hidden_loss == "all" else [len(student) - 1]
    mse = sum(masked_mse(student[i], teacher[i], batch.attention_mask) for i in chosen) / len(chosen)
    loss = config.mse_weight * mse
    if config.ce_weight and labels is not None:
        logits = model.classifier(model.encoder.pool(student[-1]))
        loss = loss + config.ce_weight * torch.nn.functional.cross_entropy(logits, labels)
    return loss


@torch.no_grad()
def dev_distillation_loss(model: TaskModel, tokenizer: Tokenizer, ratio: int, examples: list[Example],
                          config: PluginTrainConfig, batch_size: int = 64) -> float:
    losses, device = [], next(model.parameters()).device
    for start in range(0, len(examples), batch_size):
        batch = tokenizer([e.text for e in examples[start:start + batch_size]]).to(device)
        losses.append(plugin_distillation_loss(model, ratio, batch, config).item())
    return sum(losses) / len(losses)


def train_plugins(checkpoint: str | Path, data: TaskData, out_dir: str | Path, ratio: int,
                  config: PluginTrainConfig, progress: bool = True) -> dict:
    """Train the ratio-`ratio` plugins of a frozen model; keep the best on dev in out_dir.

    `checkpoint` is a task checkpoint (task adaptation: dev accuracy picks the best) or a plain
    backbone folder (pre-training by distillation alone: dev distillation loss picks the best).
    """
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    checkpoint = Path(checkpoint)
    pretraining = not (checkpoint / "task.json").is_file()
    if pretraining:
        model = TaskModel(load_encoder(checkpoint), ["-"])
        model_dir = checkpoint
    else:
        model, task_tokenizer, info = load_task(checkpoint)
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
    model.to(_distributed()[2])
    backbone = [p for name, p in model.named_parameters() if ".plugins." not in name]
    train = subsample(data.train, config)

    def batch_loss(batch: Batch, labels_: torch.Tensor) -> torch.Tensor:
        return plugin_distillation_loss(model, ratio, batch, config, None if pretraining else labels_)

    history: list[dict] = []

    def end_of_epoch(epoch: int, losses: list[float]) -> None:
        if any(p.grad is not None for p in backbone):
            raise RuntimeError("a backbone parameter received a gradient: the backbone must stay frozen")
        record = {"epoch": epoch + 1, "train_loss": sum(losses) / len(losses), "losses": losses,
                  "dev_distillation_loss": dev_distillation_loss(model, tokenizer, ratio, data.dev, config)}
        if not pretraining:
            set_ratio(model.encoder, ratio)
            record.update({f"dev_{k}": v for k, v in evaluate(model, tokenizer, data.dev).items()})
        history.append(record)
        if pretraining:
            improved = all(record["dev_distillation_loss"] < h["dev_distillation_loss"] for h in history[:-1])
        else:
            improved = all(record["dev_accuracy"] > h["dev_accuracy"] for h in history[:-1])
        if improved:
            plugin_set.save(out_dir)

    started = time.perf_counter()
    train_loop(model, train, tokenizer, config, config.lr or 1e-3, batch_loss, end_of_epoch,
               progress, train_mode=False)  # dropout off: teacher and student see the same network
    if _distributed()[0] != 0:
        return {}
    metrics = {
        "task": data.name,
        "ratio": ratio,
        "config": asdict(config),
        "train_examples": len(train),
        "train_seconds": round(time.perf_counter() - started, 1),
        "plugin_parameters": parameter_count(plugin_set),
        "backbone_parameters": sum(p.numel() for p in backbone),
        "history": history,
    }
    write_json(Path(out_dir) / "metrics.json", metrics)
    return metrics
