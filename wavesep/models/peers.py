"""The field's reference designs as wavesep models: thin adapters around the peers' own classes.

Each adapter builds the peer's model from its own package (nothing of theirs is copied here) and
fits it to :class:`~wavesep.models.base.SeparationModel`, so ``wavesep train``, ``separate``,
``evaluate`` and the checkpoints treat it like any wavesep model:

- ``conv-tasnet``: Luo & Mesgarani's Conv-TasNet, ``asteroid.models.ConvTasNet``. It is mono:
  each channel of a stereo mixture is separated on its own (folded into the batch).
- ``hdemucs``: Défossez's Hybrid Demucs, ``demucs.hdemucs.HDemucs`` (time and spectrogram
  branches, complex-as-channels output).
- ``open-unmix``: Stöter et al.'s Open-Unmix, one ``openunmix.model.OpenUnmix`` per source inside
  ``openunmix.model.Separator`` (STFT, magnitude estimates, mixture phase or Wiener filter, iSTFT),
  so the loss is on waveforms like every model here.

Only the ``fixed`` setting is offered: conditioning and presence heads would mean changing the
peers' networks. The packages are optional (``scripts/setup.sh`` installs them); an
adapter whose package is missing says how to install it.

References:
    Y. Luo, N. Mesgarani, "Conv-TasNet: Surpassing ideal time-frequency magnitude masking for
    speech separation", TASLP 2019. A. Défossez, "Hybrid spectrogram and waveform source
    separation", MDX workshop 2021. F.-R. Stöter et al., "Open-Unmix - a reference implementation
    for music source separation", JOSS 2019.
"""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass

import torch

from wavesep.models.base import ModelSpec, SeparationModel

INSTALL = ("install the peers with: pip install einops julius huggingface_hub && pip install --no-deps "
           "demucs==4.1.0 openunmix==1.3.0 asteroid==0.7.0 asteroid-filterbanks==0.4.0 (make setup does)")


class PeerMissing(ValueError):
    """A peer's package cannot be imported (a ValueError: the CLI reports it in one line)."""


def peer_module(name: str):
    """Import one of the peers' modules, or raise :class:`PeerMissing` with the install line.

    openunmix and asteroid import torchaudio at module level, and no torchaudio build loads with
    torch 2.13 here; the paths used here never call it, so an empty module stands in for it while
    they are imported (any call into it would fail loudly, not silently). It is taken out again,
    so that other code's ``import torchaudio`` still fails as it should.
    """
    stub = None
    try:
        import torchaudio  # noqa: F401
    except (ImportError, OSError):
        stub = sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise PeerMissing(f"{name} cannot be imported ({error}): {INSTALL}") from None
    finally:
        if stub is not None and sys.modules.get("torchaudio") is stub:
            del sys.modules["torchaudio"]


class PeerAdapter(SeparationModel):
    """What the adapters share: the fixed setting only, so no condition and no presence head."""

    def __init__(self, spec: ModelSpec, config):
        if spec.setting != "fixed":
            raise ValueError(f"{self.name}: the peer adapters offer the fixed setting only, got {spec.setting!r}")
        super().__init__(spec, config, feature_channels=1)


@dataclass(frozen=True)
class ConvTasNetConfig:
    # asteroid's defaults are for 8 kHz speech (16-sample filters, stride 8); at 44.1 kHz that is
    # 5,500 frames a second, too slow to train on a CPU. These defaults use wavesep's
    # default model's front end (128-sample filters, stride 64) so the two differ in the masker only.
    n_filters: int = 256  # learned basis functions
    kernel_size: int = 128  # encoder and decoder filter length
    stride: int = 64  # samples per frame
    n_blocks: int = 8  # blocks per repeat, dilations 1 ... 2**(n_blocks - 1)
    n_repeats: int = 3  # repeats of the blocks
    bn_chan: int = 128  # bottleneck channels
    hid_chan: int = 512  # channels inside a block
    skip_chan: int = 128  # skip-connection channels
    norm_type: str = "gLN"  # asteroid's normalisation: gLN (global: over the whole input) | cLN | bN
    mask_act: str = "sigmoid"  # mask non-linearity


class ConvTasNet(PeerAdapter):
    """asteroid's ConvTasNet, one mono network for every channel."""

    name = "conv-tasnet"
    Config = ConvTasNetConfig

    def __init__(self, spec: ModelSpec, config: ConvTasNetConfig = ConvTasNetConfig()):
        super().__init__(spec, config)
        models = peer_module("asteroid.models")
        self.net = models.ConvTasNet(
            n_src=spec.n_outputs, n_blocks=config.n_blocks, n_repeats=config.n_repeats, bn_chan=config.bn_chan,
            hid_chan=config.hid_chan, skip_chan=config.skip_chan, norm_type=config.norm_type,
            mask_act=config.mask_act, kernel_size=config.kernel_size, n_filters=config.n_filters,
            stride=config.stride, sample_rate=spec.sample_rate)
        # asteroid's last block computes a residual output that nothing reads (the masks come from
        # the skips): frozen, so that every trained weight gets a gradient, as DistributedDataParallel
        # requires (it would otherwise stop at the first step on several processes)
        self.net.masker.TCN[-1].res_conv.requires_grad_(False)

    @property
    def receptive_field(self) -> int:
        # The convolutions' span (frames seen by one frame, the decoder's overlap, the encoder's
        # window); with gLN, the default, every output also depends on the whole input's statistics.
        c = self.config
        frames = c.n_repeats * sum(2**b * 2 for b in range(c.n_blocks)) + 1
        return frames * c.stride + c.kernel_size

    def valid_length(self, length: int) -> int:
        # asteroid's encoder does not pad: whole hops after the first window, or the tail is lost.
        c = self.config
        return c.kernel_size + -(-max(length - c.kernel_size, 0) // c.stride) * c.stride

    def separate(self, x: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, channels, length = x.shape
        out = self.net(x.reshape(batch * channels, 1, length))  # (batch * channels, n_outputs, time)
        out = out.view(batch, channels, -1, length).transpose(1, 2)  # (batch, n_outputs, channels, time)
        return out.reshape(batch, -1, length), x


@dataclass(frozen=True)
class HDemucsConfig:
    # demucs's defaults are channels 48, depth 6 (84 M parameters); these are sized to train on a CPU.
    channels: int = 32  # hidden channels of the first layer
    growth: int = 2  # channel growth per layer
    depth: int = 6  # encoder (and decoder) layers
    nfft: int = 4096  # STFT size of the spectrogram branch (demucs needs 4096 for its shapes)
    dconv_depth: int = 2  # residual branch layers per encoder layer
    dconv_comp: int = 4  # residual branch channel compression
    hybrid: bool = True  # time branch beside the spectrogram branch
    cac: bool = True  # complex as channels (False: masks and Wiener filtering)


class HDemucs(PeerAdapter):
    """demucs's HDemucs."""

    name = "hdemucs"
    Config = HDemucsConfig

    def __init__(self, spec: ModelSpec, config: HDemucsConfig = HDemucsConfig()):
        super().__init__(spec, config)
        hdemucs = peer_module("demucs.hdemucs")
        self.net = hdemucs.HDemucs(
            sources=list(spec.sources), audio_channels=spec.audio_channels, channels=config.channels,
            growth=config.growth, depth=config.depth, nfft=config.nfft, dconv_depth=config.dconv_depth,
            dconv_comp=config.dconv_comp, hybrid=config.hybrid, cac=config.cac, samplerate=spec.sample_rate)

    @property
    def receptive_field(self) -> int:
        # Convolutions only: the deepest layer's kernel of 8 steps of 4**depth samples. demucs's
        # defaults also put a BiLSTM and local attention in the layers from the 5th on, which see
        # the whole segment, so the separator's segments bound the context in practice.
        return 8 * 4 ** self.config.depth

    def valid_length(self, length: int) -> int:
        return max(length, self.config.nfft)  # demucs's STFT padding fails on very short inputs

    def separate(self, x: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, _, length = x.shape
        out = self.net(x)  # (batch, sources, channels, time)
        return out.reshape(batch, -1, length), x


@dataclass(frozen=True)
class OpenUnmixConfig:
    hidden_size: int = 512  # LSTM and linear width (umxhq: 512)
    nb_layers: int = 3  # LSTM layers
    n_fft: int = 4096  # STFT size
    n_hop: int = 1024  # STFT hop
    bandwidth_hz: float = 16000.0  # the networks read bins up to this frequency (umxhq: 16 kHz)
    wiener_iterations: int = 1  # Wiener EM iterations when not training (umx's default: 1)


class OpenUnmix(PeerAdapter):
    """openunmix's Separator over one OpenUnmix per source; trained with mixture-phase outputs
    (no Wiener iterations), separated with ``wiener_iterations`` of them, as umx does."""

    name = "open-unmix"
    Config = OpenUnmixConfig

    def __init__(self, spec: ModelSpec, config: OpenUnmixConfig = OpenUnmixConfig()):
        super().__init__(spec, config)
        model = peer_module("openunmix.model")
        utils = peer_module("openunmix.utils")
        max_bin = utils.bandwidth_to_max_bin(rate=float(spec.sample_rate), n_fft=config.n_fft,
                                             bandwidth=config.bandwidth_hz)
        targets = {name: model.OpenUnmix(nb_bins=config.n_fft // 2 + 1, nb_channels=spec.audio_channels,
                                         hidden_size=config.hidden_size, nb_layers=config.nb_layers,
                                         max_bin=max_bin)
                   for name in spec.sources}
        self.net = model.Separator(targets, niter=0, residual=False, n_fft=config.n_fft, n_hop=config.n_hop,
                                   nb_channels=spec.audio_channels, sample_rate=float(spec.sample_rate),
                                   wiener_win_len=300, filterbank="torch")

    @property
    def receptive_field(self) -> int:
        # Bidirectional LSTMs: every frame sees the whole input, so the separator's segments bound
        # the context; this is the least a sample needs, one STFT frame.
        return self.config.n_fft

    def valid_length(self, length: int) -> int:
        return max(length, self.config.n_fft)  # openunmix's reflect-padded STFT needs a whole frame

    def separate(self, x: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, _, length = x.shape
        # Wiener EM needs at least two sources and is not trained through (umx trains without it).
        self.net.niter = 0 if self.training or self.spec.n_sources < 2 else self.config.wiener_iterations
        out = self.net(x)  # (batch, sources, channels, time)
        return out.reshape(batch, -1, length), x


PEERS = (ConvTasNet, HDemucs, OpenUnmix)
