"""The op-level profile (edge_variator/ops.py) of the default bundle and of the uncompressed mr
export beside it: per method, its XNNPACK partitions and the kernels outside them, and perf's split
of its time into XNNPACK, portable kernels, copies, the runtime and the Python host.

    python bench/ops.py [--lengths 128 256] [--seconds 3]

Needs Linux perf (Debian's linux-perf). The uncompressed export is cached like bench/compare.py's
(about 8 minutes the first time on 2 cores). Time it on a quiet machine: the split is a share of
samples, steadier than a latency, but ms/call is a wall time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import bundle_of, task_models  # noqa: E402

from edge_variator.defaults import default_bundle  # noqa: E402
from edge_variator.ops import default_ops_methods, format_ops  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128])
    parser.add_argument("--seconds", type=float, default=3.0, help="perf sampling per method and length")
    args = parser.parse_args()
    ours, _ = default_bundle()
    print(format_ops(ours, default_ops_methods(ours), args.lengths, args.seconds))
    models = task_models("mr", Path("runs"))
    if isinstance(models, str):
        raise SystemExit(f"mr: {models}")
    uncompressed = bundle_of(models, "uncompressed", max(128, *args.lengths))
    print(format_ops(uncompressed, ["layer_0_k1"], args.lengths, args.seconds))


if __name__ == "__main__":
    main()
