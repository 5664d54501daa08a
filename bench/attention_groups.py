"""Attention with its heads in groups against all heads at once, in the ExecuTorch runtime (issue 17).

    python bench/attention_groups.py [--groups 1 2 4 12] [--lengths 64 128 256] [--repeats 40]

Our uncompressed export falls behind ONNX Runtime only at long inputs (0.99x at 128 tokens, 1.32x
at 256 in docs/RESULTS.md). At 256 tokens one layer's attention scores for its 12 heads are
12 x 256 x 256 floats, 3 MB, more than a core's L2 cache, and XNNPACK runs the bmm, the mask's add,
the softmax and the second bmm one after another over all of them. Grouping the heads makes each
group's scores, masked, softmaxed and used before the next group's are made.

The uncompressed mr model's layer 0 (k = 1) is exported once per grouping at the dynamic length,
all into one program; it prints each method's XNNPACK partitions and the kernels outside them, its
largest difference from PyTorch, and the median and lower quartile of interleaved rounds per length
with the ratio to one group (all heads at once, what bundles export today).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from functools import partial
from pathlib import Path

import torch
from torch import nn

from edge_variator.defaults import SHIPPED_ADAPTER
from edge_variator.encoder import SelfAttention
from edge_variator.export.executorch import to_pte
from edge_variator.export.pieces import XnnpackLayer, example_inputs, export_piece
from edge_variator.ops import program_ops
from edge_variator.runtime.bundle import open_program
from edge_variator.task import load_task
from edge_variator.timing import interleaved_ms

MAX_LENGTH = 256


class GroupedBmmAttention(nn.Module):
    """pieces.BmmAttention with its heads in `groups`, each with its own slices of the four
    projections (slicing the activations instead leaves the slices outside XNNPACK, which refuses
    them at a symbolic length); the output is the sum of the groups' output projections."""

    def __init__(self, attention: SelfAttention, groups: int):
        super().__init__()
        self.heads, self.head_dim = attention.heads // groups, attention.head_dim
        width = self.heads * self.head_dim

        def part(linear: nn.Linear, group: int, rows: bool) -> nn.Linear:
            span = slice(group * width, (group + 1) * width)
            weight = linear.weight[span] if rows else linear.weight[:, span]
            piece = nn.Linear(weight.shape[1], weight.shape[0], bias=rows or group == 0)
            piece.weight = nn.Parameter(weight.detach().clone())
            if piece.bias is not None:
                piece.bias = nn.Parameter((linear.bias[span] if rows else linear.bias).detach().clone())
            return piece

        inputs = (attention.query, attention.key, attention.value)
        self.groups = nn.ModuleList(
            nn.ModuleList([*(part(linear, g, True) for linear in inputs), part(attention.output, g, False)])
            for g in range(groups))

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        batch, seq, _ = hidden.shape

        def split_heads(x: torch.Tensor) -> torch.Tensor:
            return (x.view(batch, seq, self.heads, self.head_dim).transpose(1, 2)
                    .reshape(batch * self.heads, seq, self.head_dim))

        mask = additive_mask.expand(batch, self.heads, 1, seq).reshape(batch * self.heads, 1, seq)
        output = None
        for query, key, value, project in self.groups:
            scores = torch.bmm(split_heads(query(hidden)) * self.head_dim ** -0.5,
                               split_heads(key(hidden)).transpose(1, 2)) + mask
            context = torch.bmm(torch.softmax(scores, dim=-1), split_heads(value(hidden)))
            context = context.view(batch, self.heads, seq, self.head_dim).transpose(1, 2)
            part = project(context.reshape(batch, seq, self.heads * self.head_dim))
            output = part if output is None else output + part
        return output


def grouped_layers(groups: list[int]) -> dict[str, XnnpackLayer]:
    """Layer 0 of the uncompressed mr model, once per head grouping."""
    model = load_task(SHIPPED_ADAPTER)[0].eval()
    layers = {}
    for count in groups:
        layer = XnnpackLayer(model.encoder.layers[0], 1)
        if count > 1:  # one group: the bundles' own BmmAttention
            layer.attention = GroupedBmmAttention(model.encoder.layers[0].attention, count)
        layers[f"layer_0_g{count}"] = layer.eval()
    return layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 2, 4, 12])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    layers = grouped_layers(args.groups)
    hidden = next(iter(layers.values())).attention_norm.weight.shape[0]
    programs = {name: export_piece(name, layer, hidden, MAX_LENGTH) for name, layer in layers.items()}
    with tempfile.TemporaryDirectory() as scratch:
        pte = Path(scratch) / "groups.pte"
        pte.write_bytes(to_pte(programs))
        print("method          partitions  kernels outside XNNPACK")
        for name, ops in program_ops(pte).items():
            outside = ", ".join(f"{op} x{n}" for op, n in sorted(ops["outside"].items()))
            print(f"{name:15} {sum(ops['partitions'].values()):10}  {outside}")
        program = open_program(pte)
        methods = {name: program.load_method(name) for name in layers}
        print(f"\nbatch 1, {args.repeats} interleaved rounds: median (lower quartile) ms, and against "
              "one group (all heads at once)")
        for length in args.lengths:
            inputs = list(example_inputs("layer_0", hidden, length))
            with torch.no_grad():
                reference = layers[f"layer_0_g{args.groups[0]}"](*inputs)
            for name, method in methods.items():
                difference = (method.execute(inputs)[0] - reference).abs().max().item()
                print(f"{length:4} tokens  {name}: largest difference from PyTorch {difference:.1e}")
            calls = {name: partial(method.execute, inputs) for name, method in methods.items()}
            times = interleaved_ms(calls, args.repeats)
            base = statistics.median(times[f"layer_0_g{args.groups[0]}"])
            for name, samples in times.items():
                median, lower = statistics.median(samples), statistics.quantiles(samples, n=4)[0]
                print(f"{length:4} tokens  {name:12} {median:7.3f} ({lower:7.3f})  {median / base:5.2f}x")


if __name__ == "__main__":
    main()
