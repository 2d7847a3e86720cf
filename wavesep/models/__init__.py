"""Separators, built by name through a registry.

- :mod:`~wavesep.models.base`: :class:`ModelSpec` (sources, rate, channels, setting), the shared
  forward pass, FiLM conditioning and the presence head;
- :mod:`~wavesep.models.conv`: ``conv``, the study's four-convolution baseline;
- :mod:`~wavesep.models.wavenet`: ``wavenet``, Lluís, Pons & Serra's separator;
- :mod:`~wavesep.models.waveunet`: ``waveunet``, Stoller et al.'s Wave-U-Net;
- :mod:`~wavesep.models.latent`: ``latent-wavenet``, wavesep's own fast design;
- :mod:`~wavesep.models.peers`: ``conv-tasnet``, ``hdemucs``, ``open-unmix``: adapters around the
  peers' own packages (installed by ``make setup``).

A model is rebuilt from :meth:`SeparationModel.describe` (name, spec, config) with
:func:`model_from_description`: checkpoints store that, never a pickled class.
"""

from __future__ import annotations

import dataclasses
import typing

from wavesep.models.base import ModelSpec, Separation, SeparationModel
from wavesep.models.conv import ConvSeparator
from wavesep.models.latent import LatentWaveNet
from wavesep.models.peers import PEERS
from wavesep.models.wavenet import WaveNetSeparator
from wavesep.models.waveunet import WaveUNet
from wavesep.typed import typed

OWN_MODELS: tuple[type[SeparationModel], ...] = (ConvSeparator, WaveNetSeparator, WaveUNet, LatentWaveNet)
MODELS: dict[str, type[SeparationModel]] = {cls.name: cls for cls in (*OWN_MODELS, *PEERS)}
WAVESEP_MODELS = [cls.name for cls in OWN_MODELS]  # every setting, any length: not the peer adapters


def model_config(name: str, args: dict | None = None):
    """The config dataclass of model ``name`` with ``args`` applied; unknown keys are errors."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: use one of {', '.join(MODELS)}")
    cls = MODELS[name].Config
    hints = typing.get_type_hints(cls)
    fields = {field.name for field in dataclasses.fields(cls)}
    args = dict(args or {})
    unknown = set(args) - fields
    if unknown:
        raise ValueError(f"unknown key(s) for model {name!r}: {', '.join(sorted(unknown))} "
                         f"(known: {', '.join(sorted(fields))})")
    return cls(**{key: typed(value, hints[key], f"model {name!r} {key}") for key, value in args.items()})


def build_model(name: str, spec: ModelSpec, args: dict | None = None) -> SeparationModel:
    """Model ``name`` for ``spec`` with config fields ``args`` (the rest at their defaults)."""
    return MODELS[name](spec, model_config(name, args))


def model_from_description(description: dict) -> SeparationModel:
    """Rebuild an (untrained) model from :meth:`SeparationModel.describe`'s output."""
    return build_model(description["name"], ModelSpec(**description["spec"]), description["config"])


__all__ = ["MODELS", "WAVESEP_MODELS", "ModelSpec", "Separation", "SeparationModel", "build_model", "model_config",
           "model_from_description"]
