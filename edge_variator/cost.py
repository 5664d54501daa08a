"""Analytic cost of one example: FLOPs by component as a function of sequence length, and sizes.

A multiply-accumulate counts 2 FLOPs; LayerNorm, softmax, GELU and embedding lookups are left
out (under 1% at these shapes). Later stages add their own terms (plugins, exits) on top.
"""

from __future__ import annotations

from torch import nn

from edge_variator.encoder import EncoderConfig


def linear_flops(tokens: int, fan_in: int, fan_out: int) -> int:
    return 2 * tokens * fan_in * fan_out


def attention_flops(config: EncoderConfig, seq: int) -> int:
    """Q, K, V and output projections, plus scores and the weighted sum over all heads."""
    inner = config.heads * config.head_dim
    projections = 3 * linear_flops(seq, config.hidden, inner) + linear_flops(seq, inner, config.hidden)
    return projections + 2 * (2 * seq * seq * inner)


def ffn_flops(config: EncoderConfig, tokens: int) -> int:
    """The FFN on `tokens` vectors (a compression plugin runs it on seq / k of them)."""
    return linear_flops(tokens, config.hidden, config.intermediate) + linear_flops(
        tokens, config.intermediate, config.hidden
    )


def plugin_flops(config: EncoderConfig, seq: int, ratio: int, bottleneck: int = 64) -> dict[str, int]:
    """One compression plugin's own work: window scores + weighted sum, then the restore adapter."""
    merged = seq // ratio
    return {
        "merge": linear_flops(merged, ratio * config.hidden, ratio) + 2 * seq * config.hidden,
        # the adapter's input half that reads the FFN output runs before the repeat (n/k rows)
        "restore": linear_flops(merged, config.hidden, bottleneck)
        + linear_flops(seq, config.hidden, bottleneck) + linear_flops(seq, bottleneck, config.hidden),
    }


def encoder_flops(config: EncoderConfig, seq: int, num_labels: int = 2, ratio: int = 1,
                  plugged_layers: int | None = None, bottleneck: int = 64,
                  exit_layer: int | None = None, last_exit_pooler: bool = False) -> dict[str, int]:
    """FLOPs per example of `seq` tokens, by component, and their total.

    With `ratio` > 1, `plugged_layers` layers (default: all) run their FFN on seq / ratio merged
    vectors and pay for their plugin's merge and restore. With `exit_layer` (a multi-exit model
    that stopped there), only that many layers run, each followed by its exit classifier (no
    pooler, but for the last exit with `last_exit_pooler`); plugins are then assumed on every layer.
    """
    layers = config.layers if exit_layer is None else exit_layer
    if not 1 <= layers <= config.layers:
        raise ValueError(f"exit_layer must be in 1..{config.layers}, not {exit_layer}")
    plugged = 0 if ratio == 1 else (layers if plugged_layers is None else min(plugged_layers, layers))
    plugin = plugin_flops(config, seq, ratio, bottleneck) if plugged else {"merge": 0, "restore": 0}
    flops = {
        # lookups and one LayerNorm are free; a factorized word embedding pays its projection, and
        # ELECTRA's narrower embeddings theirs up to the layers' width
        "embeddings": ((linear_flops(seq, config.embedding_rank, config.embedding_width)
                        if config.embedding_rank else 0)
                       + (linear_flops(seq, config.embedding_size, config.hidden)
                          if config.embedding_size else 0)),
        "attention": layers * attention_flops(config, seq),
        "ffn": (layers - plugged) * ffn_flops(config, seq) + plugged * ffn_flops(config, seq // ratio),
        "plugin_merge": plugged * plugin["merge"],
        "plugin_restore": plugged * plugin["restore"],
        "pooler": (linear_flops(1, config.hidden, config.hidden)
                   if exit_layer is None or (last_exit_pooler and exit_layer == config.layers) else 0),
        "classifier": (1 if exit_layer is None else layers) * linear_flops(1, config.hidden, num_labels),
    }
    flops["total"] = sum(flops.values())
    return flops


def parameter_count(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def average_flops(config: EncoderConfig, padded_lengths: list[int], num_labels: int = 2,
                  exit_layers: list[int] | None = None, **options: int) -> float:
    """Mean total FLOPs per example over a data set, each example at the length it runs at (and,
    for a multi-exit model, stopping at its own exit layer)."""
    exits = exit_layers or [None] * len(padded_lengths)
    totals = [encoder_flops(config, n, num_labels, exit_layer=e, **options)["total"]
              for n, e in zip(padded_lengths, exits, strict=True)]
    return sum(totals) / len(totals)
