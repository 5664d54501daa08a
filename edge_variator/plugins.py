"""Variator compression plugins: the FFN runs on n/k merged vectors instead of n tokens.

A plugin wraps only the FFN of an encoder layer (attention still sees every token):
- merge: each window of k consecutive FFN inputs is scored by Linear(k*d -> k); the softmax of
  those k scores weighs the window into one vector. Padding is masked out of the softmax, so
  a text's output does not depend on how much padding follows it (the paper merges it blindly).
- restore: each FFN output is repeated k times, concatenated with the token's own pre-merge
  vector, and Adapter(2d -> bottleneck -> d, tanh) adds a per-token correction.
About k*k*d + (2d+1)*bottleneck + d parameters per layer. The backbone stays frozen: a
`PluginSet` (one per ratio) is saved apart, bound to the backbone's sha256.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from edge_variator.encoder import Encoder, EncoderConfig, FeedForward, ModelLoadError
from edge_variator.files import atomic_directory, write_json

RATIOS = (2, 4, 8)
MAX_RATIO = max(RATIOS)  # the tokenizer pads every batch to a multiple of this


class PluginMismatchError(ModelLoadError):
    """A plugin set does not fit the backbone it is being attached to."""


class RatioError(ValueError):
    """A compression ratio that is not available (or a length it does not divide)."""


class CompressionPlugin(nn.Module):
    """Merge k -> 1 before the FFN and restore the length after it, for one layer."""

    def __init__(self, hidden: int, ratio: int, bottleneck: int = 64):
        super().__init__()
        self.ratio = ratio
        self.merge_scores = nn.Linear(ratio * hidden, ratio)
        # the paper's Adapter(2d -> bottleneck) on cat[repeated FFN output, token input], as its two
        # halves: the first then runs on n/k rows before the repeat, and each is a plain weight that
        # XNNPACK takes whole (a slice of one weight is left to the slow portable kernels)
        self.adapter_from_merged = nn.Linear(hidden, bottleneck, bias=False)
        self.adapter_from_token = nn.Linear(hidden, bottleneck)
        self.adapter_out = nn.Linear(bottleneck, hidden)
        # initialisation as in the paper's code: a He-scaled scorer, a near-silent adapter
        nn.init.normal_(self.merge_scores.weight, std=math.sqrt(2 / (hidden * ratio)))
        for linear in (self.adapter_from_merged, self.adapter_from_token, self.adapter_out):
            nn.init.normal_(linear.weight, std=0.01)
        for linear in (self.merge_scores, self.adapter_from_token, self.adapter_out):
            nn.init.zeros_(linear.bias)

    def merge(self, hidden: torch.Tensor, additive_mask: torch.Tensor | None) -> torch.Tensor:
        """(batch, n, d) -> (batch, n/k, d): a learned, padding-masked weighted sum per window."""
        batch, seq, dim = hidden.shape
        windows = hidden.reshape(batch, seq // self.ratio, self.ratio, dim)
        scores = self.merge_scores(windows.reshape(batch, seq // self.ratio, self.ratio * dim))
        if additive_mask is not None:  # (batch, 1, 1, n) -> (batch, n/k, k)
            scores = scores + additive_mask.reshape(batch, seq // self.ratio, self.ratio)
        weights = torch.softmax(scores, dim=-1)
        return torch.matmul(weights.unsqueeze(-2), windows).squeeze(-2)  # a batched matmul, delegated

    def restore(self, merged_output: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """(batch, n/k, d) FFN outputs -> (batch, n, d), corrected per token from its own input.

        Each window's k tokens are one axis of (batch, n/k, k, .), so a merged vector reaches its k
        tokens by a broadcast add rather than being repeated k times: XNNPACK runs the add, while
        the repeat's concat was a portable kernel that split the layer (bench/restore.py)."""
        batch, seq, dim = hidden.shape
        windows = (batch, seq // self.ratio, self.ratio, -1)
        from_merged = self.adapter_from_merged(merged_output).unsqueeze(2)
        bottleneck = self.adapter_from_token(hidden).reshape(windows) + from_merged
        corrected = self.adapter_out(torch.tanh(bottleneck))
        return (corrected + merged_output.unsqueeze(2)).reshape(batch, seq, dim)

    def forward(self, hidden: torch.Tensor, ffn: FeedForward,
                additive_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.restore(ffn(self.merge(hidden, additive_mask)), hidden)


class PluggedFFN(nn.Module):
    """A layer's frozen FFN plus its plugins, one per ratio; `ratio` picks which runs (1 = none)."""

    def __init__(self, base: FeedForward):
        super().__init__()
        self.base = base
        self.plugins = nn.ModuleDict()
        self.ratio = 1

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor | None = None,
                ratio: int | None = None) -> torch.Tensor:
        """At `ratio` when given (an exported method fixes its own), else at `self.ratio`."""
        ratio = self.ratio if ratio is None else ratio
        if ratio == 1:
            return self.base(hidden)
        if hidden.shape[1] % ratio:
            raise RatioError(f"sequence length {hidden.shape[1]} is not a multiple of ratio "
                             f"{ratio}: pad batches with edge_variator.tokenizer.Tokenizer")
        return self.plugins[str(ratio)](hidden, self.base, additive_mask)


@dataclass
class PluginConfig:
    ratio: int
    layers: list[int]  # which encoder layers get a plugin
    bottleneck: int = 64
    backbone_sha256: str = ""
    backbone: dict = field(default_factory=dict)  # EncoderConfig.to_dict() of the backbone


class PluginSet(nn.Module):
    """The plugins of one ratio for the chosen layers of one backbone."""

    def __init__(self, config: PluginConfig):
        super().__init__()
        if config.ratio not in RATIOS:
            raise RatioError(f"ratio {config.ratio} is not one of {RATIOS}")
        self.config = config
        hidden = config.backbone["hidden"]
        self.plugins = nn.ModuleDict({
            str(layer): CompressionPlugin(hidden, config.ratio, config.bottleneck)
            for layer in config.layers
        })

    @classmethod
    def for_backbone(cls, encoder: Encoder, backbone_sha256: str, ratio: int,
                     layers: Sequence[int] | None = None, bottleneck: int = 64) -> PluginSet:
        layers = list(range(encoder.config.layers)) if layers is None else sorted(layers)
        if not layers or not all(0 <= layer < encoder.config.layers for layer in layers):
            raise ValueError(f"layers {layers} must be a non-empty subset of 0..{encoder.config.layers - 1}")
        return cls(PluginConfig(ratio, layers, bottleneck, backbone_sha256, encoder.config.to_dict()))

    def save(self, out_dir: str | Path, dtype: torch.dtype = torch.float32) -> None:
        """plugins.safetensors + plugins.json, atomically; no pickle. fp16 halves the file (shipped sets)."""
        with atomic_directory(out_dir) as tmp:
            save_file({k: v.detach().to(dtype).contiguous() for k, v in self.state_dict().items()},
                      tmp / "plugins.safetensors")
            write_json(tmp / "plugins.json", asdict(self.config))

    @classmethod
    def load(cls, path: str | Path) -> PluginSet:
        path = Path(path)
        if not (path / "plugins.json").is_file():
            raise ModelLoadError(f"{path} is not a plugin set: no plugins.json")
        plugin_set = cls(PluginConfig(**json.loads((path / "plugins.json").read_text())))
        plugin_set.load_state_dict(split_adapter_in(load_file(path / "plugins.safetensors")))
        return plugin_set

    def check_fits(self, encoder: Encoder, backbone_sha256: str) -> None:
        trained_for = EncoderConfig(**self.config.backbone)
        if backbone_sha256 != self.config.backbone_sha256:
            raise PluginMismatchError(
                f"ratio-{self.config.ratio} plugins were trained for backbone sha256 "
                f"{self.config.backbone_sha256[:12]}... ({trained_for.layers} layers x "
                f"{trained_for.hidden}), not this one ({backbone_sha256[:12]}...): train plugins "
                "for this backbone with `edge-variator plugins train`")
        if trained_for != encoder.config:
            raise PluginMismatchError(
                f"ratio-{self.config.ratio} plugins were trained for a {trained_for.layers} x "
                f"{trained_for.hidden} backbone, this one is {encoder.config.layers} x "
                f"{encoder.config.hidden}")


def split_adapter_in(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Sets saved before the adapter was two linears hold one `adapter_in` (2d -> bottleneck): split it."""
    for key in [k for k in state if k.endswith(".adapter_in.weight")]:
        prefix = key[: -len("adapter_in.weight")]
        weight = state.pop(key)
        dim = weight.shape[1] // 2
        state[prefix + "adapter_from_merged.weight"] = weight[:, :dim].contiguous()
        state[prefix + "adapter_from_token.weight"] = weight[:, dim:].contiguous()
        state[prefix + "adapter_from_token.bias"] = state.pop(prefix + "adapter_in.bias")
    return state


def attach(encoder: Encoder, plugin_set: PluginSet, backbone_sha256: str) -> None:
    """Plug a set into the encoder (after checking it fits); the encoder keeps running at ratio 1."""
    plugin_set.check_fits(encoder, backbone_sha256)
    for layer_index, plugin in plugin_set.plugins.items():
        layer = encoder.layers[int(layer_index)]
        if not isinstance(layer.ffn, PluggedFFN):
            layer.ffn = PluggedFFN(layer.ffn)
        layer.ffn.plugins[str(plugin_set.config.ratio)] = plugin


def saved_ratios(plugins_dir: str | Path) -> list[int]:
    """The ratios of the plugin sets saved in `plugins_dir` (its k{ratio}/ folders), ascending."""
    return sorted(int(path.name[1:]) for path in Path(plugins_dir).glob("k*") if path.name[1:].isdigit())


def available_ratios(encoder: Encoder) -> list[int]:
    """1 plus every ratio that all plugged layers have."""
    plugged = [layer.ffn for layer in encoder.layers if isinstance(layer.ffn, PluggedFFN)]
    if not plugged:
        return [1]
    common = set.intersection(*(set(int(k) for k in ffn.plugins) for ffn in plugged))
    return [1, *sorted(common)]


def set_ratio(encoder: Encoder, ratio: int) -> None:
    """Run every plugged layer at `ratio` (1 = the plain backbone)."""
    if ratio not in available_ratios(encoder):
        raise RatioError(f"ratio {ratio} is not available; attached: {available_ratios(encoder)}")
    for layer in encoder.layers:
        if isinstance(layer.ffn, PluggedFFN):
            layer.ffn.ratio = ratio


def cost_arguments(encoder: Encoder, ratio: int) -> dict[str, int]:
    """What `cost.encoder_flops` needs to count the plugins attached at `ratio` (layers, bottleneck)."""
    if ratio == 1:
        return {"ratio": 1}
    plugins = [layer.ffn.plugins[str(ratio)] for layer in encoder.layers
               if isinstance(layer.ffn, PluggedFFN) and str(ratio) in layer.ffn.plugins]
    if not plugins:
        raise RatioError(f"no ratio-{ratio} plugins are attached")
    return {"ratio": ratio, "plugged_layers": len(plugins), "bottleneck": plugins[0].adapter_out.in_features}
