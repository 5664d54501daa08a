"""Task fine-tuning: the teacher every later stage distils from.

CPU-friendly (dynamic padding, length-bucketed batches, seeded) and unchanged under `torchrun`
(DDP over gloo on CPU or nccl on GPUs): each rank takes every world-size-th batch, rank 0
evaluates and saves. Full fine-tuning or LoRA (`method="lora"`: a small file on the base weights).
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from edge_variator.data import Example, TaskData
from edge_variator.encoder import backbone_sha256, default_model_dir, load_encoder
from edge_variator.files import write_json
from edge_variator.metrics import classification_metrics
from edge_variator.task import (
    DEFAULT_BASE,
    LORA_TARGETS,
    TaskInfo,
    TaskModel,
    add_lora,
    load_task,
    predict_logits,
    save_task,
)
from edge_variator.tokenizer import Tokenizer


@dataclass
class FinetuneConfig:
    method: str = "full"  # "full" | "lora"
    epochs: int = 3
    batch_size: int = 32
    lr: float | None = None  # None: 5e-5 for full, 1e-3 for LoRA
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    max_length: int = 128
    seed: int = 0
    max_train: int | None = None  # train on a seeded subset (long-text sets on a CPU)
    lora_rank: int = 8
    lora_alpha: float = 16.0

    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (5e-5 if self.method == "full" else 1e-3)


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


def evaluate(model: TaskModel, tokenizer: Tokenizer, examples: list[Example]) -> dict[str, float]:
    pairs = [e.text_pair for e in examples] if examples and examples[0].text_pair else None
    logits = predict_logits(model, tokenizer, [e.text for e in examples], pairs)
    return classification_metrics(logits.argmax(1).tolist(), [e.label for e in examples],
                                  len(model.labels))


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
    trained = model if world == 1 else torch.nn.parallel.DistributedDataParallel(model)

    train = list(data.train)
    if config.max_train is not None and config.max_train < len(train):
        train = random.Random(config.seed).sample(train, config.max_train)
    has_pairs = bool(train[0].text_pair)
    lengths = tokenizer.token_lengths([e.text for e in train],
                                      [e.text_pair for e in train] if has_pairs else None)
    # every rank must take the same number of steps, or DDP's gradient all-reduce hangs
    steps_per_epoch = len(length_bucketed_batches(lengths, config.batch_size, random.Random(0))) // world
    total_steps = steps_per_epoch * config.epochs
    warmup = max(1, int(config.warmup_fraction * total_steps))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=config.learning_rate(), weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup,
                                    max(0.0, (total_steps - step) / max(1, total_steps - warmup))))

    history, best, started = [], None, time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        batches = length_bucketed_batches(lengths, config.batch_size, random.Random(config.seed + epoch))
        mine = batches[rank::world][:steps_per_epoch]
        bar = tqdm(mine, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress or rank)
        losses = []
        for indices in bar:
            batch = tokenizer([train[i].text for i in indices],
                              [train[i].text_pair for i in indices] if has_pairs else None)
            labels = torch.tensor([train[i].label for i in indices], device=device)
            logits = trained(batch.input_ids.to(device), batch.attention_mask.to(device),
                             batch.token_type_ids.to(device))
            loss = torch.nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(round(loss.item(), 5))
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
        if rank == 0:
            dev = evaluate(model, tokenizer, data.dev)
            history.append({"epoch": epoch + 1, "train_loss": sum(losses) / len(losses),
                            "losses": losses, **{f"dev_{k}": v for k, v in dev.items()}})
            if best is None or dev["accuracy"] > best["dev_accuracy"]:
                best = history[-1]
                save_task(model, tokenizer, info, out_dir)
        if world > 1:
            dist.barrier()

    metrics = {}
    if rank == 0:
        best_model, _, _ = load_task(out_dir)
        test = evaluate(best_model, tokenizer, data.test)
        metrics = {
            "task": data.name,
            "config": asdict(config),
            "train_examples": len(train),
            "test_examples": len(data.test),
            "train_seconds": round(time.perf_counter() - started, 1),
            "best_epoch": best["epoch"],
            "dev": {k[4:]: v for k, v in best.items() if k.startswith("dev_")},
            "test": test,
            "history": history,
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        }
        write_json(Path(out_dir) / "metrics.json", metrics)
    return metrics
