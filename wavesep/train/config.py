"""Training configuration: four dataclasses (model, data, optimiser, training), loaded strictly.

A config is YAML with the sections below; every key is optional (defaults are the comments'
values) and an unknown key is an error that names it. ``--set section.key=value`` overrides one
value (parsed as YAML: ``--set training.steps=200``, ``--set model.args.channels=64``). The
resolved config is written to the run directory and into every checkpoint.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from wavesep.instruments import get_stem_set
from wavesep.losses import LossMix
from wavesep.models import model_config
from wavesep.models.base import INFORMED_BY, SETTINGS
from wavesep.synth.render import parse_drum_kits
from wavesep.typed import is_number, load_yaml, typed


@dataclass
class ModelSection:
    name: str = "latent-wavenet"  # conv | wavenet | waveunet | latent-wavenet | conv-tasnet | hdemucs | open-unmix
    setting: str = "fixed"  # fixed | informed | blind
    informed_by: str = "multihot"  # informed models: multihot (all sources at once) | query (one per run)
    condition_dim: int = 32  # query models: size of the learned source embedding
    args: dict = field(default_factory=dict)  # the architecture's config fields, e.g. {channels: 64}


@dataclass
class DataSection:
    mode: str = "dataset"  # dataset: stems rendered on disk | stream: rendered from MIDI while training
    # dataset: a dataset root with train/ and valid/ (from `wavesep render`); stream: a MIDI folder,
    # file or index (songs are sent to train/valid by the hash of their notes), or "generated" for
    # `generated_songs` procedural songs written into the run directory (one in 8 validates).
    source: str = ""
    generated_songs: int = 64  # stream mode with source "generated": how many songs
    stem_set: str = "seed4"  # a built-in stem set name or a YAML file
    sample_rate: int = 44100  # Hz
    channels: int = 2  # 2 stereo, 1 mono
    segment_s: float = 1.0  # training chunk length
    exclude_unnamed: bool = False  # drop instruments no stem names from the mixture
    filter: bool = True  # the study's silent (>40 %) and identical (>65 %) chunk filters
    augment: bool = True  # per-stem gain, sign, channel swap (and shifts, remixing in dataset mode)
    augment_eq_db: float = 0.0  # with augment: random smooth EQ per stem, up to +- this many dB
    augment_lowpass: float = 0.0  # with augment: chance that a stem is low-passed at a random cutoff
    augment_repitch: float = 0.0  # with augment: each stem resampled up or down by up to this many semitones
    workers: int = 0  # DataLoader worker processes
    pool_size: int = 64  # stream mode: chunks in the shuffling pool
    reuse: int = 1  # stream mode: times each chunk is used
    max_chunks_per_song: int = 32  # stream mode: chunks one song gives per epoch
    # stream mode: a SoundFont, or a list of them to draw one per song and instrument (see wavesep
    # render); empty for the default one
    soundfont: str | tuple[str, ...] = ""
    # stream mode: each drum instrument plays a kit drawn per song and instrument, as wavesep render
    # --drum-kits: "gm" (the 8 General MIDI kits) or preset numbers; empty for the kit the MIDI asks for
    drum_kits: str | int | tuple[int, ...] = ""
    valid_segment_s: float = 3.0  # validation chunk length
    valid_max_chunks: int = 32  # validation chunks, spread evenly over the valid split


@dataclass
class OptimSection:
    name: str = "adam"  # adam | adamw
    lr: float = 1e-4  # the study's Adam learning rate
    betas: list = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # max gradient norm; 0 for none
    schedule: str = "constant"  # constant | cosine (to 0 at the last step or the end of the budget)
    warmup_steps: int = 0  # linear warm-up from 0


@dataclass
class TrainingSection:
    steps: int = 1500  # optimiser steps (the study: about 1500)
    # Stop earlier once the training steps (data, forward, backward, update; not validation) have
    # used this many seconds, 0 for no limit: equal-budget comparisons. On the CPU the seconds are
    # this process's CPU time (the same on a busy or an idle machine; data workers' not counted),
    # on CUDA wall-clock time. The wait for the first batch (data workers starting) is not counted.
    budget_s: float = 0.0
    batch_size: int = 12  # per process (the study: 12)
    seed: int = 0  # model initialisation and data stream
    losses: dict = field(default_factory=lambda: {"mae": 1.0})  # name: weight, or name: {weight, options}
    presence_weight: float = 1.0  # blind models: weight of the presence binary cross-entropy
    # An exponential moving average of the weights, decaying by this much per step (Demucs keeps
    # one), 0 for none: validation and best.pt then use the average, not the latest weights.
    ema: float = 0.0
    valid_every: int = 250  # steps between validations (and best-checkpoint updates)
    checkpoint_every: int = 250  # steps between checkpoints (one is also written at the end)
    log_every: int = 10  # steps between log lines (log.jsonl and TensorBoard)
    audio_examples: int = 2  # validation chunks whose audio goes to TensorBoard
    amp: bool = True  # mixed precision on CUDA (bfloat16, or float16 with loss scaling)
    # bfloat16 autocast on a CPU that has it natively (AVX512-BF16, AMX), else float32. Off unless
    # asked for: oneDNN's bfloat16 kernels give wrong gradients for some layers in torch 2.13
    # (convolutions of 32/48/64/128 taps, LSTMs), so a model must be checked against float32 first.
    cpu_amp: bool = False
    device: str = "auto"  # auto (cuda when there is one) | cpu | cuda
    max_bad_steps: int = 10  # non-finite losses in a row that stop the run


@dataclass
class Config:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    training: TrainingSection = field(default_factory=TrainingSection)

    def validate(self) -> Config:
        """Check values, not only keys; returns self. Errors name the key."""
        m, d, o, t = self.model, self.data, self.optim, self.training
        _choice("model.setting", m.setting, SETTINGS)
        _choice("model.informed_by", m.informed_by, INFORMED_BY)
        _choice("data.mode", d.mode, ("dataset", "stream"))
        _choice("data.channels", d.channels, (1, 2))
        _choice("optim.name", o.name, ("adam", "adamw"))
        _choice("optim.schedule", o.schedule, ("constant", "cosine"))
        _choice("training.device", t.device, ("auto", "cpu", "cuda"))
        for key in ("data.sample_rate", "data.segment_s", "data.valid_segment_s", "data.valid_max_chunks",
                    "data.pool_size", "data.reuse", "data.max_chunks_per_song", "data.generated_songs",
                    "optim.lr", "training.steps", "training.batch_size", "training.valid_every",
                    "training.checkpoint_every", "training.log_every", "training.max_bad_steps"):
            if _get(self, key) <= 0:
                raise ValueError(f"config: {key} must be positive, got {_get(self, key)}")
        for key in ("optim.grad_clip", "optim.warmup_steps", "training.budget_s", "optim.weight_decay", "training.presence_weight",
                    "data.workers", "training.audio_examples", "data.augment_eq_db",
                    "data.augment_repitch"):
            if _get(self, key) < 0:
                raise ValueError(f"config: {key} must be >= 0, got {_get(self, key)}")
        if not 0 <= t.ema < 1:
            raise ValueError(f"config: training.ema must be in [0, 1), got {t.ema}")
        if not 0 <= d.augment_lowpass <= 1:
            raise ValueError(f"config: data.augment_lowpass must be in [0, 1], got {d.augment_lowpass}")
        try:
            kits = parse_drum_kits(d.drum_kits)
        except ValueError as error:
            raise ValueError(f"config: data.drum_kits: {error}") from None  # the same rule as render's
        if kits and d.mode != "stream":
            raise ValueError("config: data.drum_kits is for stream mode; a rendered dataset has the kits "
                             "it was rendered with (wavesep render --drum-kits)")
        if len(o.betas) != 2 or not all(is_number(b) and 0 <= b < 1 for b in o.betas):
            raise ValueError(f"config: optim.betas must be two numbers in [0, 1), got {o.betas}")
        try:
            model_config(m.name, m.args)
            LossMix(t.losses)
            get_stem_set(d.stem_set)
        except ValueError as error:
            raise ValueError(f"config: {error}") from None
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _choice(key: str, value, choices):
    if value not in choices:
        raise ValueError(f"config: {key} must be one of {', '.join(map(str, choices))}, got {value!r}")


def _get(config, key: str):
    for part in key.split("."):
        config = getattr(config, part)
    return config


def _build(cls, data, prefix: str):
    if not isinstance(data, dict):
        raise ValueError(f"config: {prefix or 'the config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [key for key in data if key not in names]
    if unknown:
        raise ValueError(f"config: unknown key {prefix + '.' if prefix else ''}{unknown[0]} "
                         f"(known: {', '.join(names)})")
    values = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        if dataclasses.is_dataclass(hints[key]):
            values[key] = _build(hints[key], value, path)
        else:
            values[key] = typed(value, hints[key], f"config: {path}")
    return cls(**values)


def config_from_dict(data: dict | None) -> Config:
    """A validated :class:`Config` from plain data; unknown keys and wrong types are errors."""
    return _build(Config, data or {}, "").validate()


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """``data`` with each ``section.key[.subkey]=value`` applied (values parsed as YAML)."""
    data = {key: dict(value) if isinstance(value, dict) else value for key, value in data.items()}
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes key=value, got {item!r}")
        try:
            value = load_yaml(text)
        except yaml.YAMLError as error:
            raise ValueError(f"--set {key}: cannot parse {text!r}: {error}") from None
        node, parts = data, key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, dict) else ({} if child is None else child)
            node = node[part]
            if not isinstance(node, dict):
                raise ValueError(f"--set {key}: {part} is not a section")
        node[parts[-1]] = value
    return data


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML config (None for the defaults), apply ``--set`` overrides, validate."""
    data = {}
    if path is not None:
        path = Path(path)
        try:
            data = load_yaml(path.read_text()) or {}
        except OSError as error:
            raise ValueError(f"{path}: cannot read the config: {error.strerror}") from None
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not valid YAML: {error}") from None
    try:
        return config_from_dict(apply_overrides(data, list(overrides)))
    except ValueError as error:
        raise ValueError(f"{path}: {error}" if path is not None else str(error)) from None
