"""Wall time of exporting the default bundle, by phase, with ExecuTorch lowering in one process and
in one per core (to_pte's workers), and whether the two `.pte` files are the same bytes.

    python bench/export_time.py [--workers N]

Phases: the pieces traced for ExecuTorch (torch.export), their lowering to XNNPACK (once in one
process, once in N; each from a fresh trace, since lowering consumes its programs), and the Core ML
package (its own traces, then coremltools). Then the whole write_bundle with the default workers,
as `edge-variator export` runs it. Run it on a quiet machine: nothing else should share the cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from edge_variator.defaults import DEFAULT_FORMATS, default_checkpoint
from edge_variator.export.bundle import load_model, write_bundle
from edge_variator.export.coreml import padded_lengths, save_mlpackage
from edge_variator.export.executorch import export_programs, lowering_workers, to_pte


def timed(call):
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=lowering_workers())
    args = parser.parse_args()
    checkpoint, plugins = default_checkpoint()
    model, tokenizer, source = load_model(checkpoint, plugins)
    length = tokenizer.max_length
    programs, traced_s = timed(lambda: export_programs(model, length, progress=False))
    methods = len(programs)
    serial, serial_s = timed(lambda: to_pte(programs, workers=1))
    programs = export_programs(model, length, progress=False)
    parallel, parallel_s = timed(lambda: to_pte(programs, workers=args.workers))
    with tempfile.TemporaryDirectory() as scratch:
        fused = lambda: export_programs(model, length, progress=False, xnnpack=False)  # noqa: E731
        _, coreml_s = timed(lambda: save_mlpackage(fused(), Path(scratch) / "model.mlpackage",
                                                   padded_lengths(length), progress=False))
        _, whole_s = timed(lambda: write_bundle(model, tokenizer, source, Path(scratch) / "bundle",
                                                DEFAULT_FORMATS, progress=False, workers=args.workers))
        pte_bytes = (Path(scratch) / "bundle" / "model.pte").stat().st_size
    print(f"default bundle ({checkpoint.name}, {methods} methods, formats {', '.join(DEFAULT_FORMATS)})")
    print(f"  torch.export of the pieces      {traced_s:7.1f} s")
    print(f"  lowering, 1 process             {serial_s:7.1f} s  ({serial_s / methods:.1f} s a method)")
    print(f"  lowering, {args.workers} processes           {parallel_s:7.1f} s  "
          f"({serial_s / parallel_s:.2f}x faster)")
    print(f"  Core ML package (trace+convert) {coreml_s:7.1f} s")
    print(f"  whole export, lowering in 1     {traced_s + serial_s + coreml_s:7.1f} s  (the phases summed)")
    print(f"  whole export, write_bundle      {whole_s:7.1f} s  (lowering in {args.workers})")
    print(f"  model.pte: {len(serial):,} bytes in 1 process, {len(parallel):,} in {args.workers}, "
          f"{'the same bytes' if serial == parallel else 'DIFFERENT bytes'}; the bundle's {pte_bytes:,}")


if __name__ == "__main__":
    main()
