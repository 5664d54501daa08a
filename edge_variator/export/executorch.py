"""Lower every piece into ONE ExecuTorch program (`model.pte`, XNNPACK), fp32 or int8.

All methods are lowered together so that a weight used by several of them (the frozen layer
weights shared by k = 1, 2, 4, 8) is stored once. int8 is the pt2e flow with XNNPACK's quantizer,
per-channel int8 weights for every linear layer, in one of two kinds:
- int8-dynamic: activations quantized per token at run time, from their own range; no
  calibration text is read (`int8`, the name of old, means this);
- int8-static: activations quantized with fixed ranges observed on real hidden states of task
  text (what each piece sees when the model runs), the calibration texts.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections.abc import Sequence

import torch
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
    XNNPACKQuantizer,
    get_symmetric_quantization_config,
)
from executorch.exir import (
    EdgeCompileConfig,
    ExecutorchBackendConfig,
    ExecutorchProgramManager,
    schema,
    to_edge_transform_and_lower,
)
from executorch.exir._serialize._cord import Cord
from executorch.exir._serialize._named_data_store import NamedDataStore, NamedDataStoreOutput
from executorch.exir._serialize._program import PTEFile, serialize_pte_binary
from executorch.exir.dialects._ops import ops as exir_ops
from executorch.exir.schema import Program
from torch import nn
from torch.export import ExportedProgram, export
from torch.fx import GraphModule
from torch.fx.passes.infra.pass_base import PassResult
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
from tqdm import tqdm

from edge_variator.encoder import additive_mask
from edge_variator.exits import MultiExitModel
from edge_variator.export.bundle import quantize_kind
from edge_variator.export.pieces import (
    dynamic_shapes,
    example_inputs,
    export_piece,
    pieces,
    sequence_dim,
)
from edge_variator.task import TaskModel
from edge_variator.tokenizer import Tokenizer


def piece_inputs(model: TaskModel | MultiExitModel, tokenizer: Tokenizer, texts: Sequence[str]
                 ) -> dict[str, list[tuple[torch.Tensor, ...]]]:
    """The real inputs each method sees when `texts` run one by one through every layer (ratio 1)."""
    encoder = model.encoder
    calibration: dict[str, list[tuple[torch.Tensor, ...]]] = {}
    with torch.no_grad():
        for text in texts:
            batch = tokenizer([text])
            hidden = encoder.embeddings(batch.input_ids, torch.zeros_like(batch.input_ids))
            calibration.setdefault("embed", []).append((batch.input_ids,))
            for index, layer in enumerate(encoder.layers):
                calibration.setdefault(f"layer_{index}", []).append((hidden, batch.attention_mask))
                hidden = layer(hidden, additive_mask(batch.attention_mask, hidden.dtype), 1)
                calibration.setdefault(f"exit_{index}", []).append((hidden, batch.attention_mask))
    return calibration


def quantized_piece(name: str, module: nn.Module, hidden: int, max_length: int, static: bool,
                    calibration: list[tuple[torch.Tensor, ...]] = ()) -> ExportedProgram:
    """int8 weights (per channel) for every linear layer, and int8 activations: with `static`, at the
    ranges the observers saw on `calibration`; else quantized on the fly (no calibration read)."""
    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=not static)
    quantizer = XNNPACKQuantizer().set_global(config)
    shapes = dynamic_shapes(name, max_length)
    with torch.no_grad():
        graph = export(module, example_inputs(name, hidden), dynamic_shapes=shapes).module()
        prepared = prepare_pt2e(graph, quantizer)
        for inputs in calibration if static else [example_inputs(name, hidden)]:  # dynamic: a trace only
            prepared(*inputs)
        return export(convert_pt2e(prepared), example_inputs(name, hidden), dynamic_shapes=shapes)


def export_programs(model: TaskModel | MultiExitModel, max_length: int, ratios: list[int] | None = None,
                    quantize: str = "none", calibration: dict | None = None, progress: bool = True,
                    xnnpack: bool = True) -> dict[str, ExportedProgram]:
    """Method name -> exported program, for every piece of the model (its XNNPACK rebuild, or with
    xnnpack=False the model's own modules, for Core ML)."""
    quantize = quantize_kind(quantize)
    if quantize == "int8-static" and not calibration:
        raise ValueError("int8-static needs calibration inputs: piece_inputs(model, tokenizer, texts)")
    hidden = model.encoder.config.hidden
    programs = {}
    for name, module in tqdm(pieces(model.eval(), ratios, xnnpack).items(), desc=f"export ({quantize})",
                             disable=not progress):
        if quantize != "none" and name != "embed":  # lookups stay fp32: they are memory, not compute
            static = quantize == "int8-static"
            key = name.rsplit("_k", 1)[0]
            programs[name] = quantized_piece(name, module, hidden, max_length, static,
                                             calibration[key] if static else ())
        else:
            programs[name] = export_piece(name, module, hidden, max_length)
    return programs


def static_reshapes(graph_module: GraphModule) -> PassResult:
    """Rewrite shape-only ops so that XNNPACK takes them: a view, squeeze or unsqueeze whose output
    has at most one symbolic size becomes a view with -1 there (XNNPACK refuses symbolic sizes but
    infers one), and an expand to the shape it already has goes. Left in, each such op is a portable
    kernel that splits a layer into delegate islands (12 for a k = 4 layer; now 3)."""
    view = exir_ops.edge.aten.view_copy.default
    shape_only = {view, exir_ops.edge.aten.unsqueeze_copy.default, exir_ops.edge.aten.squeeze_copy.dims,
                  exir_ops.edge.aten.squeeze_copy.dim}
    changed = False
    for node in list(graph_module.graph.nodes):
        if node.op != "call_function":
            continue
        if node.target in shape_only:
            shape = node.meta["val"].shape
            symbolic = [i for i, size in enumerate(shape) if not isinstance(size, int)]
            if len(symbolic) <= 1:
                node.target = view
                node.args = (node.args[0], [-1 if i in symbolic else size for i, size in enumerate(shape)])
                changed = True
        elif (node.target == exir_ops.edge.aten.expand_copy.default
              and node.args[0].meta["val"].shape == node.meta["val"].shape):
            node.replace_all_uses_with(node.args[0])
            graph_module.graph.erase_node(node)
            changed = True
    graph_module.recompile()
    return PassResult(graph_module, changed)


def lowered(programs: dict[str, ExportedProgram]) -> ExecutorchProgramManager:
    """`programs` lowered to XNNPACK together and emitted as one ExecuTorch program. The edge IR
    check is off: it re-verifies every op of every method (a quarter of the lowering time), and the
    ExecuTorch runtime tests run every method against PyTorch instead."""
    return to_edge_transform_and_lower(programs, transform_passes=[static_reshapes],
                                       partitioner=[XnnpackPartitioner()],
                                       compile_config=EdgeCompileConfig(_check_ir_validity=False)
                                       ).to_executorch()


def lowering_workers() -> int:
    """Processes to lower in: one per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def to_pte(programs: dict[str, ExportedProgram], workers: int | None = None) -> bytes:
    """All methods lowered to XNNPACK, as the bytes of one `.pte`.

    Lowering is single-threaded Python (about 4 s a method, re-tracing each graph some 30 times), so
    with `workers` > 1 (default: one per core) the methods are lowered in forked processes, a share
    each, and their emitted programs merged into one. The merge lays the program out in one
    canonical order, so the bytes are the same whatever the number of workers, and a weight that
    several methods share (XNNPACK names its data by content hash) is still stored once."""
    workers = min(workers or lowering_workers(), len(programs))
    names = list(programs)
    if workers <= 1:
        return bytes(merged_pte([emitted(lowered(programs))], names))
    shares = [names[i::workers] for i in range(workers)]  # round robin: layer methods cost alike
    global _FORKED_PROGRAMS
    _FORKED_PROGRAMS = programs  # the children inherit them by fork: an ExportedProgram does not pickle
    try:
        with multiprocessing.get_context("fork").Pool(workers, initializer=torch.set_num_threads,
                                                      initargs=(1,)) as pool:
            parts = pool.map(lowered_share, shares)
    finally:
        _FORKED_PROGRAMS = {}
    return bytes(merged_pte(parts, names))


_FORKED_PROGRAMS: dict[str, ExportedProgram] = {}


def lowered_share(names: list[str]) -> tuple[Program, NamedDataStoreOutput | None]:
    """In a forked child: these methods lowered and emitted."""
    return emitted(lowered({name: _FORKED_PROGRAMS[name] for name in names}))


def emitted(manager: ExecutorchProgramManager) -> tuple[Program, NamedDataStoreOutput | None]:
    """What merged_pte needs of a lowered program: the emitted program and XNNPACK's named data."""
    output = manager._emitter_output
    if output.mutable_data or output.external_constant_map:
        raise ValueError("to_pte merges programs whose data all lies in the program; this one has "
                         "mutable or external data")
    return output.program, manager._named_data


def merged_pte(parts: Sequence[tuple[Program, NamedDataStoreOutput | None]], order: Sequence[str]) -> Cord:
    """Emitted programs as one `.pte`, laid out in one order whatever the parts: methods in `order`,
    constant buffers and inline delegate blobs numbered as those methods first use them (equal
    constants stored once), named data (XNNPACK's weights, keyed by content hash) by key."""
    for program, _ in parts:
        if program.segments or program.constant_segment.offsets or program.named_data:
            raise ValueError("merged_pte takes emitted programs, not serialized ones")
    plans = {plan.name: (plan, program) for program, _ in parts for plan in program.execution_plan}
    constants = [parts[0][0].constant_buffer[0]]  # buffer 0 is the reserved empty one
    constant_index, delegate_data, delegate_index = {}, [], {}
    for name in order:
        plan, program = plans[name]
        for value in plan.values:
            if isinstance(value.val, schema.Tensor) and value.val.data_buffer_idx:
                storage = program.constant_buffer[value.val.data_buffer_idx].storage
                if storage not in constant_index:
                    constant_index[storage] = len(constants)
                    constants.append(schema.Buffer(storage))
                value.val.data_buffer_idx = constant_index[storage]
        for delegate in plan.delegates:
            if delegate.processed.location != schema.DataLocation.INLINE:
                raise ValueError(f"delegate {delegate.id} of {name} is not inline")
            key = (id(program), delegate.processed.index)
            if key not in delegate_index:
                delegate_index[key] = len(delegate_data)
                delegate_data.append(program.backend_delegate_data[delegate.processed.index])
            delegate.processed.index = delegate_index[key]
    entries = {key: (named.buffers[entry.buffer_index], entry) for _, named in parts if named is not None
               for key, entry in named.pte_data.items()}
    store = NamedDataStore()
    for key in sorted(entries):
        data, entry = entries[key]
        store.add_named_data(key, data, entry.alignment, tensor_layout=entry.tensor_layout)
    program = dataclasses.replace(parts[0][0], execution_plan=[plans[name][0] for name in order],
                                  constant_buffer=constants, backend_delegate_data=delegate_data)
    config = ExecutorchBackendConfig()
    named = store.get_named_data_store_output()
    return serialize_pte_binary(PTEFile(program=program, named_data=named if named.pte_data else None),
                                extract_delegate_segments=config.extract_delegate_segments,
                                segment_alignment=config.segment_alignment,
                                constant_tensor_alignment=config.constant_tensor_alignment,
                                delegate_alignment=config.delegate_alignment)


def roofline_gemm(hidden: int, intermediate: int, max_length: int) -> tuple[nn.Linear, ExportedProgram]:
    """A layer's biggest GEMM (tokens x hidden @ hidden x intermediate, no bias) and its export at
    dynamic length: XNNPACK's own matmul speed, the roofline the benches set our layers against."""
    linear = nn.Linear(hidden, intermediate, bias=False).eval()
    program = export(linear, (torch.randn(1, 32, hidden),), dynamic_shapes=({1: sequence_dim(max_length)},))
    return linear, program
