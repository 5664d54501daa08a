"""Reading a bundle: its manifest checked against the schema, its files against their hashes, and its
ExecuTorch program opened. What an app or a server needs to run a bundle, without the training stack.

    bundle/
      model.pte          every method (embed, layer_{i}_k{k}, exit_{i}) in one ExecuTorch program
      model.mlpackage    the same pieces as Core ML functions (optional)
      tokenizer/         the model's own tokenizer files
      manifest.json      validated against manifest.schema.json (shipped beside this module), with
                         the sha256 of every file above
      profiles/          device facts written after export (profile.py), outside the checksums

docs/BUNDLE.md is the contract, for the apps' ports too.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from edge_variator.files import file_sha256
from edge_variator.runtime.policy import PolicyError, check_policy

SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")
SCHEMA_VERSION = 2
PROFILES = "profiles"  # <runtime>/<device>.json and .policy.json: written after export, not checksummed


class BundleError(Exception):
    """A bundle cannot be used as it is."""


class ManifestError(BundleError):
    """manifest.json is missing, not JSON, or does not follow the schema; or a file it names is absent."""


class BackboneMismatchError(BundleError):
    """The bundle was exported from another backbone than the one expected."""


class MissingMethodError(BundleError):
    """The manifest names a method that model.pte does not have."""


class CorruptProgramError(BundleError):
    """model.pte is truncated, altered or not an ExecuTorch program."""


class AlteredFileError(BundleError):
    """A file of the bundle is missing or is not the one that was exported (its sha256 differs)."""


def validate(manifest: dict) -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version != SCHEMA_VERSION:
        raise ManifestError(f"manifest schema_version {version!r} is not {SCHEMA_VERSION}: the bundle was "
                            "written by an older edge-variator; export the bundle again")
    if manifest.get("policy") is None:
        raise ManifestError("manifest.json has no policy table (policy is missing or null), and the runtime "
                            "has none of its own to fall back on: export the bundle again")
    try:
        jsonschema.validate(manifest, schema)
    except jsonschema.ValidationError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ManifestError(f"manifest.json does not follow the schema at {where}: {error.message}") from None
    for k, methods in manifest["ratios"].items():
        missing = [m for m in methods if m not in manifest["methods"]]
        if missing:
            raise ManifestError(f"ratio {k} lists methods the manifest does not describe: {missing[:3]}")
    pte = manifest["files"]["executorch"]
    if manifest["checksums"].get(pte["path"]) != pte["sha256"]:
        raise ManifestError(f"manifest checksums do not list {pte['path']} with files.executorch's sha256")
    try:
        check_policy(manifest["policy"], [int(k) for k in manifest["ratios"]],
                     manifest["exits"]["thresholds"])
    except PolicyError as error:
        raise ManifestError(f"manifest policy: {error}") from None


def bundle_checksums(bundle_dir: str | Path) -> dict[str, str]:
    """Relative path -> sha256 of every file a bundle holds but its manifest and its profiles."""
    bundle_dir = Path(bundle_dir)
    names = [path.relative_to(bundle_dir) for path in sorted(bundle_dir.rglob("*")) if path.is_file()]
    return {name.as_posix(): file_sha256(bundle_dir / name) for name in names
            if name.as_posix() != "manifest.json" and name.parts[0] != PROFILES}


def check_files(bundle_dir: Path, manifest: dict) -> None:
    """Every file the manifest lists is there with its exported sha256; names the first that is not."""
    pte = manifest["files"]["executorch"]["path"]
    for name, expected in sorted(manifest["checksums"].items()):
        path = bundle_dir / name
        if not path.is_file():
            raise AlteredFileError(f"{bundle_dir}: {name} is missing; export the bundle again")
        if file_sha256(path) != expected:
            if name == pte:
                raise CorruptProgramError(f"{path} is not the file that was exported (sha256 differs): "
                                          "truncated or altered; export the bundle again")
            raise AlteredFileError(f"{bundle_dir}: {name} is not the file that was exported (sha256 "
                                   "differs); export the bundle again")


def load_manifest(bundle_dir: str | Path, expected_sha256: str | None = None,
                  check_program: bool = True) -> dict:
    """Read and check a bundle: schema and policy table, every file present and unaltered, every
    method in model.pte."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / "manifest.json"
    if not path.is_file():
        raise ManifestError(f"{bundle_dir} is not a bundle: no manifest.json")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ManifestError(f"{path} is not valid JSON: {error}") from None
    validate(manifest)
    if expected_sha256 is not None and manifest["backbone"]["sha256"] != expected_sha256:
        raise BackboneMismatchError(
            f"{bundle_dir} was exported from backbone {manifest['backbone']['id']} "
            f"(sha256 {manifest['backbone']['sha256'][:12]}...), not the expected {expected_sha256[:12]}...")
    check_files(bundle_dir, manifest)
    pte = bundle_dir / manifest["files"]["executorch"]["path"]
    if check_program:
        program = open_program(pte)
        missing = sorted(set(manifest["methods"]) - set(program.method_names))
        if missing:
            raise MissingMethodError(f"{pte} lacks methods the manifest names: {missing[:5]}")
    return manifest


class Program:
    """An opened model.pte: `load_method(name).execute(inputs)`, as `executorch.runtime.Program`.

    That public wrapper imports the compiled runtime through `portable_lib`, which first imports
    all of `executorch.exir`, the exporter: 4 of the 6.5 s that `edge-variator run` took to start.
    The wrapper is a thin layer over the extension's own objects, so this takes them directly."""

    def __init__(self, program):
        self._program = program
        self.method_names = {program.get_method_name(i) for i in range(program.num_methods())}

    def load_method(self, name: str):
        if name not in self.method_names:
            raise MissingMethodError(f"the program has no method {name!r}")
        return _Method(self._program.load_method(name))


class _Method:
    def __init__(self, method):
        import torch  # loaded already: open_program imports it before any method exists

        self._method = method
        self._from_numpy = torch.from_numpy

    def execute(self, inputs):
        # The bindings' own output clone is a torch op: it wakes torch's OpenMP pool, whose threads
        # then spin on the cores XNNPACK's threadpool needs next (calls 1.6x slower on 2 cores,
        # bench/thread_spin.py). numpy's copy is a plain memcpy; the outputs still outlive the call.
        outputs = self._method(inputs, clone_outputs=False)
        return [self._from_numpy(output.numpy().copy()) for output in outputs]


def open_program(pte: str | Path) -> Program:
    """The ExecuTorch program, or CorruptProgramError when the runtime refuses the file."""
    import torch  # noqa: F401  (the extension links against torch's libraries: load them first)
    from executorch.extension.pybindings import _portable_lib as runtime

    try:
        return Program(runtime._load_program(str(pte), enable_etdump=False, debug_buffer_size=0,
                                             program_verification=runtime.Verification.InternalConsistency))
    except (RuntimeError, ValueError) as error:
        raise CorruptProgramError(f"{pte} is not a loadable ExecuTorch program: {error}") from None
