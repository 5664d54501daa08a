"""The op-level profile: the program's partitions and outside kernels, and perf's split of a method's time."""

import pytest

from edge_variator.cli import main
from edge_variator.ops import (
    CATEGORIES,
    OpsProfileError,
    category,
    default_ops_methods,
    inside_share,
    perf_available,
    portable_op,
    program_ops,
    runtime_library,
    sample,
)
from edge_variator.runtime.bundle import load_manifest

needs_perf = pytest.mark.skipif(perf_available() is not None, reason=str(perf_available()))


def test_the_program_lists_every_method_with_its_partitions_and_outside_kernels(tiny_bundle):
    manifest = load_manifest(tiny_bundle)
    ops = program_ops(tiny_bundle / manifest["files"]["executorch"]["path"])
    assert set(ops) == set(manifest["methods"])
    for name in manifest["methods"]:
        if name.startswith("layer_"):
            assert ops[name]["partitions"].get("XnnpackBackend", 0) >= 1, name
    plain, merged = ops[manifest["ratios"]["1"][0]], ops[manifest["ratios"]["2"][0]]
    assert all(isinstance(n, int) and n > 0 for n in merged["outside"].values())
    # the restore's broadcast add runs in XNNPACK: a plugged layer is no more split than a plain one
    assert merged["partitions"] == plain["partitions"] and "aten::cat" not in merged["outside"]
    first_exit = f"exit_{min(manifest['exits']['after_layers'])}"
    assert default_ops_methods(tiny_bundle) == ["embed", "layer_0_k1", "layer_0_k2", first_exit]


def test_samples_are_sorted_by_the_symbol_they_fall_in():
    library = str(runtime_library())
    assert portable_op("torch::executor::native::addmm_out(executorch::runtime::Context&)") == "addmm"
    assert portable_op("executorch::runtime::Method::execute()") is None
    assert category(library, "torch::executor::native::cat_out(int)", library) == ("portable kernels", "cat")
    assert category(library, "xnn_f32_gemm_minmax_ukernel_4x8__avx2", library)[0] == "xnnpack"
    assert category("/lib/libc.so.6", "__memmove_avx512_unaligned_erms", library)[0] == "copies"
    assert category("[kernel.kallsyms]", "exc_page_fault", library)[0] == "kernel (OS)"
    assert category("/usr/lib/libpython3.11.so.1.0", "_PyEval_EvalFrameDefault", library)[0] == "host"
    # an unexported address goes to the exported symbol before it
    from edge_variator.ops import exported_symbols

    starts, names = exported_symbols(library)
    index = next(i for i, name in enumerate(names) if name.startswith("xnn_"))
    assert category(library, hex(starts[index] + 1), library)[0] == "xnnpack"


@needs_perf
def test_perf_splits_a_layers_time_and_most_of_it_is_xnnpack(tiny_bundle):
    result = sample(tiny_bundle, "layer_0_k2", 32, seconds=0.6)
    assert result["calls"] > 0 and result["samples"] > 0
    assert set(result["share"]) == set(CATEGORIES)
    assert sum(result["share"].values()) == pytest.approx(1.0)
    assert result["share"]["xnnpack"] > 0 and 0 < inside_share(result) <= 1
    with pytest.raises(OpsProfileError, match="no method 'layer_9_k3'"):
        sample(tiny_bundle, "layer_9_k3", 32, seconds=0.1)
    # past the bundle's longest input the runtime refuses with a bare error code; named here instead
    with pytest.raises(OpsProfileError, match="lengths \\[256\\] are not multiples of 8 from 16 to 64"):
        sample(tiny_bundle, "layer_0_k2", 256, seconds=0.1)


@needs_perf
def test_cli_profile_ops_prints_partitions_and_the_split(tiny_bundle, capsys):
    main(["profile", str(tiny_bundle), "--ops", "layer_0_k1", "--lengths", "16", "--ops-seconds", "0.4"])
    out = capsys.readouterr().out
    assert "layer_0_k1   partitions" in out and "xnnpack of runtime" in out
    assert "%" in out.splitlines()[-1] or "%" in out.splitlines()[-2]
    with pytest.raises(SystemExit, match="edge-variator profile: lengths \\[12\\] are not multiples of 8"):
        main(["profile", str(tiny_bundle), "--ops", "layer_0_k1", "--lengths", "12"])
