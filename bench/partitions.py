"""How XNNPACK takes each exported method of the default model: delegate partitions and the ops left
outside them (portable kernels), per method. A structural check, free of timing noise: two exports
with the same counts run the same kernels.

    python bench/partitions.py [--max-length 256]      # ~3 min on 2 cores

The default model is the shipped mr adapter with its k = 2, 4, 8 plugins (layer 0 at every ratio,
the embedding and the classifier), lowered as export/executorch.py's to_pte lowers a bundle.
"""

from __future__ import annotations

import argparse
import collections

from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

from edge_variator.defaults import SHIPPED_ADAPTER, SHIPPED_PLUGINS
from edge_variator.export.bundle import load_model
from edge_variator.export.executorch import export_programs, static_reshapes

METHODS = ("embed", "layer_0_k1", "layer_0_k2", "layer_0_k4", "layer_0_k8", "exit_5")


def op_name(target: object) -> str:
    """aten.view_copy.default -> view_copy; a Python builtin (floordiv on a size) keeps its name."""
    text = str(target)
    return text.split(".")[-2] if text.count(".") >= 2 else text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--max-length", type=int, default=256)
    args = parser.parse_args()
    model = load_model(SHIPPED_ADAPTER, SHIPPED_PLUGINS)[0]
    every = export_programs(model, args.max_length, progress=False)
    programs = {name: every[name] for name in METHODS}
    lowered = to_edge_transform_and_lower(programs, transform_passes=[static_reshapes],
                                          partitioner=[XnnpackPartitioner()],
                                          compile_config=EdgeCompileConfig(_check_ir_validity=False))
    print("method        partitions  ops outside XNNPACK")
    for name in programs:
        calls = [n for n in lowered.exported_program(name).graph.nodes if n.op == "call_function"]
        partitions = sum("call_delegate" in str(n.target) for n in calls)
        outside = collections.Counter(op_name(n.target) for n in calls if not any(
            skip in str(n.target) for skip in ("call_delegate", "getitem")))
        listed = ", ".join(f"{op} x{count}" for op, count in sorted(outside.items()))
        print(f"{name:12} {partitions:11}  {sum(outside.values()):3}: {listed}")


if __name__ == "__main__":
    main()
