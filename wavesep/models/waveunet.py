"""Wave-U-Net (Stoller, Ewert & Dixon 2018): a one-dimensional U-Net on the waveform.

This is the paper's architecture with "same" padding (its M1-M4 variants), so any length that is
a multiple of ``2 ** levels`` is valid and the base class pads to one. Down-sampling drops every
other sample (decimation), up-sampling interpolates linearly, as in the paper.

References:
    D. Stoller, S. Ewert, S. Dixon, "Wave-U-Net: a multi-scale neural network for end-to-end audio
    source separation", ISMIR 2018, arXiv:1806.03185.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wavesep.models.base import ModelSpec, SeparationModel, film, modulate


@dataclass(frozen=True)
class WaveUNetConfig:
    levels: int = 12  # down-sampling blocks (the paper: 12)
    growth: int = 24  # filters added per level: level i has growth * (i + 1) (the paper: 24)
    down_kernel_size: int = 15  # the paper: 15
    up_kernel_size: int = 5  # the paper: 5


class _Conv(nn.Module):
    """Conv -> FiLM -> LeakyReLU, length-preserving."""

    def __init__(self, inputs: int, outputs: int, kernel_size: int, cond_dim: int):
        super().__init__()
        self.conv = nn.Conv1d(inputs, outputs, kernel_size, padding=kernel_size // 2)
        self.film = film(cond_dim, outputs)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return nn.functional.leaky_relu(modulate(self.film, self.conv(x), cond), 0.2)


class WaveUNet(SeparationModel):
    """Down: conv(15) -> keep for the skip -> decimate, ``levels`` times; bottleneck conv(15);
    up: interpolate x2 -> concatenate the skip -> conv(5); finally the input is concatenated and a
    1x1 convolution gives the outputs."""

    name = "waveunet"
    Config = WaveUNetConfig

    def __init__(self, spec: ModelSpec, config: WaveUNetConfig = WaveUNetConfig()):
        if config.levels < 1 or config.growth < 1 or config.down_kernel_size % 2 == 0 or config.up_kernel_size % 2 == 0:
            raise ValueError("waveunet: levels and growth must be positive, kernel sizes odd")
        width = [config.growth * (i + 1) for i in range(config.levels + 1)]
        super().__init__(spec, config, feature_channels=width[-1])
        cd, c = spec.cond_dim, spec.audio_channels
        self.down = nn.ModuleList(
            _Conv(c if i == 0 else width[i - 1], width[i], config.down_kernel_size, cd) for i in range(config.levels)
        )
        self.bottleneck = _Conv(width[-2], width[-1], config.down_kernel_size, cd)
        self.up = nn.ModuleList(  # from the deepest level up
            _Conv(width[i + 1] + width[i], width[i], config.up_kernel_size, cd) for i in reversed(range(config.levels))
        )
        self.output = nn.Conv1d(width[0] + c, spec.n_outputs * c, 1)

    def valid_length(self, length: int) -> int:
        step = 2**self.config.levels
        return max(step, -(-length // step) * step)

    @property
    def receptive_field(self) -> int:
        """An upper bound: with decimation, the exact span depends on the output sample's phase."""
        c = self.config
        field, rate = 1, 1
        for _ in range(c.levels):  # down path: each conv at a rate halved by the decimations before it
            field += (c.down_kernel_size - 1) * rate
            rate *= 2
        field += (c.down_kernel_size - 1) * rate
        for _ in range(c.levels):
            # Linear interpolation reads two coarse neighbours: one coarse step before and none
            # after (even outputs), or half a step on each side (odd): 1.5 coarse steps at worst.
            field += rate + rate // 2
            rate //= 2
            field += (c.up_kernel_size - 1) * rate
        return field

    def separate(self, x: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        skips, h = [], x
        for block in self.down:
            h = block(h, cond)
            skips.append(h)
            h = h[..., ::2]  # (batch, width, time / 2**(level + 1))
        features = h = self.bottleneck(h, cond)
        for block, skip in zip(self.up, reversed(skips)):
            h = nn.functional.interpolate(h, size=skip.shape[-1], mode="linear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1), cond)
        return self.output(torch.cat([h, x], dim=1)), features
