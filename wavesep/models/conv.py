"""The original study's baseline: four one-dimensional convolutions with large kernels."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wavesep.models.base import FiLM, ModelSpec, SeparationModel


@dataclass(frozen=True)
class ConvConfig:
    channels: int = 32  # filters of the three hidden layers
    kernel_size: int = 101  # every layer's kernel ("large"; odd, so the length is kept)
    skip: bool = True  # add layer 1's output to layer 3's (the study: better with skips)


class ConvSeparator(SeparationModel):
    """Conv (kernel) -> ReLU, three times, then a convolution to the outputs; all length-preserving.

    The study found it learns single instruments but collapses to silence on multi-instrument
    targets: it is here as the baseline to beat.
    """

    name = "conv"
    Config = ConvConfig

    def __init__(self, spec: ModelSpec, config: ConvConfig = ConvConfig()):
        if config.kernel_size % 2 == 0 or config.kernel_size < 1 or config.channels < 1:
            raise ValueError("conv: kernel_size must be odd and channels positive")
        super().__init__(spec, config, feature_channels=config.channels)
        c, k = config.channels, config.kernel_size
        inputs = [spec.audio_channels, c, c, c]
        outputs = [c, c, c, spec.n_outputs * spec.audio_channels]
        self.layers = nn.ModuleList(nn.Conv1d(i, o, k, padding=k // 2) for i, o in zip(inputs, outputs))
        self.films = nn.ModuleList(FiLM(spec.cond_dim, c) for _ in range(3)) if spec.cond_dim else None

    @property
    def receptive_field(self) -> int:
        return 4 * (self.config.kernel_size - 1) + 1

    def separate(self, x: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        first = None
        for i in range(3):
            x = self.layers[i](x)
            if self.films is not None:
                x = self.films[i](x, cond)
            x = torch.relu(x)
            if i == 0:
                first = x
        if self.config.skip:
            x = x + first  # the skip over the pair of layers 2-3
        return self.layers[3](x), x
