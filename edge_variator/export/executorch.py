"""Lower every piece into ONE ExecuTorch program (`model.pte`, XNNPACK), fp32 or int8.

All methods are lowered together so that a weight used by several of them (the frozen layer
weights shared by k = 1, 2, 4, 8) is stored once. int8 is the pt2e flow with XNNPACK's quantizer:
per-channel int8 weights with dynamically quantized activations for every linear layer,
calibrated on real hidden states of task text (what each piece sees when the model runs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
    XNNPACKQuantizer,
    get_symmetric_quantization_config,
)
from executorch.exir import to_edge_transform_and_lower
from torch import nn
from torch.export import ExportedProgram, export
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
from tqdm import tqdm

from edge_variator.encoder import additive_mask
from edge_variator.exits import MultiExitModel
from edge_variator.export.pieces import attention_for, dynamic_shapes, example_inputs, export_piece, pieces
from edge_variator.task import TaskModel
from edge_variator.tokenizer import Tokenizer

QUANTIZE = ("none", "int8")


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


def quantized_piece(name: str, module: nn.Module, hidden: int, max_length: int,
                    calibration: list[tuple[torch.Tensor, ...]]) -> ExportedProgram:
    """int8 weights (per channel), int8 activations quantized on the fly, for every linear layer."""
    config = get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True)
    quantizer = XNNPACKQuantizer().set_global(config)
    shapes = dynamic_shapes(name, max_length)
    with torch.no_grad(), attention_for(module, fused=False):
        graph = export(module, example_inputs(name, hidden), dynamic_shapes=shapes).module()
        prepared = prepare_pt2e(graph, quantizer)
        for inputs in calibration:
            prepared(*inputs)
        return export(convert_pt2e(prepared), example_inputs(name, hidden), dynamic_shapes=shapes)


def export_programs(model: TaskModel | MultiExitModel, max_length: int, ratios: list[int] | None = None,
                    quantize: str = "none", calibration: dict | None = None, progress: bool = True,
                    fused_attention: bool = False) -> dict[str, ExportedProgram]:
    """Method name -> exported program, for every piece of the model (fused attention: for Core ML)."""
    if quantize not in QUANTIZE:
        raise ValueError(f"quantize must be one of {QUANTIZE}, not {quantize!r}")
    if quantize == "int8" and not calibration:
        raise ValueError("int8 needs calibration inputs: piece_inputs(model, tokenizer, texts)")
    hidden = model.encoder.config.hidden
    programs = {}
    for name, module in tqdm(pieces(model.eval(), ratios).items(), desc=f"export ({quantize})",
                             disable=not progress):
        if quantize == "int8" and name != "embed":  # lookups stay fp32: they are memory, not compute
            key = name.rsplit("_k", 1)[0]
            programs[name] = quantized_piece(name, module, hidden, max_length, calibration[key])
        else:
            programs[name] = export_piece(name, module, hidden, max_length, fused_attention)
    return programs


def to_pte(programs: dict[str, ExportedProgram]) -> bytes:
    """All methods lowered to XNNPACK together, as the bytes of one `.pte`."""
    lowered = to_edge_transform_and_lower(programs, partitioner=[XnnpackPartitioner()])
    return lowered.to_executorch().buffer
