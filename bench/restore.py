"""The plugin's restore as a broadcast add (plugins.CompressionPlugin.restore) against the concat
that repeated each merged vector k times before it: XNNPACK partitions and the time of one layer
method per ratio, against k = 1 and against the analytic FLOP ratio.

    python bench/restore.py [--lengths 128 256] [--repeats 60]

Model: mr's shipped quarter model with its k = 2, 4, 8 plugins (the report's "ours"), layer 0 at
every ratio, lowered as a bundle lowers it. Both programs hold the same weights and give the same
outputs (checked here); all eight methods are timed interleaved in one process, batch 1, and each
ratio to k = 1 is taken within its own program. Time it on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export import layer_flops  # noqa: E402  (bench/ is scripts, not a package)

from edge_variator.export.bundle import load_model  # noqa: E402
from edge_variator.export.executorch import to_pte  # noqa: E402
from edge_variator.export.pieces import export_piece, pieces  # noqa: E402
from edge_variator.ops import program_ops  # noqa: E402
from edge_variator.plugins import RATIOS, CompressionPlugin  # noqa: E402
from edge_variator.runtime.bundle import open_program  # noqa: E402
from edge_variator.timing import interleaved_ms  # noqa: E402

MODEL = Path("models/mr/quarter")
MAX_LENGTH = 256
METHODS = [f"layer_0_k{k}" for k in (1, *RATIOS)]


def concat_restore(self: CompressionPlugin, merged_output: torch.Tensor,
                   hidden: torch.Tensor) -> torch.Tensor:
    """The restore before: each merged row repeated k times by a concat along d and a reshape."""
    def repeat_rows(x: torch.Tensor) -> torch.Tensor:
        batch, rows, dim = x.shape
        return torch.cat([x] * self.ratio, dim=-1).reshape(batch, rows * self.ratio, dim)

    bottleneck = repeat_rows(self.adapter_from_merged(merged_output)) + self.adapter_from_token(hidden)
    return repeat_rows(merged_output) + self.adapter_out(torch.tanh(bottleneck))


@contextmanager
def plugin_step_as(step: str, function):
    """CompressionPlugin.<step> ("merge" or "restore") replaced while a program is traced."""
    kept = getattr(CompressionPlugin, step)
    setattr(CompressionPlugin, step, function)
    try:
        yield
    finally:
        setattr(CompressionPlugin, step, kept)


def build(model, folder: Path, variant: str) -> Path:
    every = pieces(model, xnnpack=True)
    hidden = model.encoder.config.hidden
    programs = {name: export_piece(name, every[name], hidden, MAX_LENGTH) for name in METHODS}
    path = folder / f"{variant}.pte"
    path.write_bytes(to_pte(programs))
    return path


def quartile(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=4)[0] if len(samples) > 1 else samples[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=60)
    args = parser.parse_args()
    model = load_model(MODEL, MODEL / "plugins")[0]
    config = model.encoder.config
    with tempfile.TemporaryDirectory() as scratch:
        with plugin_step_as("restore", concat_restore):
            paths = {"concat": build(model, Path(scratch), "concat")}
        paths["broadcast"] = build(model, Path(scratch), "broadcast")
        print("XNNPACK partitions (ops outside them):")
        for variant, path in paths.items():
            ops = program_ops(path)
            print(f"  {variant:9} " + "; ".join(
                f"k={name[-1]} {sum(ops[name]['partitions'].values())} "
                f"({', '.join(f'{op} x{n}' for op, n in sorted(ops[name]['outside'].items()))})"
                for name in METHODS))
        methods = {(variant, name): open_program(path).load_method(name)
                   for variant, path in paths.items() for name in METHODS}
        print(f"batch 1, {args.repeats} interleaved repeats; median ms, then k / k=1 as median and lower "
              "quartile, and that over the analytic FLOP ratio")
        for length in args.lengths:
            torch.manual_seed(0)
            inputs = [torch.randn(1, length, config.hidden), torch.ones(1, length, dtype=torch.long)]
            outputs = {key: torch.as_tensor(method.execute(inputs)[0]) for key, method in methods.items()}
            for name in METHODS:
                gap = float((outputs["concat", name] - outputs["broadcast", name]).abs().max())
                if gap > 1e-5:
                    raise SystemExit(f"{name}: the two restores differ by {gap:.2e} at {length} tokens")
            times = interleaved_ms({key: partial(method.execute, inputs) for key, method in methods.items()},
                                   args.repeats, warmup=5)
            print(f"  {length} tokens   k   median ms   k/1 median   k/1 lower quartile   over the analytic")
            for variant in paths:
                base = times[variant, METHODS[0]]
                for ratio, name in zip((1, *RATIOS), METHODS, strict=True):
                    ours = times[variant, name]
                    to_k1 = statistics.median(ours) / statistics.median(base)
                    analytic = layer_flops(config, length, ratio) / layer_flops(config, length, 1)
                    lower = quartile(ours) / quartile(base)
                    print(f"  {variant:12} {ratio:3} {statistics.median(ours):10.3f} {to_k1:12.2f} "
                          f"{lower:20.2f}   {to_k1 / analytic:.2f}x of {analytic:.2f}")


if __name__ == "__main__":
    main()
