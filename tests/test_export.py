"""Export: a tiny multi-exit model with ratio-2 plugins -> one .pte run in the ExecuTorch runtime,
a multifunction .mlpackage inspected, the manifest validated, and every bad bundle refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import SHA, TINY_CONFIG, tiny_model, tiny_source

from edge_variator.encoder import additive_mask, default_model_dir
from edge_variator.export.bundle import canonical_sha256, check_pieces_match, export_inputs, write_bundle
from edge_variator.export.coreml import describe, weight_bytes
from edge_variator.export.executorch import export_programs, piece_inputs, quantized_piece, to_pte
from edge_variator.export.pieces import pieces
from edge_variator.files import folder_digest
from edge_variator.plugins import set_ratio
from edge_variator.runtime.bundle import (
    AlteredFileError,
    BackboneMismatchError,
    CorruptProgramError,
    ManifestError,
    MissingMethodError,
    load_manifest,
    open_program,
)
from edge_variator.runtime.policy import default_policy
from edge_variator.tokenizer import Tokenizer

TEXTS = ["a short text", "a somewhat longer text that needs more than sixteen tokens to be written down"]


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer(default_model_dir(), 64)


@pytest.fixture(scope="module")
def bundle_dir(tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundles") / "tiny"
    write_bundle(tiny_model(), tokenizer, tiny_source(), out, formats=("executorch", "coreml"),
                 progress=False)
    return out


def test_every_method_runs_in_executorch_within_1e_4_of_pytorch(bundle_dir):
    manifest = load_manifest(bundle_dir)
    assert sorted(manifest["methods"]) == sorted(
        ["embed", "layer_0_k1", "layer_0_k2", "layer_1_k1", "layer_1_k2", "exit_0", "exit_1"])
    assert manifest["ratios"] == {"1": ["layer_0_k1", "layer_1_k1"], "2": ["layer_0_k2", "layer_1_k2"]}
    exits = {"after_layers": [0, 1], "criterion": "entropy", "thresholds": {"drop_1": 0.4}}
    assert manifest["exits"] == exits
    errors = check_pieces_match(tiny_model(), bundle_dir, lengths=(16, 40, 64))
    assert max(errors.values()) < 1e-4, errors


@pytest.mark.parametrize("ratio", [1, 2])
def test_chained_methods_equal_the_pytorch_model_on_real_text(bundle_dir, tokenizer, ratio):
    program = open_program(bundle_dir / "model.pte")
    model = tiny_model()
    set_ratio(model.encoder, ratio)
    for text in TEXTS:
        batch = tokenizer([text])
        hidden = program.load_method("embed").execute([batch.input_ids])[0]
        for index in range(TINY_CONFIG.layers):
            hidden = program.load_method(f"layer_{index}_k{ratio}").execute([hidden, batch.attention_mask])[0]
        last_exit = program.load_method(f"exit_{TINY_CONFIG.layers - 1}")
        logits = last_exit.execute([hidden, batch.attention_mask])[0]
        with torch.no_grad():
            expected = model(batch.input_ids, batch.attention_mask)[-1]
        torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)


def xnnpack_cases():
    """A multi-exit model with plugins, a width-pruned one with a factorized embedding (its last exit
    BERT's pooler over CLS, as an assistant started from its teacher's head), a classifier."""
    from edge_variator.encoder import Encoder, EncoderConfig
    from edge_variator.exits import MultiExitModel
    from edge_variator.task import TaskModel

    pruned = EncoderConfig(**{**TINY_CONFIG.to_dict(), "heads": 2, "intermediate": 24, "embedding_rank": 8})
    torch.manual_seed(0)
    return {"multi-exit, k = 1 and 2": tiny_model(),
            "slender": MultiExitModel(Encoder(pruned), ["a", "b"], last_exit_pooler="cls"),
            "classifier": TaskModel(Encoder(TINY_CONFIG), ["a", "b", "c"])}


@pytest.mark.parametrize("case", ["multi-exit, k = 1 and 2", "slender", "classifier"])
def test_the_xnnpack_pieces_equal_the_models_own_modules(case):
    """ExecuTorch exports modules rebuilt from the same weights (bmm attention, matmul LayerNorm);
    they compute what the model's own modules (the reference, and Core ML's) do, padding included."""
    from edge_variator.export.pieces import example_inputs, pieces

    model = xnnpack_cases()[case].eval()
    reference, rebuilt = pieces(model), pieces(model, xnnpack=True)
    assert list(rebuilt) == list(reference)
    assert any(type(m).__name__ == "XnnpackLayer" for m in rebuilt.values())
    with torch.no_grad():
        for name in reference:
            for length in (16, 40):
                inputs = example_inputs(name, model.encoder.config.hidden, length)
                if len(inputs) == 2:  # a padded tail: masked out alike
                    inputs[1][:, length - 5:] = 0
                torch.testing.assert_close(rebuilt[name](*inputs), reference[name](*inputs),
                                           atol=1e-5, rtol=1e-5, msg=f"{name} at {length}")


def test_rebuilding_for_xnnpack_leaves_the_model_as_it_was():
    from edge_variator.export.pieces import pieces

    model = tiny_model()
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    forward_methods = [type(m).forward for m in model.modules()]
    pieces(model, xnnpack=True)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert [type(m).forward for m in model.modules()] == forward_methods
    assert not any("forward" in vars(m) for m in model.modules())  # no forward patched on an instance


def test_coreml_package_has_one_function_per_method_fp16_with_every_input_length_enumerated(bundle_dir):
    manifest = load_manifest(bundle_dir)
    described = describe(bundle_dir / "model.mlpackage")
    assert set(described["functions"]) == set(manifest["methods"])
    lengths = [16, 24, 32, 40, 48, 56, 64]  # every length the runtime pads to, up to the bundle's 64
    assert manifest["files"]["coreml"]["lengths"] == lengths
    assert manifest["files"]["coreml"]["compute_units"] == "all"
    for name, function in described["functions"].items():
        for input_name, spec in function["inputs"].items():
            # the Neural Engine needs fixed or enumerated shapes: no range anywhere
            width = [] if input_name in ("input_ids", "attention_mask") else [32]
            assert sorted(spec["enumerated"]) == [[1, n, *width] for n in lengths], (name, input_name)
            assert not spec["ranges"], (name, input_name)
    layer = described["functions"]["layer_1_k2"]
    assert layer["inputs"]["hidden"]["dtype"] == "FLOAT32"
    assert layer["inputs"]["attention_mask"]["dtype"] == "INT32"
    outputs = [out for function in described["functions"].values() for out in function["outputs"].values()]
    assert all(out["dtype"] == "FLOAT16" for out in outputs)
    # layer_i_k1 and layer_i_k2 share the layer's weights: stored once, the package holds about the
    # unique fp16 parameters, well under what a copy per function would take
    model = tiny_model()
    unique = sum(p.numel() for p in model.parameters())
    layer_weights = sum(p.numel() for layer in model.encoder.layers for p in layer.parameters())
    assert weight_bytes(bundle_dir / "model.mlpackage") < 2 * (unique + layer_weights // 2)


def test_same_inputs_give_a_byte_identical_pte(bundle_dir, tokenizer, tmp_path):
    write_bundle(tiny_model(), tokenizer, tiny_source(), tmp_path / "again", progress=False)
    assert (tmp_path / "again" / "model.pte").read_bytes() == (bundle_dir / "model.pte").read_bytes()


def test_lowering_in_several_processes_gives_the_same_pte_as_in_one():
    """to_pte's forked workers each lower a share of the methods; their programs merged are the
    same bytes as all methods lowered together (method order, shared weights stored once)."""
    model = tiny_model(ratios=(2, 4))
    together = to_pte(export_programs(model, 64, progress=False), workers=1)
    merged = to_pte(export_programs(model, 64, progress=False), workers=3)
    assert merged == together


def test_extra_ratios_cost_only_their_plugins(bundle_dir, tokenizer, tmp_path):
    """The k = 1 and k = 2 methods share each layer's weights: the .pte grows by about the plugins."""
    plain = tiny_model(ratios=())
    write_bundle(plain, tokenizer, tiny_source(), tmp_path / "k1", progress=False)
    plugin_bytes = 4 * sum(p.numel() for name, p in tiny_model().named_parameters() if ".plugins." in name)
    with_ratios = (bundle_dir / "model.pte").stat().st_size
    assert with_ratios <= 1.10 * ((tmp_path / "k1" / "model.pte").stat().st_size + plugin_bytes)


# int8-static calibrates every piece (100 s on 2 cores): slow; its calibration is checked in the
# default run by test_static_int8_reads_its_calibration_and_dynamic_int8_does_not.
@pytest.mark.parametrize("quantize", ["int8", pytest.param("int8-static", marks=pytest.mark.slow)])
def test_int8_bundles_run_close_to_fp32(tokenizer, tmp_path, quantize):
    model = tiny_model()
    manifest = write_bundle(model, tokenizer, tiny_source(), tmp_path / "int8", quantize=quantize,
                            calibration_texts=TEXTS * 4, progress=False)
    assert manifest["files"]["executorch"]["quantize"] == {"int8": "int8-dynamic"}.get(quantize, quantize)
    assert (manifest["inputs"]["calibration_sha256"] is None) == (quantize == "int8")  # read only if static
    program = open_program(tmp_path / "int8" / "model.pte")
    batch = tokenizer([TEXTS[1]])
    hidden = program.load_method("embed").execute([batch.input_ids])[0]
    out = program.load_method("layer_0_k1").execute([hidden, batch.attention_mask])[0]
    with torch.no_grad():
        expected = model.encoder.layers[0](hidden, additive_mask(batch.attention_mask, hidden.dtype), 1)
    assert (out - expected).abs().max() < 0.1 * expected.abs().max()  # int8 error, not a different function
    assert not torch.equal(out, expected)


def test_static_int8_reads_its_calibration_and_dynamic_int8_does_not(tokenizer):
    """Static activation ranges come from the calibration texts; dynamic ones from each input."""
    model = tiny_model(ratios=())
    module = pieces(model)["layer_0_k1"]
    calm = piece_inputs(model, tokenizer, TEXTS)["layer_0"]
    loud = [(hidden * 8, mask) for hidden, mask in calm]
    probe = calm[1]

    def output(static: bool, calibration) -> torch.Tensor:
        return quantized_piece("layer_0_k1", module, 32, 64, static, calibration).module()(*probe)

    assert not torch.equal(output(True, calm), output(True, loud))
    assert torch.equal(output(False, calm), output(False, loud))
    with pytest.raises(ValueError, match="int8-static .* calibration"):
        write_bundle(model, tokenizer, tiny_source(), Path("unused"), quantize="int8-static", progress=False)
    with pytest.raises(ValueError, match="quantize must be one of"):
        write_bundle(model, tokenizer, tiny_source(), Path("unused"), quantize="int4", progress=False)


def test_truncated_or_altered_pte_is_refused(bundle_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(bundle_dir, broken)
    data = (broken / "model.pte").read_bytes()
    (broken / "model.pte").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptProgramError, match="sha256 differs"):
        load_manifest(broken)
    (tmp_path / "garbage.pte").write_bytes(b"not a program" * 100)
    with pytest.raises(CorruptProgramError, match="not a loadable ExecuTorch program"):
        open_program(tmp_path / "garbage.pte")


def test_the_manifest_holds_every_files_sha256_every_input_and_the_policy_table(bundle_dir):
    manifest = load_manifest(bundle_dir)
    files = sorted(f.relative_to(bundle_dir).as_posix() for f in bundle_dir.rglob("*") if f.is_file())
    assert sorted(manifest["checksums"]) == [f for f in files if f != "manifest.json"]
    expected = {"model.pte", "tokenizer/tokenizer.json", "model.mlpackage/Manifest.json"}
    assert expected <= set(manifest["checksums"])
    assert manifest["files"]["coreml"]["sha256"] == folder_digest(bundle_dir / "model.mlpackage")
    inputs = dict(manifest["inputs"])
    assert inputs.pop("export_key") == canonical_sha256(inputs)
    assert inputs["formats"] == ["coreml", "executorch"] and inputs["ratios"] == [1, 2]
    assert manifest["policy"] == default_policy([1, 2], manifest["exits"]["thresholds"])
    assert inputs["policy_sha256"] == canonical_sha256(manifest["policy"])


def test_a_bundle_with_one_file_altered_or_missing_is_refused_naming_it(bundle_dir, tmp_path):
    edited = tmp_path / "edited"
    shutil.copytree(bundle_dir, edited)
    (edited / "profiles" / "executorch").mkdir(parents=True)
    (edited / "profiles" / "executorch" / "phone.json").write_text("{}")  # device facts: not checked
    load_manifest(edited)
    config = edited / "tokenizer" / "tokenizer_config.json"
    config.write_text(config.read_text().replace("}", ', "extra": 1}', 1))
    with pytest.raises(AlteredFileError, match="tokenizer/tokenizer_config.json is not the file that was"):
        load_manifest(edited)
    shutil.copy(bundle_dir / "tokenizer" / "tokenizer_config.json", config)
    next((edited / "model.mlpackage").rglob("*.mlmodel")).unlink()
    with pytest.raises(AlteredFileError, match=r"model.mlpackage/.*model.mlmodel is missing"):
        load_manifest(edited)


@pytest.mark.parametrize("edit, message", [
    ({"schema_version": 1}, "schema_version 1 is not 2.*export the bundle again"),
    ({"policy": None}, "no policy table.*export the bundle again"),
    ({"policy": {"rules": [{"name": "a", "when": {}, "ratio": 4, "threshold": None}]}}, "ratio 4"),
])
def test_an_older_manifest_or_one_without_a_usable_policy_table_is_refused(bundle_dir, tmp_path, edit,
                                                                            message):
    edited = tmp_path / "edited"
    shutil.copytree(bundle_dir, edited)
    manifest = json.loads((edited / "manifest.json").read_text())
    (edited / "manifest.json").write_text(json.dumps({**manifest, **edit}))
    with pytest.raises(ManifestError, match=message):
        load_manifest(edited)


def test_the_export_key_changes_with_every_input(tokenizer):
    model = tiny_model()

    def key_of(model=model, tokenizer=tokenizer, source=None, **options):
        return export_inputs(model, tokenizer, source or tiny_source(), **options)["export_key"]

    others = [key_of(source=tiny_source({"drop_1": 0.5})),
              key_of(source={**tiny_source(), "plugins_sha256": {"2": "cd" * 32}}),
              key_of(tokenizer=Tokenizer(default_model_dir(), 32)),
              key_of(quantize="int8"), key_of(quantize="int8-static", calibration_texts=TEXTS),
              key_of(formats=("executorch", "coreml")), key_of(model=tiny_model(ratios=()))]
    assert len({key_of(), *others}) == 1 + len(others)
    assert key_of(model=tiny_model()) == key_of()
    assert key_of(calibration_texts=TEXTS) == key_of()  # texts the quantizer does not read change nothing
    assert key_of(quantize="int8", calibration_texts=TEXTS) == key_of(quantize="int8-dynamic")


def test_manifest_from_another_backbone_is_refused(bundle_dir):
    with pytest.raises(BackboneMismatchError, match="exported from backbone tiny"):
        load_manifest(bundle_dir, expected_sha256="cd" * 32)
    assert load_manifest(bundle_dir, expected_sha256=SHA)["backbone"]["sha256"] == SHA


def test_a_method_missing_from_the_pte_is_refused(bundle_dir, tmp_path):
    edited = tmp_path / "edited"
    shutil.copytree(bundle_dir, edited)
    manifest = json.loads((edited / "manifest.json").read_text())
    manifest["methods"]["layer_2_k1"] = manifest["methods"]["layer_1_k1"]
    (edited / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(MissingMethodError, match="layer_2_k1"):
        load_manifest(edited)


def test_a_manifest_off_the_schema_names_the_field(bundle_dir, tmp_path):
    edited = tmp_path / "edited"
    shutil.copytree(bundle_dir, edited)
    manifest = json.loads((edited / "manifest.json").read_text())
    manifest["model"]["max_length"] = 60  # not a multiple of 8
    (edited / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match="model/max_length"):
        load_manifest(edited)
    with pytest.raises(ManifestError, match="no manifest.json"):
        load_manifest(tmp_path)


def test_an_interrupted_export_leaves_the_previous_bundle(bundle_dir, tokenizer, tmp_path, monkeypatch):
    target = tmp_path / "bundle"
    shutil.copytree(bundle_dir, target)
    before = {p.name: p.stat().st_size for p in target.iterdir()}

    def crash(programs, workers=None):
        raise KeyboardInterrupt("killed mid-export")

    monkeypatch.setattr("edge_variator.export.executorch.to_pte", crash)
    with pytest.raises(KeyboardInterrupt):
        write_bundle(tiny_model(), tokenizer, tiny_source(), target, progress=False)
    assert {p.name: p.stat().st_size for p in target.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name != "bundle"]  # no half bundle left beside it
    assert load_manifest(target)["backbone"]["id"] == "tiny"
