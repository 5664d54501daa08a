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

from collections.abc import Sequence

import torch
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
    XNNPACKQuantizer,
    get_symmetric_quantization_config,
)
from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower
from executorch.exir.dialects._ops import ops as exir_ops
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


def to_pte(programs: dict[str, ExportedProgram]) -> bytes:
    """All methods lowered to XNNPACK together, as the bytes of one `.pte`. The edge IR check is
    off: it re-verifies every op of every method (a quarter of the lowering time), and the
    ExecuTorch runtime tests run every method against PyTorch instead."""
    lowered = to_edge_transform_and_lower(programs, transform_passes=[static_reshapes],
                                          partitioner=[XnnpackPartitioner()],
                                          compile_config=EdgeCompileConfig(_check_ir_validity=False))
    return lowered.to_executorch().buffer


def roofline_gemm(hidden: int, intermediate: int, max_length: int) -> tuple[nn.Linear, ExportedProgram]:
    """A layer's biggest GEMM (tokens x hidden @ hidden x intermediate, no bias) and its export at
    dynamic length: XNNPACK's own matmul speed, the roofline the benches set our layers against."""
    linear = nn.Linear(hidden, intermediate, bias=False).eval()
    program = export(linear, (torch.randn(1, 32, hidden),), dynamic_shapes=({1: sequence_dim(max_length)},))
    return linear, program
