"""Where a plugged layer's time goes: its attention half (what no ratio touches) and its FFN half
at k = 1, 2, 4, 8, each exported as its own method beside the whole layer methods, against their
analytic FLOPs (cost.py).

    python bench/layer_parts.py [--lengths 128 256] [--repeats 60]

Model: mr's shipped quarter model with its k = 2, 4, 8 plugins (the report's "ours"), layer 0, lowered
as a bundle lowers it. The attention half is attention + residual + LayerNorm; the FFN half is the
FFN (with its plugin at k > 1) + residual + LayerNorm. All methods are timed interleaved in one
process, batch 1. If the attention half runs at fewer GFLOP/s than the FFN, time cannot fall with k
as fast as FLOPs do: the last column is the layer's ratio to k = 1 that the halves' own times give.

The plugin's own parts, at k > 1: the FFN half again with its merge replaced by each window's first
vector (no scores, no weighted sum), with its restore replaced by the bare broadcast (no adapter),
and with both (the core: the FFN on n/k rows, residual and LayerNorm). Their differences to the
whole FFN half are what the merge and the adapter cost; the core gives the layer's ratio to k = 1
if the plugin's work were free, a floor no faster merge or restore can go under.

And each half with the model's own LayerNorm in place of MatmulLayerNorm: a native_layer_norm that
XNNPACK leaves to the runtime's optimized kernel (one vectorized op, but a delegate island of its
own), against the matmul form's passes inside XNNPACK.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export import layer_flops  # noqa: E402  (bench/ is scripts, not a package)
from restore import plugin_step_as  # noqa: E402

from edge_variator.cost import attention_flops, ffn_flops, plugin_flops  # noqa: E402
from edge_variator.encoder import additive_mask  # noqa: E402
from edge_variator.export.bundle import load_model  # noqa: E402
from edge_variator.export.executorch import to_pte  # noqa: E402
from edge_variator.export.pieces import XnnpackLayer, export_piece, pieces  # noqa: E402
from edge_variator.plugins import RATIOS, CompressionPlugin  # noqa: E402
from edge_variator.runtime.bundle import open_program  # noqa: E402
from edge_variator.timing import interleaved_ms  # noqa: E402

MODEL = Path("models/mr/quarter")
MAX_LENGTH = 256
KS = (1, *RATIOS)


class Half(nn.Module):
    """One half of a layer method (XnnpackLayer.attention_half or ffn_half) as a method of its own."""

    def __init__(self, layer: XnnpackLayer, half: str):
        super().__init__()
        self.layer, self.half = layer, half

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return getattr(self.layer, self.half)(hidden, additive_mask(attention_mask, hidden.dtype))


def first_of_window(self: CompressionPlugin, hidden: torch.Tensor, additive_mask: torch.Tensor | None
                    ) -> torch.Tensor:
    """A merge that costs nothing but a copy: each window's first vector."""
    batch, seq, dim = hidden.shape
    return hidden.reshape(batch, seq // self.ratio, self.ratio, dim)[:, :, 0]


def bare_broadcast(self: CompressionPlugin, merged_output: torch.Tensor,
                   hidden: torch.Tensor) -> torch.Tensor:
    """A restore without the adapter: each FFN output broadcast to its k tokens."""
    batch, seq, dim = hidden.shape
    return (merged_output.unsqueeze(2) + hidden.new_zeros(1, 1, self.ratio, 1)).reshape(batch, seq, dim)


WITHOUT = {"no_merge": {"merge": first_of_window}, "no_adapter": {"restore": bare_broadcast},
           "core": {"merge": first_of_window, "restore": bare_broadcast}}


def with_native_norms(own: nn.Module, ratio: int) -> XnnpackLayer:
    """XnnpackLayer of `own` (weights shared) with its own nn.LayerNorms in place of MatmulLayerNorms."""
    native = XnnpackLayer(own, ratio)
    native.attention_norm, native.ffn_norm = own.attention_norm, own.ffn_norm
    return native


def export_without(name: str, module: nn.Module, steps: dict, hidden: int):
    with ExitStack() as stack:
        for step, function in steps.items():
            stack.enter_context(plugin_step_as(step, function))
        return export_piece(name, module.eval(), hidden, MAX_LENGTH)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=60)
    args = parser.parse_args()
    model = load_model(MODEL, MODEL / "plugins")[0]
    config = model.encoder.config
    every = pieces(model, xnnpack=True)
    modules = {"attention": Half(every["layer_0_k1"], "attention_half")}
    for k in KS:
        modules[f"ffn_k{k}"] = Half(every[f"layer_0_k{k}"], "ffn_half")
        modules[f"layer_k{k}"] = every[f"layer_0_k{k}"]
    # export_piece names the inputs by method name: anything but "embed" takes (hidden, mask)
    programs = {name: export_piece(name, module.eval(), config.hidden, MAX_LENGTH)
                for name, module in modules.items()}
    own = model.encoder.layers[0]
    natives = {"attention_native_norm": Half(with_native_norms(own, 1), "attention_half")}
    for k in (1, RATIOS[-1]):
        natives[f"ffn_k{k}_native_norm"] = Half(with_native_norms(own, k), "ffn_half")
    programs.update({name: export_piece(name, module.eval(), config.hidden, MAX_LENGTH)
                     for name, module in natives.items()})
    for k in RATIOS:
        for variant, steps in WITHOUT.items():
            name = f"ffn_k{k}_{variant}"
            programs[name] = export_without(name, modules[f"ffn_k{k}"], steps, config.hidden)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "parts.pte"
        path.write_bytes(to_pte(programs))
        program = open_program(path)
        methods = {name: program.load_method(name) for name in programs}
        for length in args.lengths:
            torch.manual_seed(0)
            inputs = [torch.randn(1, length, config.hidden), torch.ones(1, length, dtype=torch.long)]
            times = interleaved_ms({name: partial(m.execute, inputs) for name, m in methods.items()},
                                   args.repeats, warmup=5)
            ms = {name: statistics.median(samples) for name, samples in times.items()}
            flops = {"attention": attention_flops(config, length)}
            analytic = {}  # the layer's k/1
            for k in KS:
                plugin = sum(plugin_flops(config, length, k).values()) if k > 1 else 0
                flops[f"ffn_k{k}"] = ffn_flops(config, length // k) + plugin
                analytic[k] = layer_flops(config, length, k) / layer_flops(config, length, 1)
            print(f"{length} tokens: median ms, GFLOP/s (analytic FLOPs), batch 1, {args.repeats} rounds")
            print(f"  attention half   {ms['attention']:.3f} ms  "
                  f"{flops['attention'] / ms['attention'] / 1e6:6.1f} GFLOP/s")
            print("  k   FFN half ms  GFLOP/s   layer ms   layer k/1   halves' k/1   analytic k/1")
            for k in KS:
                ffn = f"ffn_k{k}"
                halves = (ms["attention"] + ms[ffn]) / (ms["attention"] + ms["ffn_k1"])
                print(f"  {k}   {ms[ffn]:11.3f} {flops[ffn] / ms[ffn] / 1e6:8.1f} {ms[f'layer_k{k}']:10.3f} "
                      f"{ms[f'layer_k{k}'] / ms['layer_k1']:11.2f} {halves:13.2f} {analytic[k]:14.2f}")
            print("  the plugin's parts, ms: merge and adapter (what the FFN half loses without each), "
                  "the core without both;\n  the layer's k/1 from the halves were the plugin free, and that "
                  "over the analytic k/1")
            print("  k   merge   adapter   core    free k/1   over the analytic")
            for k in RATIOS:
                ffn = f"ffn_k{k}"
                free = (ms["attention"] + ms[f"{ffn}_core"]) / (ms["attention"] + ms["ffn_k1"])
                merge, adapter = ms[ffn] - ms[f"{ffn}_no_merge"], ms[ffn] - ms[f"{ffn}_no_adapter"]
                print(f"  {k}   {merge:5.3f} {adapter:9.3f} {ms[f'{ffn}_core']:6.3f} {free:11.2f} "
                      f"{free / analytic[k]:13.2f}x")
            print("  LayerNorm as the runtime's own kernel (outside XNNPACK) against MatmulLayerNorm, ms:")
            for half in ("attention", "ffn_k1", f"ffn_k{RATIOS[-1]}"):
                print(f"  {half:10s} {ms[f'{half}_native_norm']:.3f} against {ms[half]:.3f} "
                      f"({ms[f'{half}_native_norm'] / ms[half]:.2f}x)")


if __name__ == "__main__":
    main()
