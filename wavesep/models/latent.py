"""wavesep's own design: the WaveNet's dilated gated residual stacks, run on a learned, strided
representation instead of on raw samples.

A learned encoder (a strided convolution, like Conv-TasNet's) turns ``stride`` samples into one
frame of ``basis`` non-negative coefficients; the WaveNet stacks of :mod:`wavesep.models.wavenet`
(residual + skip, dilations doubling in each stack, gated tanh x sigmoid, FiLM conditioning) run
at the frame rate, ``stride`` times fewer steps than at the sample rate, and predict one mask per
output over the coefficients; a transposed convolution turns each masked representation back
into a waveform. The study's findings are kept: residual connections, pyramidal dilations, and
the mixture's own content reappearing at the output (here through the masks).

At the defaults (stride 32: 0.73 ms at 44.1 kHz) three stacks of eight blocks see about 1.1 s of
context, against 0.19 s for the original WaveNet's 40 blocks at the sample rate, for a small
fraction of its cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from wavesep.models.base import ModelSpec, SeparationModel
from wavesep.models.wavenet import DilatedStacks


class FrameNorm(nn.LayerNorm):
    """Layer norm over the channels of each frame: local in time, unlike Conv-TasNet's global norm,
    so a chunk's output does not depend on how long the chunk is.

    Shape:
        (batch, channels, frames) -> (batch, channels, frames)
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


@dataclass(frozen=True)
class LatentWaveNetConfig:
    stride: int = 32  # samples per frame of the learned representation
    window: int = 64  # encoder and decoder filter length (2 x stride: frames overlap by half)
    basis: int = 256  # learned basis functions (coefficients per frame)
    channels: int = 128  # residual channels of the dilated stacks
    skip_channels: int = 128  # skip channels of the dilated stacks
    stacks: int = 3  # stacks of gated blocks ...
    blocks: int = 8  # ... each with dilations 1 ... 2**(blocks - 1) frames
    kernel_size: int = 3  # dilated convolutions' kernel


class LatentWaveNet(SeparationModel):
    """Encoder (strided conv, ReLU) -> per-frame norm + 1x1 -> dilated gated stacks -> PReLU + 1x1 -> sigmoid
    masks, one per output -> masked coefficients -> decoder (transposed conv) -> waveforms."""

    name = "latent-wavenet"
    Config = LatentWaveNetConfig

    def __init__(self, spec: ModelSpec, config: LatentWaveNetConfig = LatentWaveNetConfig()):
        if config.stride < 1 or config.window < config.stride or config.window % config.stride:
            raise ValueError("latent-wavenet: window must be a positive multiple of stride")
        super().__init__(spec, config, feature_channels=config.skip_channels)
        c = spec.audio_channels
        self.encoder = nn.Conv1d(c, config.basis, config.window, stride=config.stride, bias=False)
        self.bottleneck = nn.Sequential(FrameNorm(config.basis), nn.Conv1d(config.basis, config.channels, 1))
        self.stacks = DilatedStacks(config.stacks, config.blocks, config.channels, config.skip_channels,
                                    config.kernel_size, spec.cond_dim)
        self.masks = nn.Sequential(nn.PReLU(), nn.Conv1d(config.skip_channels, spec.n_outputs * config.basis, 1))
        self.decoder = nn.ConvTranspose1d(config.basis, c, config.window, stride=config.stride, bias=False)

    @property
    def _edge(self) -> int:
        """Samples padded on each side so that every input sample is seen by window/stride frames."""
        return self.config.window - self.config.stride

    def valid_length(self, length: int) -> int:
        # Frames cover (padded - window) / stride + 1 hops exactly when this divides.
        stride = self.config.stride
        padded = length + 2 * self._edge - self.config.window
        return max(length, -(-padded // stride) * stride + self.config.window - 2 * self._edge)

    @property
    def receptive_field(self) -> int:
        # frames seen by one frame, spread over the stride, plus the encoder and decoder windows
        return (self.stacks.receptive_field - 1) * self.config.stride + 2 * self.config.window - self.config.stride

    def separate(self, x: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        length = x.shape[-1]
        x = nn.functional.pad(x, (self._edge, self._edge))
        with torch.autocast(x.device.type, enabled=False):  # see _decode
            coefficients = torch.relu(self.encoder(x.to(self.encoder.weight.dtype)))  # (batch, basis, frames)
        skips = self.stacks(self.bottleneck(coefficients), cond)  # (batch, skip_channels, frames)
        batch, basis, frames = coefficients.shape
        masks = torch.sigmoid(self.masks(skips)).view(batch, self.spec.n_outputs, basis, frames)
        masked = (masks * coefficients.unsqueeze(1)).view(batch * self.spec.n_outputs, basis, frames)
        out = self._decode(masked)[..., self._edge : self._edge + length]  # (batch * n_outputs, channels, time)
        return out.reshape(batch, -1, length), skips

    def _decode(self, masked: torch.Tensor) -> torch.Tensor:
        """The decoder, like the encoder, in float32 even under autocast: oneDNN's bfloat16
        convolutions with kernels of 32, 48, 64 or 128 taps return garbage on CPUs with AMX
        (torch 2.13; 3 taps are right), and the decoder's backward pass is such a convolution.
        Both are a small share of the work; the dilated stacks keep autocast's speed."""
        with torch.autocast(masked.device.type, enabled=False):
            return self.decoder(masked.to(self.decoder.weight.dtype))
