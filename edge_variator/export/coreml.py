"""Convert the same pieces to Core ML: one multifunction `.mlpackage` (a function per method).

coremltools converts `torch.export` programs (its TorchScript path fails with numpy 2) after
`run_decompositions({})`. The dynamic length is given as enumerated shapes, one per length the
runtime pads to (16, 24, ..., max): the Neural Engine runs fixed or enumerated shapes only, and
with a range Core ML falls back to the GPU or CPU. fp16 compute, iOS 18 target (multifunction
models need it; enumerated shapes and multifunction mix there). `save_multifunction` stores a
weight that several functions share once. Optional int8 weight compression from `coremltools.optimize`.
coremltools cannot run a model on Linux: tests inspect the package, and the numerics are those
of the exported programs it was converted from (tested against PyTorch and ExecuTorch).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import coremltools as ct
import numpy as np
import torch
from torch.export import ExportedProgram
from tqdm import tqdm

from edge_variator.tokenizer import MIN_LENGTH, PAD_MULTIPLE

COMPRESS = ("none", "int8")
COMPUTE_UNITS = "all"  # what the package is made for: the app loads it with .all, Neural Engine included


def padded_lengths(max_length: int) -> list[int]:
    """Every length the runtime pads a text to (tokenizer.py): the enumerated shapes."""
    return list(range(MIN_LENGTH, max_length + 1, PAD_MULTIPLE))


def enumerated_inputs(program: ExportedProgram, lengths: list[int]) -> list[ct.TensorType]:
    """Each user input with its symbolic length enumerated over `lengths` (ids and masks as int32,
    which is what Core ML takes for int64; hidden states float32, as before)."""
    user = set(program.graph_signature.user_inputs)
    inputs = []
    for node in (n for n in program.graph.nodes if n.op == "placeholder" and n.name in user):
        value = node.meta["val"]
        dims = [None if isinstance(d, torch.SymInt) else int(d) for d in value.shape]
        shapes = [tuple(n if d is None else d for d in dims) for n in lengths]
        dtype = np.float32 if value.dtype.is_floating_point else np.int32
        inputs.append(ct.TensorType(name=node.name, dtype=dtype,
                                    shape=ct.EnumeratedShapes(shapes=shapes, default=shapes[-1])))
    return inputs


def convert_piece(program: ExportedProgram, lengths: list[int], compress: str = "none") -> ct.models.MLModel:
    model = ct.convert(program.run_decompositions({}), inputs=enumerated_inputs(program, lengths),
                       minimum_deployment_target=ct.target.iOS18, compute_precision=ct.precision.FLOAT16,
                       skip_model_load=True)
    if compress == "int8":
        config = ct.optimize.coreml.OptimizationConfig(
            global_config=ct.optimize.coreml.OpLinearQuantizerConfig(mode="linear_symmetric"))
        model = ct.optimize.coreml.linear_quantize_weights(model, config)
    elif compress != "none":
        raise ValueError(f"compress must be one of {COMPRESS}, not {compress!r}")
    return model


def save_mlpackage(programs: dict[str, ExportedProgram], out_path: str | Path, lengths: list[int],
                   compress: str = "none", progress: bool = True) -> list[str]:
    """Write one multifunction `.mlpackage` with a function per program, each taking the enumerated
    `lengths`; returns the function names."""
    out_path = Path(out_path)
    descriptor = ct.utils.MultiFunctionDescriptor()
    with tempfile.TemporaryDirectory(dir=out_path.parent) as scratch:
        for name, program in tqdm(programs.items(), desc="core ml", disable=not progress):
            single = Path(scratch) / f"{name}.mlpackage"
            convert_piece(program, lengths, compress).save(str(single))
            descriptor.add_function(str(single), src_function_name="main", target_function_name=name)
        descriptor.default_function_name = next(iter(programs))
        merged = Path(scratch) / "merged.mlpackage"
        ct.utils.save_multifunction(descriptor, str(merged))
        if out_path.exists():
            shutil.rmtree(out_path)
        merged.rename(out_path)
    return list(programs)


def describe(path: str | Path) -> dict:
    """What can be checked on Linux: every function's inputs/outputs (names, shapes, types)."""
    spec = ct.utils.load_spec(str(path))
    functions = {}
    for function in spec.description.functions:
        functions[function.name] = {
            "inputs": {i.name: _array(i.type.multiArrayType) for i in function.input},
            "outputs": {o.name: _array(o.type.multiArrayType) for o in function.output},
        }
    return {"default_function": spec.description.defaultFunctionName, "functions": functions}


def _array(array) -> dict:
    dtype = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array.dataType)
    ranges = [(r.lowerBound, r.upperBound) for r in array.shapeRange.sizeRanges]
    enumerated = [list(shape.shape) for shape in array.enumeratedShapes.shapes]
    return {"dtype": dtype, "shape": list(array.shape), "ranges": ranges, "enumerated": enumerated}


def weight_bytes(path: str | Path) -> int:
    """Size of the package's weight file(s): shared weights count once when de-duplicated."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file() and "weights" in f.parts)
