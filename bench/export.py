"""Latency of one exported layer method per ratio in the ExecuTorch runtime, fp32 and int8.

    python bench/export.py [--lengths 16 64 128 256] [--repeats 30]

The default model (the shipped mr adapter with its k = 2, 4, 8 plugins) is exported with layer 0
at every ratio, plus a plain GEMM of a layer's biggest shape (tokens x 384 @ 384 x 1536) as the
roofline: XNNPACK's own matmul speed on this machine, measured in the same run. Methods are timed
interleaved (k = 1, 2, 4, 8, gemm, 1, ...), batch 1, medians with min-max; ratios are k / k=1 and
int8 / fp32 of the same method. GFLOP/s use the analytic FLOPs of cost.py.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from edge_variator.cost import encoder_flops, linear_flops
from edge_variator.defaults import SHIPPED_ADAPTER, SHIPPED_PLUGINS
from edge_variator.export.bundle import load_model
from edge_variator.export.executorch import quantized_piece, roofline_gemm, to_pte
from edge_variator.export.pieces import export_piece, pieces
from edge_variator.plugins import RATIOS
from edge_variator.runtime.bundle import open_program
from edge_variator.timing import interleaved_ms, spread

MAX_LENGTH = 256


def layer_flops(config, seq: int, ratio: int) -> int:
    """One layer's share of the analytic count (attention, FFN, plugin) at `seq` tokens."""
    flops = encoder_flops(config, seq, ratio=ratio)
    per_model = flops["attention"] + flops["ffn"] + flops["plugin_merge"] + flops["plugin_restore"]
    return per_model // config.layers


def build(quantize: str, folder: Path) -> Path:
    model, _, _ = load_model(SHIPPED_ADAPTER, SHIPPED_PLUGINS)
    config = model.encoder.config
    every_piece = pieces(model, xnnpack=True)
    chosen = {f"layer_0_k{k}": every_piece[f"layer_0_k{k}"] for k in (1, *RATIOS)}
    if quantize == "int8":  # int8-dynamic, what `int8` means: no calibration text
        programs = {name: quantized_piece(name, module, config.hidden, MAX_LENGTH, static=False)
                    for name, module in chosen.items()}
    else:
        programs = {name: export_piece(name, module, config.hidden, MAX_LENGTH)
                    for name, module in chosen.items()}
    programs["gemm"] = roofline_gemm(config.hidden, config.intermediate, MAX_LENGTH)[1]
    path = folder / f"bench_{quantize}.pte"
    path.write_bytes(to_pte(programs))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 128, 256])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    config = load_model(SHIPPED_ADAPTER)[0].encoder.config
    names = [*(f"layer_0_k{k}" for k in (1, *RATIOS)), "gemm"]
    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        methods = {}
        for quantize in ("fp32", "int8"):
            program = open_program(build("int8" if quantize == "int8" else "none", Path(scratch)))
            methods[quantize] = {name: program.load_method(name) for name in names}
        print(f"exported in {time.perf_counter() - started:.0f} s; batch 1, {args.repeats} interleaved "
              "repeats, median (min-max) ms")
        print(" tokens  method       fp32 ms              k/1   GFLOP/s  %roof   int8 ms    int8/fp32")
        for length in args.lengths:
            hidden = torch.randn(1, length, config.hidden)
            mask = torch.ones(1, length, dtype=torch.long)
            calls = {(q, n): partial(methods[q][n].execute, [hidden] if n == "gemm" else [hidden, mask])
                     for q in methods for n in names}
            times = interleaved_ms(calls, args.repeats)
            median = {key: spread(value)["median_ms"] for key, value in times.items()}
            gemm_flops = linear_flops(length, config.hidden, config.intermediate)
            gemm_rate = gemm_flops / median[("fp32", "gemm")] / 1e6
            for name in names:
                fp32 = times[("fp32", name)]
                if name == "gemm":
                    flops, relative = gemm_flops, "-"
                else:
                    ratio = int(name.rsplit("_k", 1)[1])
                    flops = layer_flops(config, length, ratio)
                    relative = f"{median[('fp32', name)] / median[('fp32', 'layer_0_k1')]:.3f}"
                rate = flops / median[("fp32", name)] / 1e6
                print(f"{length:7}  {name:11} {median[('fp32', name)]:7.3f} "
                      f"({min(fp32):6.3f}-{max(fp32):6.3f})"
                      f"  {relative:>6}  {rate:7.1f}  {100 * rate / gemm_rate:5.0f}%  "
                      f"{median[('int8', name)]:7.3f}  "
                      f"{median[('int8', name)] / median[('fp32', name)]:9.3f}")


if __name__ == "__main__":
    main()
