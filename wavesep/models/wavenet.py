"""The WaveNet-based separator of Lluís, Pons & Serra (2018), the one that worked in the study.

References:
    F. Lluís, J. Pons, X. Serra, "End-to-end music source separation: is it possible in the
    waveform domain?", arXiv:1810.12187.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from wavesep.models.base import ModelSpec, SeparationModel, film, modulate


class GatedBlock(nn.Module):
    """Dilated convolution -> tanh x sigmoid -> 1x1 to a residual output and a skip output.

    Shape:
        x: (batch, channels, time) -> (residual (batch, channels, time) or None for the last
        block, skip (batch, skip_channels, time))
    """

    def __init__(self, channels: int, skip_channels: int, kernel_size: int, dilation: int, cond_dim: int,
                 residual: bool = True):
        super().__init__()
        self.dilated = nn.Conv1d(channels, 2 * channels, kernel_size, dilation=dilation,
                                 padding=dilation * (kernel_size - 1) // 2)
        self.film = film(cond_dim, 2 * channels)
        # The last block's residual output would feed nothing: it has none (DDP insists every
        # parameter gets a gradient).
        self.residual = nn.Conv1d(channels, channels, 1) if residual else None
        self.skip = nn.Conv1d(channels, skip_channels, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor]:
        filt, gate = modulate(self.film, self.dilated(x), cond).chunk(2, dim=1)
        gated = torch.tanh(filt) * torch.sigmoid(gate)
        if self.residual is None:
            return None, self.skip(gated)
        # sqrt(1/2) keeps the residual stream's variance from growing with depth.
        return (x + self.residual(gated)) * math.sqrt(0.5), self.skip(gated)


class DilatedStacks(nn.Module):
    """``stacks`` x ``blocks`` gated blocks, dilations 1, 2, 4, ... inside each stack; skips summed.

    Shape:
        x: (batch, channels, time) -> skip sum (batch, skip_channels, time)
    """

    def __init__(self, stacks: int, blocks: int, channels: int, skip_channels: int, kernel_size: int,
                 cond_dim: int):
        super().__init__()
        if stacks < 1 or blocks < 1 or kernel_size % 2 == 0:
            raise ValueError("stacks and blocks must be at least 1 and kernel_size odd")
        self.dilations = [2**b for _ in range(stacks) for b in range(blocks)]
        self.kernel_size = kernel_size
        last = len(self.dilations) - 1
        self.blocks = nn.ModuleList(
            GatedBlock(channels, skip_channels, kernel_size, d, cond_dim, residual=i < last)
            for i, d in enumerate(self.dilations)
        )

    @property
    def receptive_field(self) -> int:
        return sum(d * (self.kernel_size - 1) for d in self.dilations) + 1

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        skips = 0
        for block in self.blocks:
            x, skip = block(x, cond)
            skips = skips + skip
        return skips / math.sqrt(len(self.blocks))


@dataclass(frozen=True)
class WaveNetConfig:
    stacks: int = 4  # the original: 4 stacks ...
    blocks: int = 10  # ... of 10 blocks, dilations 1 ... 512
    channels: int = 128  # residual channels
    skip_channels: int = 128  # channels of each skip output
    kernel_size: int = 3  # dilated convolutions' kernel
    final_channels: tuple[int, int] = (512, 256)  # the two ReLU convolutions after the skip sum
    final_kernel_size: int = 3  # their kernel


class WaveNetSeparator(SeparationModel):
    """Input convolution, dilated gated residual stacks, skip sum -> ReLU -> conv(512) -> ReLU ->
    conv(256) -> ReLU -> 1x1 to one waveform per output; non-causal, full sample rate."""

    name = "wavenet"
    Config = WaveNetConfig

    def __init__(self, spec: ModelSpec, config: WaveNetConfig = WaveNetConfig()):
        if len(config.final_channels) != 2 or config.final_kernel_size % 2 == 0:
            raise ValueError("wavenet: final_channels must be two numbers and final_kernel_size odd")
        super().__init__(spec, config, feature_channels=config.skip_channels)
        k, fk = config.kernel_size, config.final_kernel_size
        self.input = nn.Conv1d(spec.audio_channels, config.channels, k, padding=k // 2)
        self.stacks = DilatedStacks(config.stacks, config.blocks, config.channels, config.skip_channels, k,
                                    spec.cond_dim)
        first, second = config.final_channels
        self.final = nn.Sequential(
            nn.ReLU(), nn.Conv1d(config.skip_channels, first, fk, padding=fk // 2),
            nn.ReLU(), nn.Conv1d(first, second, fk, padding=fk // 2),
            nn.ReLU(), nn.Conv1d(second, spec.n_outputs * spec.audio_channels, 1),
        )

    @property
    def receptive_field(self) -> int:
        c = self.config
        return self.stacks.receptive_field + (c.kernel_size - 1) + 2 * (c.final_kernel_size - 1)

    def separate(self, x: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        skips = self.stacks(self.input(x), cond)
        return self.final(skips), skips
