"""Latency of the default encoder at compression ratios 1, 2, 4, 8, side by side in one run.

    python bench/plugins.py [--lengths 128 256] [--repeats 30]

Batch 1 (as on a phone), PyTorch eager on this machine's CPU threads. The ratios are timed
interleaved (k = 1, 2, 4, 8, 1, 2, ...) so drift in the machine's load hits them alike; medians
and min/max are printed with the analytic FLOPs ratio next to the measured one. Plugin weights do
not change the cost, so untrained plugin sets are used: the numbers hold for trained ones.
"""

from __future__ import annotations

import argparse
import statistics
from functools import partial

import torch

from edge_variator.cost import encoder_flops
from edge_variator.encoder import default_model_dir, load_encoder
from edge_variator.plugins import RATIOS, PluginSet, attach, set_ratio
from edge_variator.timing import interleaved_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    encoder = load_encoder(default_model_dir())
    for ratio in RATIOS:
        attach(encoder, PluginSet.for_backbone(encoder, "bench", ratio), "bench")
    ratios = [1, *RATIOS]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 1, "
          f"{args.repeats} interleaved repeats, median (min-max) ms")
    print("tokens  k  latency ms            ratio k/1  FLOPs ratio")
    for length in args.lengths:
        ids = torch.randint(1000, 2000, (1, length))
        mask = torch.ones_like(ids)
        def at_ratio(ratio: int, ids: torch.Tensor, mask: torch.Tensor) -> None:
            set_ratio(encoder, ratio)  # a flag: timed with the call, it costs nothing next to it
            encoder(ids, mask)

        with torch.inference_mode():
            calls = {ratio: partial(at_ratio, ratio, ids, mask) for ratio in ratios}
            times = interleaved_ms(calls, args.repeats)
        base = statistics.median(times[1])
        base_flops = encoder_flops(encoder.config, length)["total"]
        for ratio in ratios:
            median = statistics.median(times[ratio])
            flops = encoder_flops(encoder.config, length, ratio=ratio)["total"]
            print(f"{length:6}  {ratio}  {median:7.2f} ({min(times[ratio]):6.2f}-{max(times[ratio]):6.2f})"
                  f"  {median / base:9.3f}  {flops / base_flops:11.3f}")


if __name__ == "__main__":
    main()
