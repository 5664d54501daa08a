"""Scoring models on labelled data: a classifier, every exit of a multi-exit model, each plugin
ratio, and early exit at calibrated thresholds; with the tables the CLI prints."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from edge_variator.cost import average_flops, parameter_count
from edge_variator.data import Example, TaskData
from edge_variator.exits import (
    MultiExitModel,
    calibrate_threshold,
    exit_decisions,
    is_multi_exit,
    load_multi_exit,
    save_thresholds,
)
from edge_variator.metrics import classification_metrics
from edge_variator.plugins import PluginSet, attach, available_ratios, cost_arguments, saved_ratios, set_ratio
from edge_variator.task import TaskModel, checkpoint_sha256, load_task
from edge_variator.tokenizer import Batch, Tokenizer

QUALITY_LOSS_POINTS = 2.0  # dev points a compressed model may lose to the uncompressed one unflagged


class QualityLossWarning(UserWarning):
    """A compressed model (a plugin ratio, a slender exit) is more than QUALITY_LOSS_POINTS below
    the uncompressed model on dev."""


def compare_quality(stage: str, rows: list[tuple[str, float, float]]) -> list[dict]:
    """(name, dev accuracy, the uncompressed model's) per row -> records with the points lost; warns
    (QualityLossWarning) for each row that loses more than QUALITY_LOSS_POINTS."""
    records = []
    for name, accuracy, reference in rows:
        lost = round(100 * (reference - accuracy), 2)
        records.append({"name": name, "dev_accuracy": accuracy, "uncompressed_dev_accuracy": reference,
                        "points_lost": lost})
        if lost > QUALITY_LOSS_POINTS:
            warnings.warn(f"{stage}: {name} reaches {accuracy:.2%} on dev, {lost:.1f} points below the "
                          f"uncompressed model's {reference:.2%} (more than {QUALITY_LOSS_POINTS:g})",
                          QualityLossWarning, stacklevel=2)
    return records


def export_quality(model: TaskModel | MultiExitModel, tokenizer: Tokenizer, thresholds: dict[str, float],
                   criterion: str, task: TaskData) -> list[dict]:
    """What export checks before lowering: dev accuracy at every ratio attached (of a multi-exit
    model: its last exit, and its early exit at each calibrated threshold) against k = 1's last
    exit, with a QualityLossWarning where more than QUALITY_LOSS_POINTS are lost."""
    labels = torch.tensor([e.label for e in task.dev])
    rows, reference = [], None
    for ratio in [1, *(r for r in available_ratios(model.encoder) if r != 1)]:
        set_ratio(model.encoder, ratio)
        logits = logits_of(model, tokenizer, task.dev)
        last = logits[-1] if isinstance(model, MultiExitModel) else logits
        accuracy = (last.argmax(-1) == labels).float().mean().item()
        reference = accuracy if reference is None else reference
        suffix = ", the last exit" if isinstance(model, MultiExitModel) else ""
        rows.append((f"k={ratio}{suffix}", accuracy))
        for name, threshold in thresholds.items():
            _, predictions = exit_decisions(logits, threshold, criterion)
            rows.append((f"k={ratio}, early exit at {name}", (predictions == labels).float().mean().item()))
    set_ratio(model.encoder, 1)
    return compare_quality("export", [(name, accuracy, reference) for name, accuracy in rows])


class LabelMismatchError(ValueError):
    """A checkpoint predicts other labels than the data set has."""


def check_labels(checkpoint: Path, labels: list[str], task: TaskData) -> None:
    if labels != task.labels:
        raise LabelMismatchError(f"{checkpoint} predicts {labels}, but {task.name} has {task.labels}: "
                                 "pass the task it was trained on (--task)")


@torch.no_grad()
def logits_of(model: TaskModel | MultiExitModel, tokenizer: Tokenizer, examples: list[Example],
              batch_size: int = 64) -> torch.Tensor:
    """The model's logits for every example, batched by similar length (little padding), in input
    order: (examples, labels) from a classifier, (exits, examples, labels) from a multi-exit model."""
    return _in_input_order(model, tokenizer, examples, batch_size,
                           lambda batch: model(batch.input_ids, batch.attention_mask, batch.token_type_ids))


def exit_inputs(model: MultiExitModel, tokenizer: Tokenizer, examples: list[Example],
                batch_size: int = 64) -> torch.Tensor:
    """(exits, examples, d): what each exit reads of its layer (ExitHead.pool), for every example."""
    def pooled(batch: Batch) -> torch.Tensor:
        states = model.forward_all(batch.input_ids, batch.attention_mask, batch.token_type_ids)[0]
        return torch.stack([head.pool(hidden, batch.attention_mask)
                            for head, hidden in zip(model.exits, states[1:], strict=True)])
    return _in_input_order(model, tokenizer, examples, batch_size, pooled)


def _in_input_order(model: torch.nn.Module, tokenizer: Tokenizer, examples: list[Example], batch_size: int,
                    run: Callable[[Batch], torch.Tensor]) -> torch.Tensor:
    """`run` on batches of similar length (little padding), its (..., batch, last) outputs put back in
    input order as (..., examples, last); eval mode, no gradients."""
    model.eval()
    device = next(model.parameters()).device
    texts = [e.text for e in examples]
    pairs = [e.text_pair for e in examples] if examples and examples[0].text_pair else None
    lengths = tokenizer.token_lengths(texts, pairs)
    order = sorted(range(len(texts)), key=lengths.__getitem__)
    outputs = None
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in chunk], [pairs[i] for i in chunk] if pairs else None)
            out = run(batch.to(device)).float().cpu()
            if outputs is None:
                outputs = torch.empty(*out.shape[:-2], len(texts), out.shape[-1])
            outputs[..., chunk, :] = out
    return outputs


def evaluate(model: TaskModel | MultiExitModel, tokenizer: Tokenizer, examples: list[Example]
             ) -> dict[str, float]:
    """Accuracy and macro-F1 of a classifier (of a multi-exit model: its last exit, every layer run)."""
    logits = logits_of(model, tokenizer, examples)
    logits = logits[-1] if isinstance(model, MultiExitModel) else logits
    return classification_metrics(logits.argmax(1).tolist(), [e.label for e in examples], len(model.labels))


def evaluate_exits(model: MultiExitModel, tokenizer: Tokenizer, examples: list[Example]) -> list[float]:
    """Accuracy of every exit when all layers run."""
    labels = torch.tensor([e.label for e in examples])
    return (logits_of(model, tokenizer, examples).argmax(-1) == labels).float().mean(1).tolist()


def evaluate_checkpoint(checkpoint: Path, task: TaskData, split: str) -> dict:
    """Accuracy, macro-F1, size, analytic FLOPs and truncation of a task checkpoint on a split."""
    model, tokenizer, info = load_task(checkpoint)
    check_labels(checkpoint, info.labels, task)
    rows = task.split(split)
    lengths = tokenizer.token_lengths([e.text for e in rows])
    padded = tokenizer.padded_lengths([e.text for e in rows])
    started = time.perf_counter()
    metrics = evaluate(model, tokenizer, rows)
    return {
        **metrics,
        "examples": len(rows),
        "seconds": time.perf_counter() - started,
        "parameters": parameter_count(model),
        "flops_per_example": average_flops(model.encoder.config, padded, len(task.labels)),
        "truncated": sum(n > tokenizer.max_length for n in lengths),
    }


def evaluate_ratios(checkpoint: Path, plugins_dir: Path, task: TaskData, split: str,
                    ratios: list[int] | None = None, max_length: int | None = None) -> list[dict]:
    """Accuracy, macro-F1 and FLOPs relative to k = 1 of a task or multi-exit checkpoint (its last
    exit) at k = 1 and each ratio (None: every k{ratio}/ plugin set in `plugins_dir`)."""
    model, tokenizer, info = (load_multi_exit if is_multi_exit(checkpoint) else load_task)(checkpoint)
    check_labels(checkpoint, info.labels, task)
    tokenizer = Tokenizer(tokenizer.model_dir, max_length or info.max_length)
    sha = checkpoint_sha256(checkpoint)
    found = saved_ratios(plugins_dir)
    if not found:
        raise ValueError(f"{plugins_dir} holds no plugin sets (k2/, k4/, k8/): train them with "
                         "`plugins train`")
    missing = sorted(set(ratios or []) - set(found))
    if missing:
        raise ValueError(f"{plugins_dir} has plugin sets for ratios {found}, not {missing}: pass --ratios "
                         "among those, or train the others with `plugins train`")
    ratios = found if ratios is None else ratios
    for ratio in ratios:
        attach(model.encoder, PluginSet.load(plugins_dir / f"k{ratio}"), sha)
    rows = task.split(split)
    padded = tokenizer.padded_lengths([e.text for e in rows])
    config = model.encoder.config
    base_flops = average_flops(config, padded, len(task.labels))
    results = []
    for ratio in [1, *ratios]:
        set_ratio(model.encoder, ratio)
        flops = average_flops(config, padded, len(task.labels), **cost_arguments(model.encoder, ratio))
        results.append({"ratio": ratio, **evaluate(model, tokenizer, rows), "flops": flops / base_flops})
    return results


def early_exit_metrics(model: MultiExitModel, tokenizer: Tokenizer, rows: list[Example], threshold: float,
                       criterion: str, ratio: int = 1, logits: torch.Tensor | None = None) -> dict:
    """Accuracy, mean exit layer and mean FLOPs per example of early exit at `threshold` (with
    the model's plugins running at `ratio`, which the caller has set); `logits`: the model's
    logits_of these rows, when already computed."""
    logits = logits_of(model, tokenizer, rows) if logits is None else logits
    layers, predictions = exit_decisions(logits, threshold, criterion)
    labels = torch.tensor([e.label for e in rows])
    padded = tokenizer.padded_lengths([e.text for e in rows])
    return {"accuracy": (predictions == labels).float().mean().item(),
            "mean_exit_layer": layers.float().mean().item(),
            "mean_flops": average_flops(model.encoder.config, padded, len(model.labels),
                                        exit_layers=layers.tolist(), **cost_arguments(model.encoder, ratio),
                                        last_exit_pooler=model.last_exit_pooler is not None)}


def calibrate_checkpoint(checkpoint: Path, task: TaskData, drops: list[float],
                         ratio: int = 1, plugins_dir: Path | None = None) -> dict:
    """Thresholds calibrated on dev for each drop (exits.calibrate_threshold: at most that share of
    the last exit's answers changed), scored on dev and test. At ratio 1 they are written into
    exits.json; at a plugin ratio (plugins_dir/k{ratio}) they are only returned."""
    model, tokenizer, info = load_multi_exit(checkpoint)
    check_labels(checkpoint, info.labels, task)
    if ratio != 1:
        attach(model.encoder, PluginSet.load(plugins_dir / f"k{ratio}"), checkpoint_sha256(checkpoint))
        set_ratio(model.encoder, ratio)
    logits = {split: logits_of(model, tokenizer, task.split(split)) for split in ("dev", "test")}
    rows = []
    for drop in drops:
        threshold = calibrate_threshold(logits["dev"], drop, info.criterion)
        rows.append({"max_drop": drop, "threshold": threshold, **{
            split: early_exit_metrics(model, tokenizer, task.split(split), threshold, info.criterion, ratio,
                                      logits[split]) for split in ("dev", "test")}})
    if ratio == 1:
        save_thresholds(checkpoint, {f"drop_{100 * row['max_drop']:g}": row["threshold"] for row in rows})
    return {"parameters": parameter_count(model), "thresholds": rows}


def describe_exits(checkpoint: Path, task: TaskData, split: str, threshold: float | None = None) -> str:
    """Per-exit accuracy with every layer run, then early exit at each calibrated threshold (or the
    one given)."""
    model, tokenizer, info = load_multi_exit(checkpoint)
    check_labels(checkpoint, info.labels, task)
    rows = task.split(split)
    config = model.encoder.config
    lines = [f"{task.name} {split}: {parameter_count(model) / 1e6:.2f} M parameters, "
             f"encoder {config.heads} heads x {config.head_dim}, "
             f"FFN {config.intermediate}, embedding rank {config.embedding_rank or '-'}",
             "  accuracy per exit (all layers run): "
             + " ".join(f"{100 * a:.1f}" for a in evaluate_exits(model, tokenizer, rows))]
    thresholds = {"--threshold": threshold} if threshold is not None else dict(info.thresholds)
    for name, value in thresholds.items():
        result = early_exit_metrics(model, tokenizer, rows, value, info.criterion)
        lines.append(f"  {name} ({value:.4f}): accuracy {100 * result['accuracy']:.2f}%, mean exit layer "
                     f"{result['mean_exit_layer']:.2f}, {result['mean_flops'] / 1e9:.3f} GFLOPs per example")
    return "\n".join(lines)


def format_evaluation(name: str, split: str, result: dict) -> str:
    return (f"{name} {split}: accuracy {100 * result['accuracy']:.2f}%  "
            f"macro-F1 {100 * result['macro_f1']:.2f}%  ({result['examples']:,} examples, "
            f"{result['truncated']} truncated, {result['seconds']:.1f} s)\n"
            f"  parameters {result['parameters'] / 1e6:.1f} M, "
            f"{result['flops_per_example'] / 1e9:.3f} GFLOPs per example (analytic, mean)")


def format_quality(name: str, records: list[dict]) -> str:
    """export's check: dev accuracy of each ratio and exit against the uncompressed model."""
    reference = records[0]["uncompressed_dev_accuracy"]
    lines = [f"{name} dev accuracy against k=1, every layer run ({100 * reference:.2f}%):"]
    lines += [f"  {r['name']:32} {100 * r['dev_accuracy']:6.2f}%  {0.0 - r['points_lost']:+6.2f} points"
              f"{'  (more than 2 lost)' if r['points_lost'] > QUALITY_LOSS_POINTS else ''}" for r in records]
    return "\n".join(lines)


def format_ratios(name: str, split: str, results: list[dict]) -> str:
    lines = [f"{name} {split} at each compression ratio k (FFN on n/k merged vectors):",
             "  k  accuracy  macro-F1  FLOPs vs k=1"]
    lines += [f"  {row['ratio']}  {100 * row['accuracy']:7.2f}  {100 * row['macro_f1']:8.2f}  "
              f"{row['flops']:11.3f}" for row in results]
    return "\n".join(lines)


def format_calibration(task: TaskData, checkpoint: Path, result: dict) -> str:
    lines = [f"{task.name}: thresholds calibrated on dev ({len(task.dev):,}), scored on test "
             f"({len(task.test):,}); written to {checkpoint}/exits.json",
             "  drop  threshold  dev acc  test acc  mean exit  GFLOPs/example"]
    lines += [f"  {100 * row['max_drop']:4.1f}  {row['threshold']:9.4f}  "
              f"{100 * row['dev']['accuracy']:7.2f}  {100 * row['test']['accuracy']:8.2f}  "
              f"{row['test']['mean_exit_layer']:9.2f}  {row['test']['mean_flops'] / 1e9:14.3f}"
              for row in result["thresholds"]]
    return "\n".join(lines)
