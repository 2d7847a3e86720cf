"""What every separator shares: self-description, the three settings, any length, mono or stereo.

A model is a :class:`SeparationModel`. Its :class:`ModelSpec` says what it separates (sample rate,
audio channels, source names) and how it is told what to extract:

- ``fixed``: one output per source, always;
- ``informed``: the caller says what to extract. With ``informed_by="multihot"`` the condition is
  a 0/1 vector over the sources (batch, n_sources); the network sees it in every block (FiLM) and
  the outputs of sources marked 0 are exactly zero. With ``informed_by="query"`` the condition
  is one source index per example (batch,); a learned embedding of it conditions every block and
  the model has one output, that source (absent sources must come out silent: the trainer asks
  for absent ones too);
- ``blind``: a presence head reads the network's features and predicts, per source, the logit of
  "this source is playing"; the model outputs every source and :meth:`detect` keeps those judged
  present.

An architecture subclasses :class:`SeparationModel`, builds its layers in ``__init__`` from its
config dataclass and implements :meth:`SeparationModel.separate`: ``(batch, audio_channels,
time)`` with ``time`` a valid length, plus the condition embedding (or None), to ``(batch,
n_outputs * audio_channels, time)`` and a feature map for the presence head. The base class does
the rest: channel adaptation, padding to a valid length and cropping back, input normalisation,
the condition, masking and the presence head.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import nn

SETTINGS = ("fixed", "informed", "blind")
INFORMED_BY = ("multihot", "query")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively rather than by emulation: a GPU that has
    it, or a CPU with AVX512-BF16 or AMX (where a latent-wavenet training step is about 1.4x faster
    in it than in float32: bench/precision.py)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        cpu = getattr(torch, "cpu", None)
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, hence the fallback
        return any(getattr(cpu, probe, lambda: False)() for probe in probes)
    return False


@dataclass(frozen=True)
class ModelSpec:
    """What a model separates and how it is told what to extract (see the module docstring)."""

    sources: tuple[str, ...]  # output names, in order (a stem set's names)
    sample_rate: int = 44100  # Hz, of input and output
    audio_channels: int = 2  # the channels the network was built for; others are adapted
    setting: str = "fixed"  # fixed | informed | blind
    informed_by: str = "multihot"  # informed only: multihot vector or one query per run
    condition_dim: int = 32  # informed query: size of the learned source embedding

    def __post_init__(self):
        object.__setattr__(self, "sources", tuple(self.sources))
        if not self.sources or len(set(self.sources)) != len(self.sources):
            raise ValueError(f"sources must be distinct names, got {list(self.sources)}")
        if self.setting not in SETTINGS:
            raise ValueError(f"setting must be one of {', '.join(SETTINGS)}, got {self.setting!r}")
        if self.informed_by not in INFORMED_BY:
            raise ValueError(f"informed_by must be one of {', '.join(INFORMED_BY)}, got {self.informed_by!r}")
        if self.audio_channels not in (1, 2):
            raise ValueError(f"audio_channels must be 1 or 2, got {self.audio_channels}")
        if self.sample_rate <= 0 or self.condition_dim < 1:
            raise ValueError("sample_rate and condition_dim must be positive")

    @property
    def n_sources(self) -> int:
        return len(self.sources)

    @property
    def query(self) -> bool:
        return self.setting == "informed" and self.informed_by == "query"

    @property
    def n_outputs(self) -> int:
        """Waveforms the network writes per example: one for a query model, else one per source."""
        return 1 if self.query else self.n_sources

    @property
    def cond_dim(self) -> int:
        """Width of the vector that conditions every block (FiLM); 0 when there is none."""
        if self.setting != "informed":
            return 0
        return self.condition_dim if self.query else self.n_sources


class Separation(NamedTuple):
    """A model's output.

    Shape:
        stems: (batch, n_outputs, channels, time), channels and time those of the input.
        presence_logits: (batch, n_sources) for blind models, else None.
    """

    stems: torch.Tensor
    presence_logits: torch.Tensor | None = None


class FiLM(nn.Module):
    """Feature-wise linear modulation: ``x * (1 + gamma(c)) + beta(c)``, identity at init."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        # x: (batch, channels, time); cond: (batch, cond_dim)
        gamma, beta = self.proj(cond).unsqueeze(-1).chunk(2, dim=1)
        return x * (1 + gamma) + beta


def film(cond_dim: int, channels: int) -> FiLM | None:
    """A FiLM layer when the model is conditioned, else None (see :func:`modulate`)."""
    return FiLM(cond_dim, channels) if cond_dim else None


def modulate(layer: FiLM | None, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
    return x if layer is None else layer(x, cond)


class PresenceHead(nn.Module):
    """Per-source presence logits from a feature map: mean and max over time, then a linear layer."""

    def __init__(self, channels: int, n_sources: int):
        super().__init__()
        self.linear = nn.Linear(2 * channels, n_sources)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # features: (batch, channels, frames) -> (batch, n_sources)
        pooled = torch.cat([features.mean(dim=-1), features.amax(dim=-1)], dim=1)
        return self.linear(pooled)


class SeparationModel(nn.Module):
    """Base of every separator (see the module docstring).

    Args:
        spec: what the model separates and how it is conditioned.
        config: the architecture's config dataclass (stored so checkpoints can rebuild the model).
        feature_channels: channels of the feature map :meth:`separate` returns (presence head input).

    Subclasses set ``name`` (their registry name) and ``Config`` (their config dataclass).
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    # Whether separation may run under bfloat16 autocast (Separator's precision "auto"): true only
    # for an architecture whose output was checked against float32's (see bench/precision.py).
    bfloat16_separation: ClassVar[bool] = False

    def __init__(self, spec: ModelSpec, config, feature_channels: int):
        super().__init__()
        self.spec = spec
        self.config = config
        if spec.query:
            self.query_embedding = nn.Embedding(spec.n_sources, spec.condition_dim)
        self.presence = PresenceHead(feature_channels, spec.n_sources) if spec.setting == "blind" else None

    # -- self-description -------------------------------------------------------------------
    @property
    def sources(self) -> list[str]:
        return list(self.spec.sources)

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    @property
    def audio_channels(self) -> int:
        return self.spec.audio_channels

    @property
    def receptive_field(self) -> int:
        """Input samples that can change one output sample."""
        raise NotImplementedError

    def valid_length(self, length: int) -> int:
        """The smallest length >= ``length`` the network takes without padding (default: any)."""
        return length

    def describe(self) -> dict:
        """Registry name, spec and config: everything needed to rebuild the model."""
        return {"name": self.name, "spec": dataclasses.asdict(self.spec), "config": dataclasses.asdict(self.config)}

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # -- the architecture's part -------------------------------------------------------------
    def separate(self, x: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, audio_channels, valid time), (batch, cond_dim) or None ->
        (batch, n_outputs * audio_channels, time), features (batch, feature_channels, frames)."""
        raise NotImplementedError

    # -- the shared part ---------------------------------------------------------------------
    def _condition(self, condition: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        spec = self.spec
        if spec.setting != "informed":
            if condition is not None:
                raise ValueError(f"a {spec.setting} model takes no condition")
            return None
        if condition is None:
            what = "a source index per example" if spec.query else "a multi-hot vector over the sources"
            raise ValueError(f"an informed model needs a condition: {what}")
        if spec.query:
            if condition.shape != (batch,):
                raise ValueError(f"a query condition is one source index per example, shape ({batch},)")
            if condition.numel() and not (0 <= int(condition.min()) and int(condition.max()) < spec.n_sources):
                raise ValueError(f"query source indices must be in 0..{spec.n_sources - 1}, got {condition.tolist()}")
            return self.query_embedding(condition.long())
        if condition.shape != (batch, spec.n_sources):
            raise ValueError(f"a multi-hot condition has shape ({batch}, {spec.n_sources}), got {tuple(condition.shape)}")
        if not ((condition == 0) | (condition == 1)).all():
            raise ValueError("a multi-hot condition holds only 0 and 1")
        return condition.float()

    def forward(self, mixture: torch.Tensor, condition: torch.Tensor | None = None) -> Separation:
        """Separate a batch of mixtures.

        Args:
            mixture: (batch, channels, time), any channel count of 1 or 2 and any length.
            condition: informed models only; see the module docstring.

        Returns:
            :class:`Separation`, stems shaped (batch, n_outputs, channels, time).
        """
        if mixture.dim() != 3 or mixture.shape[1] not in (1, 2):
            raise ValueError(f"mixture must be (batch, 1 or 2 channels, time), got {tuple(mixture.shape)}")
        batch, channels, length = mixture.shape
        cond = self._condition(condition, batch)
        x = mixture
        if channels != self.audio_channels:
            if self.audio_channels == 2:  # mono into a stereo model: both sides the same
                x = x.expand(batch, 2, length)
            else:  # stereo into a mono model: each side on its own
                x = x.reshape(batch * channels, 1, length)
                cond = None if cond is None else cond.repeat_interleave(channels, dim=0)
        # Each example at unit RMS; its level is put back on the output, so silence gives silence.
        scale = x.square().mean(dim=(1, 2), keepdim=True).sqrt()
        x = x / scale.clamp_min(1e-8)
        padded = self.valid_length(length)
        x = nn.functional.pad(x, (0, padded - length))
        out, features = self.separate(x, cond)
        out = out[..., :length] * scale  # (batch', n_outputs * audio_channels, time)
        out = out.view(out.shape[0], self.spec.n_outputs, self.audio_channels, length)
        if channels != self.audio_channels:
            if self.audio_channels == 2:
                out = out.mean(dim=2, keepdim=True)
            else:
                out = out.view(batch, channels, self.spec.n_outputs, length).transpose(1, 2)
                features = features.view(batch, channels, *features.shape[1:]).mean(dim=1)
        if self.spec.setting == "informed" and not self.spec.query:
            out = out * condition.to(out.dtype)[:, :, None, None]  # absent sources are exactly silent
        presence = self.presence(features) if self.presence is not None else None
        return Separation(out, presence)

    @torch.no_grad()
    def detect(self, mixture: torch.Tensor, threshold: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
        """Blind models: the stems and the presence probabilities (batch, n_sources); stems judged
        absent (probability below ``threshold``) are zeroed. The probabilities are for the whole input."""
        if self.presence is None:
            raise ValueError(f"detect() needs a blind model; this one is {self.spec.setting}")
        stems, logits = self(mixture)
        probabilities = torch.sigmoid(logits)
        return stems * (probabilities >= threshold)[:, :, None, None], probabilities
