"""Fixed-length layer methods against the dynamic-length one (issue 17, item 2), in the ExecuTorch runtime.

    python bench/fixed_length.py [--ratios 1 4] [--lengths 16 64 128 256] [--repeats 30]

The default model's layer 0 at each ratio is exported at the dynamic length every bundle uses
(multiples of 8 from 16 to 256) and once per length with no symbolic size, all into one program
(XNNPACK; the shared weights stored once). It prints, from that one run:
- size: the dynamic-only program against the one that adds every fixed-length method;
- lowering time of the dynamic-only program and of the whole one;
- per method, its XNNPACK partitions and the kernels it runs outside them (ops.program_ops);
- latency at each length, the dynamic method and the fixed one called interleaved on the same
  inputs, median and lower quartile of the rounds, and fixed / dynamic.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import torch
from torch.export import export

from edge_variator.defaults import SHIPPED_ADAPTER, SHIPPED_PLUGINS
from edge_variator.export.bundle import load_model
from edge_variator.export.executorch import to_pte
from edge_variator.export.pieces import example_inputs, export_piece, pieces
from edge_variator.ops import program_ops
from edge_variator.runtime.bundle import open_program
from edge_variator.timing import interleaved_ms

MAX_LENGTH = 256


def lowered(programs: dict, path: Path) -> tuple[Path, float]:
    """`programs` lowered into one .pte at `path`, and the seconds that took."""
    started = time.perf_counter()
    path.write_bytes(to_pte(programs))
    return path, time.perf_counter() - started


def exported(model, ratios: list[int], lengths: list[int]) -> tuple[dict, dict]:
    """Layer 0 at each ratio exported at the dynamic length, and at each of `lengths` fixed."""
    hidden = model.encoder.config.hidden
    every_piece = pieces(model, xnnpack=True)
    dynamic, fixed = {}, {}
    with torch.no_grad():
        for k in ratios:
            module = every_piece[f"layer_0_k{k}"]
            dynamic[f"layer_0_k{k}"] = export_piece(f"layer_0_k{k}", module, hidden, MAX_LENGTH)
            for length in lengths:
                fixed[f"layer_0_k{k}_n{length}"] = export(module, example_inputs("layer_0", hidden, length))
    return dynamic, fixed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--ratios", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 128, 256])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    model, _, _ = load_model(SHIPPED_ADAPTER, SHIPPED_PLUGINS)
    hidden = model.encoder.config.hidden
    dynamic, fixed = exported(model, args.ratios, args.lengths)
    with tempfile.TemporaryDirectory() as scratch:
        dynamic_pte, dynamic_s = lowered(dynamic, Path(scratch) / "dynamic.pte")
        dynamic = exported(model, args.ratios, [])[0]  # lowering consumes an exported program
        whole_pte, whole_s = lowered({**dynamic, **fixed}, Path(scratch) / "whole.pte")
        print(f"size: dynamic only {dynamic_pte.stat().st_size / 1e6:.2f} MB ({len(dynamic)} methods), "
              f"with {len(fixed)} fixed-length methods {whole_pte.stat().st_size / 1e6:.2f} MB")
        print(f"lowering: dynamic only {dynamic_s:.1f} s, whole {whole_s:.1f} s "
              f"({(whole_s - dynamic_s) / len(fixed):.1f} s per fixed-length method)")
        print("\nmethod               partitions  kernels outside XNNPACK")
        for name, ops in program_ops(whole_pte).items():
            outside = ", ".join(f"{op} x{n}" for op, n in sorted(ops["outside"].items()))
            print(f"{name:20} {sum(ops['partitions'].values()):10}  {outside}")
        program = open_program(whole_pte)
        methods = {name: program.load_method(name) for name in [*dynamic, *fixed]}
        print(f"\nbatch 1, {args.repeats} interleaved rounds: median (lower quartile) ms")
        print(" tokens  ratio  dynamic          fixed            fixed/dynamic")
        for length in args.lengths:
            inputs = list(example_inputs("layer_0", hidden, length))
            calls = {}
            for k in args.ratios:
                calls[("dynamic", k)] = partial(methods[f"layer_0_k{k}"].execute, inputs)
                calls[("fixed", k)] = partial(methods[f"layer_0_k{k}_n{length}"].execute, inputs)
            times = interleaved_ms(calls, args.repeats)
            for k in args.ratios:
                row = {}
                for kind in ("dynamic", "fixed"):
                    samples = times[(kind, k)]
                    row[kind] = (statistics.median(samples), statistics.quantiles(samples, n=4)[0])
                (dynamic_ms, dynamic_q1), (fixed_ms, fixed_q1) = row["dynamic"], row["fixed"]
                print(f"{length:7}  {k:5}  {dynamic_ms:6.3f} ({dynamic_q1:6.3f})  "
                      f"{fixed_ms:6.3f} ({fixed_q1:6.3f})  {fixed_ms / dynamic_ms:13.3f}")


if __name__ == "__main__":
    main()
