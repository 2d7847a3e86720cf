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

The learned basis is short, so it resolves little below a few hundred Hz. Two optional STFT paths
bring a long window's frequency resolution: the mixture's spectrum as an input to the stacks
(:class:`SpectralInput`), and per-bin gains on it added to the outputs (:class:`SpectralOutput`).
"""

from __future__ import annotations

import math
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
    # STFT sizes of the spectral inputs (none by default): each adds the mixture's log-magnitude
    # spectrum, hop a quarter of the size (a multiple of stride), to the stacks' input frames
    spectral_ffts: tuple[int, ...] = ()
    # STFT size of the spectral output (0: none): per output, a gain on each bin of the mixture's
    # STFT (hop a quarter of the size, a multiple of stride), inverted and added to the output
    spectral_output: int = 0
    spectral_output_hz: float = 0.0  # the highest frequency it corrects (0: up to Nyquist)
    # each frame's level against its surroundings as an input to the stacks (see LevelInput): the
    # frames each side of the local mean it is measured against (0: no level input)
    level_input: int = 0


class LatentWaveNet(SeparationModel):
    """Encoder (strided conv, ReLU) -> per-frame norm + 1x1 -> dilated gated stacks -> PReLU + 1x1 -> sigmoid
    masks, one per output -> masked coefficients -> decoder (transposed conv) -> waveforms."""

    name = "latent-wavenet"
    Config = LatentWaveNetConfig
    bfloat16_separation = True  # encoder and STFT paths in float32, the decoder's product in bfloat16 (see _decode)

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
        self.spectral = nn.ModuleList(SpectralInput(n_fft, config.stride, config.window, c, config.channels)
                                      for n_fft in config.spectral_ffts)
        self.spectral_output = (SpectralOutput(config.spectral_output, config.stride, config.window,
                                               config.skip_channels, spec.n_outputs,
                                               config.spectral_output_hz / spec.sample_rate)
                                if config.spectral_output else None)
        self.level = LevelInput(config.level_input, config.channels) if config.level_input else None

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
        """The widest span of input samples under one output sample, over every phase of the
        strides and hops (exact: tests/test_models.py checks it by the gradient)."""
        c = self.config
        reach = (self.stacks.receptive_field - 1) // 2  # frames each side that one frame's features see
        hops = [spectral.hop for spectral in self.spectral]
        hops += [self.spectral_output.hop] if self.spectral_output else []
        widest = 0
        for t in range(math.lcm(c.stride, *hops)):  # output sample t
            # the decoder's frames over t, and what their features see
            first, last = -(-(t + self._edge - c.window + 1) // c.stride), (t + self._edge) // c.stride
            spans = [self._frames_span(first - reach, last + reach)]
            if self.spectral_output:
                for hop in self.spectral_output.hops_over(t):
                    frame = self.spectral_output.nearest_frame(hop)
                    spans += [self.spectral_output.hop_span(hop), self._frames_span(frame - reach, frame + reach)]
            widest = max(widest, max(high for _, high in spans) - min(low for low, _ in spans) + 1)
        return widest

    def _frames_span(self, first: int, last: int) -> tuple[int, int]:
        """The input samples that the stacks' input frames ``first`` ... ``last`` see: through the
        encoder, and through the spectral inputs."""
        c = self.config
        context = c.level_input  # the level input's frames reach this far either side
        spans = [((first - context) * c.stride - self._edge, (last + context) * c.stride - self._edge + c.window - 1)]
        spans += [spectral.span(first, last) for spectral in self.spectral]
        return min(low for low, _ in spans), max(high for _, high in spans)

    def separate(self, x: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        length = x.shape[-1]
        x = nn.functional.pad(x, (self._edge, self._edge))
        with torch.autocast(x.device.type, enabled=False):  # see _decode
            coefficients = torch.relu(self.encoder(x.to(self.encoder.weight.dtype)))  # (batch, basis, frames)
        batch, basis, frames = coefficients.shape
        hidden = self.bottleneck(coefficients)
        if self.level is not None:
            hidden = hidden + self.level(coefficients)
        for spectral in self.spectral:
            hidden = hidden + spectral(x[..., self._edge : self._edge + length], frames)
        skips = self.stacks(hidden, cond)  # (batch, skip_channels, frames)
        masks = torch.sigmoid(self.masks(skips)).view(batch, self.spec.n_outputs, basis, frames)
        masked = (masks * coefficients.unsqueeze(1)).view(batch * self.spec.n_outputs, basis, frames)
        out = self._decode(masked)[..., self._edge : self._edge + length]  # (batch * n_outputs, channels, time)
        out = out.reshape(batch, -1, length)
        if self.spectral_output:
            out = out + self.spectral_output(x[..., self._edge : self._edge + length], skips)
        return out, skips

    def _decode(self, masked: torch.Tensor) -> torch.Tensor:
        """The decoder's transposed convolution as one matrix product and an overlap-add of the
        frames' pieces by ``window / stride`` shifted adds: what ``self.decoder`` computes, without
        oneDNN's transposed convolution.

        Under autocast (bfloat16 on a CPU that has it) the matrix product runs in bfloat16: a GEMM,
        not one of the convolutions that oneDNN's bfloat16 kernels get wrong on such CPUs (torch
        2.13: 32, 48, 64 or 128 taps return garbage, forward or backward; the encoder stays in
        float32 for that). On this project's AMD EPYC that product is 5.8x faster than in float32
        (88 -> 15 ms for 10 s of 6 stereo stems, 2 threads), its result 48 dB from float32's. The
        shifted adds run in float32, 3x faster than ``fold``."""
        weight = self.decoder.weight  # (basis, channels, window)
        basis, channels, window = weight.shape
        n, _, frames = masked.shape
        stride, shifts = self.config.stride, window // self.config.stride
        pieces = torch.matmul(weight.reshape(basis, -1).t(), masked).float()  # (n, channels * window, frames)
        # (n, channels, shifts, stride, frames): each frame's windowed waveform, in stride-long parts
        pieces = pieces.view(n, channels, shifts, stride, frames)
        out = pieces.new_zeros(n, channels, frames + shifts - 1, stride)
        for shift in range(shifts):  # part k of frame f lands on output part f + k
            out[:, :, shift : shift + frames] += pieces[:, :, shift].transpose(-1, -2)
        return out.view(n, channels, -1)


class LevelInput(nn.Module):
    """Each frame's level, in bels, less the mean level of the ``context`` frames either side,
    projected to the stacks' channels. The per-frame norm of the coefficients removes their level,
    and with it the onsets that mark a drum hit whatever the drum sounds like; measured against its
    surroundings, the level says where the onsets are and does not depend on the song's loudness.

    Shape:
        (batch, basis, frames) -> (batch, out_channels, frames)
    """

    def __init__(self, context: int, out_channels: int):
        super().__init__()
        self.context = context
        self.project = nn.Conv1d(1, out_channels, 1, bias=False)

    def forward(self, coefficients: torch.Tensor) -> torch.Tensor:
        level = coefficients.square().mean(1, keepdim=True).add(1e-10).log10()  # silence: -10
        around = nn.functional.avg_pool1d(level, 2 * self.context + 1, stride=1, padding=self.context,
                                          count_include_pad=False)
        return self.project(level - around)


class StftPath(nn.Module):
    """What the STFT input and output share: the mixture's Hann-window STFT, hop a quarter of its
    size and a multiple of the encoder's stride, and where its hops lie against the frames."""

    option = ""  # the config key that sets n_fft, for errors

    def __init__(self, n_fft: int, stride: int, window: int):
        super().__init__()
        if n_fft < 4 or (n_fft // 4) % stride:
            raise ValueError(f"latent-wavenet: {self.option} {n_fft}: a quarter of it must be a multiple of "
                             f"stride ({stride})")
        self.n_fft, self.hop, self.stride = n_fft, n_fft // 4, stride
        self.centre = stride - window // 2  # where frame 0's window is centred, in input samples
        self.all_bins = n_fft // 2 + 1
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def hop_span(self, hop: int) -> tuple[int, int]:
        """The input samples under one hop's window (the Hann window's first tap is 0)."""
        return hop * self.hop - self.n_fft // 2 + 1, hop * self.hop + self.n_fft // 2 - 1

    def stft(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, channels, time) -> complex (batch * channels, bins, hops), in float32 even under autocast."""
        with torch.autocast(x.device.type, enabled=False):
            return torch.stft(x.flatten(0, 1).float(), self.n_fft, self.hop, window=self.window, center=True,
                              pad_mode="constant", return_complex=True)


class SpectralInput(StftPath):
    """The mixture's log-magnitude STFT, normalised per frame and projected to the stacks' channels,
    repeated onto the encoder's frames. The learned basis is short (``window`` samples, 3 ms at the
    CPU recipe's 128), so on its own it resolves little below a few hundred Hz; a long window gives
    the stacks the fine frequency detail that tells timbres apart (bench/quality.py's seed4 drums
    on an unseen SoundFont: +3.4 to +6.1 dB SI-SDRi in three runs, against -2.0 to +1.8 without).

    Shape:
        (batch, channels, time), frames -> (batch, out_channels, frames)
    """

    option = "spectral_ffts"

    def __init__(self, n_fft: int, stride: int, window: int, channels: int, out_channels: int):
        super().__init__(n_fft, stride, window)
        inputs = channels * self.all_bins
        self.project = nn.Sequential(FrameNorm(inputs), nn.Conv1d(inputs, out_channels, 1))

    def nearest_hops(self, frames: torch.Tensor) -> torch.Tensor:
        """The STFT hop whose window is centred nearest each frame's (before cutting to the hops there are)."""
        return torch.div(frames * self.stride + self.centre + self.hop // 2, self.hop, rounding_mode="floor")

    def span(self, first: int, last: int) -> tuple[int, int]:
        """The input samples that frames ``first`` ... ``last`` see through this path."""
        low, high = self.nearest_hops(torch.tensor([first, last])).tolist()
        return self.hop_span(low)[0], self.hop_span(high)[1]

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        spectrum = self.stft(x)
        magnitude = spectrum.abs().log1p().reshape(x.shape[0], -1, spectrum.shape[-1])  # (batch, channels*bins, hops)
        features = self.project(magnitude)
        nearest = self.nearest_hops(torch.arange(frames, device=x.device))
        return features[..., nearest.clamp(0, features.shape[-1] - 1)]


class SpectralOutput(StftPath):
    """A correction made in the STFT domain, where the frequency resolution is the STFT's and not
    the learned basis's: per output, a real gain on each bin of the mixture's STFT, read from the
    stacks' features at the frame nearest each hop; the masked STFT is inverted and added to that
    output's waveform. The gains start at zero, so training starts from the latent path alone.

    Shape:
        (batch, channels, time), (batch, features, frames) -> (batch, n_outputs * channels, time)
    """

    option = "spectral_output"

    def __init__(self, n_fft: int, stride: int, window: int, features: int, n_outputs: int, highest: float = 0.0):
        super().__init__(n_fft, stride, window)
        if not 0 <= highest <= 0.5:
            raise ValueError("latent-wavenet: spectral_output_hz must be between 0 and half the sample rate")
        self.n_outputs = n_outputs
        self.bins = int(highest * n_fft) + 1 if highest else self.all_bins  # those it corrects, from 0 Hz up
        self.gains = nn.Sequential(nn.PReLU(), nn.Conv1d(features, n_outputs * self.bins, 1))
        nn.init.zeros_(self.gains[1].weight)
        nn.init.zeros_(self.gains[1].bias)

    def nearest_frame(self, hop):
        """The feature frame whose window is centred nearest the STFT hop's (before cutting to the
        frames there are), for an int or a tensor of hops."""
        return (hop * self.hop - self.centre + self.stride // 2) // self.stride

    def hops_over(self, t: int) -> range:
        """The hops whose windows reach input sample ``t`` (the Hann window's first tap is 0)."""
        half = self.n_fft // 2
        return range(-(-(t - half + 1) // self.hop), (t + half - 1) // self.hop + 1)

    def forward(self, x: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        batch, channels, length = x.shape
        spectrum = self.stft(x)
        hops = spectrum.shape[-1]
        nearest = self.nearest_frame(torch.arange(hops, device=x.device)).clamp(0, features.shape[-1] - 1)
        gains = self.gains(features[..., nearest]).float().view(batch, self.n_outputs, 1, self.bins, hops)
        spectrum = spectrum.view(batch, channels, self.all_bins, hops)[..., : self.bins, :]
        outputs = []
        # One output at a time: its masked STFT stays in the CPU's cache, where all of them at once
        # (12 for 6 stereo stems) do not: 2.2x faster on this project's 2-core AMD EPYC, same values.
        for output in range(self.n_outputs):
            masked = gains[:, output] * spectrum  # (batch, channels, bins, hops)
            if self.bins < self.all_bins:  # the bins above are left as they are: no gain, nothing added
                masked = nn.functional.pad(masked, (0, 0, 0, self.all_bins - self.bins))
            with torch.autocast(x.device.type, enabled=False):
                out = torch.istft(masked.flatten(0, 1), self.n_fft, self.hop, window=self.window, center=True,
                                  length=length)
            outputs.append(out.view(batch, channels, length))
        return torch.stack(outputs, 1).view(batch, self.n_outputs * channels, length).to(x.dtype)
