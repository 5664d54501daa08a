"""When an exit is confident: its uncertainty, the softmax entropy or 1 - max probability, is under
the threshold. Shared by the runners, the trainers' calibration and (ported) the phone apps."""

from __future__ import annotations

import torch

CRITERIA = ("entropy", "max_prob")


def uncertainty(logits: torch.Tensor, criterion: str = "entropy") -> torch.Tensor:
    """Lower is more confident: softmax entropy (nats) or 1 - max probability, over the last dim."""
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    if criterion == "entropy":
        return -(log_probs.exp() * log_probs).sum(-1)
    if criterion == "max_prob":
        return 1 - log_probs.exp().max(-1).values
    raise ValueError(f"criterion must be one of {CRITERIA}, not {criterion!r}")
