"""The trainer's data: the training batch stream, with an exact position, and the validation set.

Two modes (``data.mode``):

- ``dataset``: :class:`~wavesep.data.TrainChunks` over ``SOURCE/train``; validation chunks from
  ``SOURCE/valid``. The stream position is ``{seed, position}`` and resuming is exact with any
  number of DataLoader workers (the protocol of :mod:`wavesep.data.train_chunks`).
- ``stream``: :class:`~wavesep.data.StreamingChunks` over the MIDI source's train split, one epoch
  per DataLoader iterator (``set_epoch`` before each); the position is ``{seed, epoch, batches}``
  and resuming replays the epoch's first ``batches`` batches without training on them (rendering
  is cheap next to training), so it is exact too. Validation chunks are rendered once from the
  valid split and kept in memory.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from wavesep.data import Augmentation, ChunkFilter, StemDataset, StreamingChunks, TrainChunks
from wavesep.midi.generate import generate_songs
from wavesep.midi.index import INDEX_FORMAT, build_index
from wavesep.synth.render import RenderSettings, parse_drum_kits
from wavesep.synth.writer import DATASET_SETTINGS
from wavesep.train.config import Config

GENERATED_VALID_EVERY = 8  # data.source "generated": one song in 8 validates
PRESENCE_THRESHOLD_DB = -60.0  # a stem is playing in a chunk when its RMS is above this (dBFS)


def presence_labels(stems: torch.Tensor, threshold_db: float = PRESENCE_THRESHOLD_DB) -> torch.Tensor:
    """Which stems play in each example: (batch, sources, channels, time) -> (batch, sources) 0/1.

    Judged from the audio of the chunk, not from the song's metadata: an instrument listed for a
    song is often silent for a whole chunk, and the model can only be asked about what it hears.
    """
    power = stems.float().square().mean(dim=(-2, -1))
    return (power > 10 ** (threshold_db / 10)).float()


def resolve_source(config: Config, run_dir: Path) -> Path:
    """The data source as a path; ``stream`` mode's "generated" writes procedural songs first."""
    data = config.data
    if not data.source:
        raise ValueError("data.source is empty: name a rendered dataset (mode dataset) or MIDI (mode stream), "
                         "e.g. --set data.source=DATASET")
    if data.source == "generated":
        if data.mode != "stream":
            raise ValueError('data.source "generated" needs data.mode: stream')
        return generated_index(run_dir, data.generated_songs, config.training.seed)
    source = Path(data.source)
    if not source.exists():
        raise ValueError(f"{source}: data source not found")
    if data.mode == "dataset":
        for split in ("train", "valid"):
            if not (source / split).is_dir():
                raise ValueError(f"{source}: a rendered dataset needs {split}/ (made by wavesep render)")
    return source


def generated_index(run_dir: Path, n_songs: int, seed: int) -> Path:
    """Procedural songs in ``run_dir/midi`` and an index of them in which every
    :data:`GENERATED_VALID_EVERY`-th song is a validation song (hash splits could leave a handful
    of songs with none; generated songs are all distinct, so nothing can leak)."""
    index = run_dir / "midi-index.jsonl"
    if index.exists():
        return index
    folder = run_dir / "midi"
    generate_songs(folder, n_songs, seed=seed)
    scan = index.with_suffix(".scan")  # build_index's own output, before the splits are set
    records = build_index(folder, scan, progress=False)
    scan.unlink()
    for i, record in enumerate(sorted(records, key=lambda r: r["path"])):
        record["split"] = "valid" if i % GENERATED_VALID_EVERY == GENERATED_VALID_EVERY - 1 else "train"
    header = {"format": INDEX_FORMAT, "root": str(folder.resolve())}
    tmp = index.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(item) + "\n" for item in [header, *records]))
    tmp.replace(index)
    return index


def _augmentation(config: Config) -> Augmentation | None:
    d = config.data
    return (Augmentation(eq_db=d.augment_eq_db, lowpass_probability=d.augment_lowpass,
                         repitch_semitones=d.augment_repitch) if d.augment else None)


def _filter(config: Config) -> ChunkFilter | None:
    return ChunkFilter() if config.data.filter else None


def make_train_dataset(config: Config, source: Path) -> TrainChunks | StreamingChunks:
    """The training dataset of this process (rank from torch.distributed when initialised)."""
    d, t = config.data, config.training
    if d.mode == "dataset":
        return TrainChunks(source / "train", d.stem_set, segment_s=d.segment_s, sample_rate=d.sample_rate,
                           channels=d.channels, exclude_unnamed=d.exclude_unnamed, augmentation=_augmentation(config),
                           filter=_filter(config), seed=t.seed, batch_size=t.batch_size)
    return StreamingChunks(source, d.stem_set, segment_s=d.segment_s, split="train", sample_rate=d.sample_rate,
                           channels=d.channels, exclude_unnamed=d.exclude_unnamed, filter=_filter(config),
                           pool_size=d.pool_size, reuse=d.reuse, max_chunks_per_song=d.max_chunks_per_song,
                           augmentation=_augmentation(config), seed=t.seed, epochs=1,
                           soundfont=d.soundfont or None, render_settings=_render_settings(config))


def _render_settings(config: Config) -> RenderSettings:
    """How stream mode renders its MIDI: the defaults at the data's sample rate, with its drum kits."""
    return RenderSettings(sample_rate=config.data.sample_rate, drum_kits=parse_drum_kits(config.data.drum_kits))


def describe_data(config: Config, source: Path, dataset) -> dict:
    """What a run trains on, for its provenance: a rendered dataset's training songs, hours,
    SoundFonts and drum kits (from its wavesep-dataset.json); for streamed MIDI, the source,
    SoundFonts and drum kits."""
    if not isinstance(dataset, TrainChunks):
        soundfonts = config.data.soundfont or "default"
        soundfonts = [soundfonts] if isinstance(soundfonts, str) else soundfonts
        record, kits = {"source": str(source)}, list(parse_drum_kits(config.data.drum_kits))
    else:
        try:
            settings = json.loads((source / DATASET_SETTINGS).read_text())
            soundfonts = settings["soundfonts"] if "soundfonts" in settings else [settings["soundfont"]]
        except (OSError, ValueError, KeyError):  # a dataset assembled by other means
            settings, soundfonts = {}, []
        record = {"source": str(source), "songs": len(dataset.songs),
                  "hours": round(sum(song.duration_s for song in dataset.songs) / 3600, 3)}
        kits = settings.get("drum_kits") or []
    # the drum kits drawn (render --drum-kits, data.drum_kits), if any
    return record | {"soundfonts": [Path(path).name for path in soundfonts]} | ({"drum_kits": kits} if kits else {})


def _loader(dataset, config: Config) -> torch.utils.data.DataLoader:
    workers = config.data.workers
    # forkserver: a forked FluidSynth (streaming) hangs, and it keeps workers free of the trainer's threads.
    return torch.utils.data.DataLoader(dataset, batch_size=config.training.batch_size, num_workers=workers,
                                       drop_last=True, multiprocessing_context="forkserver" if workers else None)


class BatchStream:
    """Endless training batches ``(mixture, stems)`` with a resumable position (see the module docstring).

    Shape:
        mixture (batch, channels, time), stems (batch, sources, channels, time).
    """

    def __init__(self, dataset: TrainChunks | StreamingChunks, config: Config):
        self.dataset = dataset
        self.config = config
        self.streaming = isinstance(dataset, StreamingChunks)
        self.batch_size = config.training.batch_size
        self._iterator = None
        self._start = 0  # TrainChunks: stream position where the current iterator began
        self.batches = 0  # batches taken from the current iterator
        # Streaming: the epoch this stream plays. Not the dataset's own counter, which iter() moves
        # in-process (no workers) and not at all with workers.
        self.epoch = dataset.epoch if self.streaming else 0

    def _restart(self, skip: int = 0):
        if self.streaming:
            self.dataset.set_epoch(self.epoch)
        else:
            self._start = self.dataset.position
        self._iterator = iter(_loader(self.dataset, self.config))
        self.batches = 0
        for _ in range(skip):  # replay what a resumed run had already trained on
            self._next_or_none()
        if skip and self.batches != skip:
            raise RuntimeError(f"resuming: the epoch has {self.batches} batches, the checkpoint says {skip}")

    def _next_or_none(self):
        try:
            batch = next(self._iterator)
        except StopIteration:
            return None
        self.batches += 1
        return batch

    def __iter__(self):
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._iterator is None:
            self._restart()
        batch = self._next_or_none()
        if batch is None:  # only a streaming epoch ends
            self.epoch += 1
            self._restart()
            batch = self._next_or_none()
            if batch is None:
                raise RuntimeError(f"epoch {self.epoch} of the training songs gave no full batch "
                                   f"of {self.batch_size}: more songs, a smaller batch or a longer max_chunks_per_song")
        return batch

    def state_dict(self) -> dict:
        if self.streaming:
            return {"seed": self.dataset.seed, "epoch": self.epoch, "batches": self.batches}
        return {"seed": self.dataset.seed, "position": self._start + self.batches * self.batch_size}

    def load_state_dict(self, state: dict):
        if self.streaming:
            self.dataset.load_state_dict({"seed": state["seed"], "epoch": state["epoch"]})
            self.epoch = int(state["epoch"])
            self._restart(skip=int(state["batches"]))
        else:
            self.dataset.load_state_dict(state)
            self._restart()

    def close(self):
        self._iterator = None  # lets the DataLoader shut its workers down


def make_valid_set(config: Config, source: Path) -> Sequence[tuple[torch.Tensor, torch.Tensor]]:
    """Up to ``valid_max_chunks`` validation chunks, the same every run: spread evenly over the
    valid split (dataset mode), or the first rendered ones with any sound (stream mode)."""
    d = config.data
    limit = d.valid_max_chunks
    if d.mode == "dataset":
        dataset = StemDataset(source / "valid", d.stem_set, segment_s=d.valid_segment_s, sample_rate=d.sample_rate,
                              channels=d.channels, exclude_unnamed=d.exclude_unnamed)
        if len(dataset) == 0:
            raise ValueError(f"{source / 'valid'}: the valid split has no songs")
        step = max(1, len(dataset) / limit)
        indices = sorted({int(i * step) for i in range(min(limit, len(dataset)))})
        return torch.utils.data.Subset(dataset, indices)
    stream = StreamingChunks(source, d.stem_set, segment_s=d.valid_segment_s, split="valid", sample_rate=d.sample_rate,
                             channels=d.channels, exclude_unnamed=d.exclude_unnamed, filter=None, pool_size=1,
                             reuse=1, max_chunks_per_song=max(1, limit // 4), seed=0, epochs=1,
                             soundfont=d.soundfont or None, render_settings=_render_settings(config),
                             rank=0, world_size=1)
    chunks = []
    for mixture, stems in stream:
        if stems.abs().amax() > 0:
            chunks.append((mixture, stems))
        if len(chunks) == limit:
            break
    if not chunks:
        raise ValueError(f"{source}: no song of the valid split gave a validation chunk")
    return chunks
