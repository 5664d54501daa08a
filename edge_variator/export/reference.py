"""The PyTorch reference of a bundle's runner: the same early-exit loop (runtime/runner.py) over the
pieces a bundle is exported from, which the ExecuTorch runner must agree with."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from edge_variator.exits import MultiExitModel
from edge_variator.export.bundle import build_manifest
from edge_variator.export.pieces import exit_layers, pieces
from edge_variator.plugins import available_ratios
from edge_variator.runtime.policy import Policy
from edge_variator.runtime.runner import Runner
from edge_variator.task import TaskModel
from edge_variator.tokenizer import Tokenizer


class TorchRunner(Runner):
    """The runner's loop over the PyTorch pieces of `model`, described by a bundle's manifest, or
    without one by the manifest its export would write (exits judged by `criterion`)."""

    def __init__(self, model: TaskModel | MultiExitModel, tokenizer: Tokenizer,
                 manifest: Mapping | None = None, policy: Policy | None = None, criterion: str = "entropy"):
        self.modules = pieces(model.eval())
        if manifest is None:
            source = {"id": "torch", "sha256": "", "criterion": criterion, "thresholds": {}}
            manifest = build_manifest(model, tokenizer, source, list(self.modules), files={})
        if (exit_layers(model) != manifest["exits"]["after_layers"]
                or available_ratios(model.encoder) != sorted(int(k) for k in manifest["ratios"])):
            raise ValueError("this model's exits or ratios differ from the bundle manifest's")
        super().__init__(manifest, tokenizer, policy)

    def method(self, name: str) -> Callable[[list[torch.Tensor]], torch.Tensor]:
        module = self.modules[name]

        def forward(inputs: list[torch.Tensor]) -> torch.Tensor:
            with torch.no_grad():
                return module(*inputs)

        return forward
