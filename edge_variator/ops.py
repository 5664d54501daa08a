"""Where a method's time goes, op by op: `edge-variator profile BUNDLE --ops`.

The PyPI ExecuTorch has no event tracer (`enable_etdump` writes nothing), so two views stand in:
- the program: per method, the instructions the runtime runs, that is the XNNPACK delegate calls
  (partitions) and every kernel that runs outside them (portable ops, views, copies), read from
  the .pte's flatbuffer;
- Linux `perf`: a worker process loads the method, warms it, starts `perf record` on itself and
  calls the method in a loop. ExecuTorch's library is stripped but for its exported symbols, so a
  sample in it goes to the nearest exported symbol at or before its address: XNNPACK's
  micro-kernels lie between `xnn_*` symbols, portable kernels under `torch::executor::native::*`.
  The Python binding's own cost (the interpreter, tensor wrapping) is counted apart as host: an
  app calling the C++ or Kotlin/Swift API does not pay it.
"""

from __future__ import annotations

import bisect
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

from edge_variator.runtime.bundle import load_manifest

CATEGORIES = ("xnnpack", "portable kernels", "copies", "runtime", "host", "kernel (OS)")
INSIDE = ("xnnpack",)
OUTSIDE = ("portable kernels", "copies", "runtime")  # ExecuTorch's own time outside the delegate


class OpsProfileError(RuntimeError):
    """No op-level profile: perf is missing or not allowed, or the method does not exist."""


def program_ops(pte: str | Path) -> dict[str, dict]:
    """Per method of the program: its XNNPACK partitions and the kernels it runs outside them."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(Path(pte).read_bytes()).program
    methods = {}
    for plan in program.execution_plan:
        partitions, outside = Counter(), Counter()
        for chain in plan.chains:
            for instruction in chain.instructions:
                call = instruction.instr_args
                kind = type(call).__name__
                if kind == "DelegateCall":
                    partitions[plan.delegates[call.delegate_index].id] += 1
                elif kind == "KernelCall":
                    outside[plan.operators[call.op_index].name] += 1
                else:  # moves, jumps, frees: the interpreter's own instructions
                    outside[f"({kind})"] += 1
        methods[plan.name] = {"partitions": dict(partitions), "outside": dict(outside)}
    return methods


def runtime_library() -> Path:
    import executorch.extension.pybindings._portable_lib as portable

    return Path(portable.__file__)


@cache
def exported_symbols(library: str) -> tuple[list[int], list[str]]:
    """Start addresses (sorted) and demangled names of a shared library's exported functions."""
    out = subprocess.run(["nm", "-D", "--defined-only", "-n", "-C", library], capture_output=True,
                         text=True, check=True).stdout
    starts, names = [], []
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "TtWw":
            starts.append(int(parts[0], 16))
            names.append(parts[2])
    return starts, names


def symbol_at(library: str, address: int) -> str:
    starts, names = exported_symbols(library)
    index = bisect.bisect_right(starts, address) - 1
    return names[index] if index >= 0 else ""


def portable_op(symbol: str) -> str | None:
    """`torch::executor::native::addmm_out(...)` -> "addmm"; None for any other symbol."""
    found = re.match(r"torch::executor::native::(?:\w+::)*?(\w+?)(?:_out)?\(", symbol)
    return found.group(1) if found else None


def category(dso: str, symbol: str, library: str) -> tuple[str, str]:
    """(category, what) of one perf sample's shared object and symbol (or hex address)."""
    name = Path(dso).name
    if dso.startswith("[kernel"):
        return "kernel (OS)", symbol
    if name == Path(library).name:
        if symbol.startswith("0x"):  # unexported: the nearest exported symbol before it says whose
            symbol = symbol_at(library, int(symbol, 16))
        op = portable_op(symbol)
        if op:
            return "portable kernels", op
        if symbol.startswith(("xnn_", "pthreadpool", "executorch::backends::xnnpack")) or "xnn" in symbol:
            return "xnnpack", symbol.split("(")[0]
        if "pybind11" in symbol or "pybindings" in symbol:
            return "host", "pybind11"
        return "runtime", symbol.split("(")[0]
    if name.startswith("libc.so") and re.search(r"mem(cpy|move|set)", symbol):
        return "copies", symbol
    if name.startswith("libtorch_cpu") and ("pthreadpool" in symbol or symbol == "thread_main"):
        return "xnnpack", "pthreadpool (torch's, which XNNPACK's calls resolve to)"
    return "host", name


def perf_available() -> str | None:
    """None when `perf record` works here, else why not."""
    if shutil.which("perf") is None:
        return "perf is not installed (Debian: apt install linux-perf)"
    probe = subprocess.run(["perf", "record", "-q", "-o", os.devnull, "--", "true"], capture_output=True,
                           text=True)
    if probe.returncode != 0:
        return (f"perf record fails here: {probe.stderr.strip()[:200]} "
                "(see /proc/sys/kernel/perf_event_paranoid)")
    return None


def sample(bundle_dir: str | Path, method: str, length: int, seconds: float = 3.0,
           frequency: int = 1999) -> dict:
    """Sample `method` at `length` tokens under perf for `seconds`: samples per category, and the
    portable kernels and XNNPACK symbols that took them."""
    why = perf_available()
    if why:
        raise OpsProfileError(why)
    manifest = load_manifest(bundle_dir)
    if method not in manifest["methods"]:
        raise OpsProfileError(f"the bundle has no method {method!r}; it has "
                              f"{', '.join(sorted(manifest['methods'])[:8])}, ...")
    from edge_variator.profile import ProfileError, check_lengths

    try:
        check_lengths(manifest, [length])
    except ProfileError as error:  # the runtime would refuse the inputs with a bare error code
        raise OpsProfileError(str(error)) from None
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "perf.data"
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}  # torch's idle OpenMP threads do not spin
        command = [sys.executable, "-m", "edge_variator.ops", str(bundle_dir), method, str(length),
                   str(seconds), str(frequency), str(data)]
        worker = subprocess.run(command, capture_output=True, text=True, env=env)
        if worker.returncode != 0:
            raise OpsProfileError(f"the perf worker failed: {worker.stderr.strip()[-400:]}")
        calls = int(worker.stdout.split()[-1])
        report = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--sort", "dso,sym", "-F",
                                 "sample,dso,sym", "-g", "none"], capture_output=True, text=True).stdout
    library = str(runtime_library())
    by_category, by_what = Counter(), Counter()
    for line in report.splitlines():
        found = re.match(r"\s*(\d+)\s+(\S+)\s+\[[.k]\]\s+(.+?)\s*$", line)
        if not found:
            continue
        count, dso, symbol = int(found.group(1)), found.group(2), found.group(3)
        kind, what = category(dso, symbol, library)
        by_category[kind] += count
        by_what[kind, what] += count
    total = sum(by_category.values())
    if not total:
        raise OpsProfileError("perf recorded no samples")
    return {"method": method, "length": length, "calls": calls, "samples": total,
            "ms_per_call": round(1000 * seconds / calls, 3),
            "share": {kind: by_category[kind] / total for kind in CATEGORIES},
            "top": [{"category": kind, "what": what, "share": n / total}
                    for (kind, what), n in by_what.most_common(12)]}


def inside_share(result: Mapping) -> float:
    """XNNPACK's share of the time ExecuTorch spends (the host's binding left out)."""
    share = result["share"]
    runtime = sum(share[k] for k in INSIDE + OUTSIDE)
    return share["xnnpack"] / runtime if runtime else 0.0


def default_ops_methods(bundle_dir: str | Path) -> list[str]:
    """embed, the first layer at every ratio, and the first exit."""
    manifest = load_manifest(bundle_dir)
    layers = [manifest["ratios"][k][0] for k in sorted(manifest["ratios"], key=int)]
    return ["embed", *layers, f"exit_{min(manifest['exits']['after_layers'])}"]


def format_ops(bundle_dir: str | Path, methods: Sequence[str], lengths: Sequence[int],
               seconds: float = 3.0) -> str:
    """The op-level profile of `methods`: the program's partitions and outside kernels, then
    perf's split of each method's time at each length."""
    manifest = load_manifest(bundle_dir)
    ops = program_ops(Path(bundle_dir) / manifest["files"]["executorch"]["path"])
    lines = [f"{bundle_dir}: ops per method (XNNPACK partitions; kernels run outside them)"]
    for method in methods:
        entry = ops[method]
        outside = ", ".join(f"{name} x{n}" for name, n in sorted(entry["outside"].items()))
        partitions = sum(entry["partitions"].values())
        lines.append(f"  {method:12} partitions {partitions}; outside: {outside or 'none'}")
    lines.append("perf samples per call, by where they fall (host: the Python binding, not on a phone):")
    lines.append("  method       tokens  ms/call" + "".join(f"{k.split()[0]:>9}" for k in CATEGORIES)
                 + "  xnnpack of runtime")
    for method in methods:
        for length in lengths:
            result = sample(bundle_dir, method, length, seconds)
            share = result["share"]
            cells = "".join(f"{100 * share[k]:8.1f}%" for k in CATEGORIES)
            lines.append(f"  {method:12} {length:6} {result['ms_per_call']:8.3f}{cells}  "
                         f"{100 * inside_share(result):8.1f}%")
            outside = [row for row in result["top"] if row["category"] in OUTSIDE][:3]
            if outside:
                lines.append("      outside XNNPACK: " + ", ".join(
                    f"{row['what'][:40]} {100 * row['share']:.1f}%" for row in outside))
    return "\n".join(lines)


def worker(bundle_dir: str, method: str, length: int, seconds: float, frequency: int, data: str) -> int:
    """Load and warm `method`, then call it in a loop for `seconds` under perf attached to this
    process alone; returns the number of calls."""
    import torch

    from edge_variator.profile import method_inputs
    from edge_variator.runtime.bundle import open_program

    torch.set_num_threads(1)  # the inputs are made once; the program's threads are XNNPACK's own
    manifest = load_manifest(bundle_dir)
    program = open_program(Path(bundle_dir) / manifest["files"]["executorch"]["path"])
    loaded = program.load_method(method)
    inputs = method_inputs(manifest, method, length)
    for _ in range(10):
        loaded.execute(inputs)
    perf = subprocess.Popen(["perf", "record", "-q", "-F", str(frequency), "-p", str(os.getpid()),
                             "-o", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)  # perf attaches
    calls, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        loaded.execute(inputs)
        calls += 1
    perf.send_signal(signal.SIGINT)
    perf.wait(timeout=60)
    return calls


if __name__ == "__main__":
    bundle, name, tokens, duration, hz, out = sys.argv[1:7]
    print(worker(bundle, name, int(tokens), float(duration), int(hz), out))
