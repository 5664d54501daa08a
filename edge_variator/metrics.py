"""Classification metrics, computed from predicted and true label ids."""

from __future__ import annotations

from collections.abc import Sequence


def classification_metrics(predicted: Sequence[int], true: Sequence[int], num_labels: int) -> dict:
    """Accuracy and macro-F1 (mean F1 over the labels that occur in either list, as sklearn)."""
    if len(predicted) != len(true) or not true:
        raise ValueError(f"need equal, non-empty predictions and labels ({len(predicted)}, {len(true)})")
    correct = sum(p == t for p, t in zip(predicted, true, strict=True))
    f1s = []
    for label in range(num_labels):
        tp = sum(p == label and t == label for p, t in zip(predicted, true, strict=True))
        predicted_count = sum(p == label for p in predicted)
        true_count = sum(t == label for t in true)
        if predicted_count + true_count:
            f1s.append(2 * tp / (predicted_count + true_count))
    return {"accuracy": correct / len(true), "macro_f1": sum(f1s) / len(f1s)}
