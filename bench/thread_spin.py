"""How much torch's idle OpenMP threads cost an ExecuTorch call beside them (issue 17).

    python bench/thread_spin.py [--lengths 128 256] [--seconds 5] [--rounds 3] [--eager-every 0]

The ExecuTorch runtime runs XNNPACK on its own threadpool; the Python process that calls it also
holds torch's OpenMP pool, woken by any torch op: the bindings' clone of each output
(`clone_outputs=True`, their default) or a PyTorch model timed beside it, as in bench/compare.py's
interleaved rounds. libgomp's threads then spin for a while before they sleep, on the same cores
XNNPACK's threads want next. An app on a phone has no torch, so no spinning pool.

The uncompressed mr model's layer 0 (k = 1) is lowered once, then called in a loop for `--seconds`
in fresh processes, alternating three settings:
- "bindings' clone": the bindings' default call, libgomp's default wait policy;
- "numpy copy": our runtime's call (runtime/bundle.py: outputs not cloned by torch, copied by numpy);
- "passive": the bindings' default call under OMP_WAIT_POLICY=PASSIVE (idle threads sleep at once),
  which bench/compare.py sets since it also times PyTorch models between the calls.
With `--eager-every N` each loop also runs the layer in PyTorch eager once every N calls. It prints
the median ms per ExecuTorch call per setting and length, and the ratio to the bindings' default.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# name -> (environment, our runtime's call or the bindings' default)
SETTINGS = {"bindings' clone": ({}, False), "numpy copy": ({}, True),
            "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, False)}
MAX_LENGTH = 256


def layer():
    from edge_variator.defaults import SHIPPED_ADAPTER
    from edge_variator.export.pieces import XnnpackLayer
    from edge_variator.task import load_task

    return XnnpackLayer(load_task(SHIPPED_ADAPTER)[0].encoder.layers[0], 1).eval()


def lower(pte: Path) -> None:
    from edge_variator.export.executorch import to_pte
    from edge_variator.export.pieces import export_piece

    pte.write_bytes(to_pte({"layer_0_k1": export_piece("layer_0_k1", layer(), 384, MAX_LENGTH)}))


def loop(pte: Path, length: int, seconds: float, ours: bool, eager_every: int) -> None:
    """Child: ExecuTorch calls for `seconds`, a PyTorch one every `eager_every`; prints each call's ms."""
    import torch

    from edge_variator.export.pieces import example_inputs
    from edge_variator.runtime.bundle import open_program

    method = open_program(pte).load_method("layer_0_k1")
    call = method.execute if ours else method._method  # ours, or the bindings' own (cloning) call
    eager, inputs = layer(), list(example_inputs("layer_0", 384, length))
    times, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        began = time.perf_counter()
        call(inputs)
        times.append(1000 * (time.perf_counter() - began))
        if eager_every and len(times) % eager_every == 0:
            with torch.no_grad():
                eager(*inputs)
    print(" ".join(f"{t:.4f}" for t in times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3, help="each setting this many times, alternating")
    parser.add_argument("--eager-every", type=int, default=0, help="a PyTorch call every N (0: none)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        pte, length, seconds, ours = args.child
        loop(Path(pte), int(length), float(seconds), ours == "ours", args.eager_every)
        return
    with tempfile.TemporaryDirectory() as scratch:
        pte = Path(scratch) / "layer.pte"
        lower(pte)
        print("ExecuTorch layer_0_k1 (uncompressed mr, batch 1): median ms per call over every round"
              + (f", a PyTorch call every {args.eager_every}" if args.eager_every else ""))
        for length in args.lengths:
            samples: dict[str, list[float]] = {name: [] for name in SETTINGS}
            for _ in range(args.rounds):
                for name, (env, ours) in SETTINGS.items():
                    command = [sys.executable, __file__, "--eager-every", str(args.eager_every), "--child",
                               str(pte), str(length), str(args.seconds), "ours" if ours else "bindings"]
                    child = subprocess.run(command, env={**os.environ, **env}, check=True,
                                           capture_output=True, text=True)
                    samples[name] += [float(t) for t in child.stdout.split()[3:]]  # 3 warm-up calls
            base = statistics.median(samples["bindings' clone"])
            for name, times in samples.items():
                median = statistics.median(times)
                print(f"{length:4} tokens  {name:15} {median:7.3f} ms  {median / base:5.2f}x  "
                      f"({len(times)} calls)")


if __name__ == "__main__":
    main()
