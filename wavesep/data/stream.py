"""Streaming mode: render MIDI songs while training, for corpora too big to store as stems.

This is the original study's pipeline. Each iterating process (a DataLoader worker, on each rank)
takes its share of the songs, and, epoch after epoch in a seeded shuffled order:

1. parses and renders a song with FluidSynth (a corrupt or unrenderable file is counted in
   ``stats`` and skipped);
2. cuts it into chunks of ``segment_samples`` at a random phase, drops those the
   :class:`~wavesep.data.dataset.ChunkFilter` rejects, and keeps at most
   ``max_chunks_per_song`` of the rest, chosen at random, so one long song cannot fill the pool;
3. puts them into a **pool** of ``pool_size`` chunks; while the pool is full, a random chunk of it
   is yielded, and a chunk leaves the pool once it has been yielded ``reuse`` times.

Every ``iter()`` is a new *epoch*: its song order, chunk phases and pool picks are seeded by
``(seed, epoch, shard)``, so successive epochs differ and a run is reproducible by its seed. The
dataset counts epochs itself (``epoch`` is the one the next ``iter()`` plays) in the process that
iterates it. DataLoader workers iterate copies made when the DataLoader iterator is created, so,
as with ``DistributedSampler``, call ``set_epoch(e)`` before each epoch's iterator when
``num_workers > 0`` (persistent workers count in their own copies instead). Resuming restarts an
epoch from its beginning: the pool is not saved; ``state_dict`` gives the next epoch.

``reuse`` trades freshness for speed: rendering a 3-minute song with five instruments takes
about 3 s of one core (FluidR3_GM), so when training consumes chunks faster than rendering makes
them, a reuse of 2-4 keeps the GPU busy; with ``augmentation`` a reused chunk comes back with new gains, signs
and channel order. The pool holds ``pool_size x (n_stems + 1) x channels x segment_samples``
floats: 64 chunks of 5 stereo stems of 1 s at 44.1 kHz take about 135 MB.

Yields the same ``(mixture, stems)`` pairs as the other datasets, with the same mixture rules
(see :mod:`wavesep.data.dataset`).
"""

from __future__ import annotations

import collections
import logging
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from wavesep.data.augment import Augmentation, augment_stems
from wavesep.data.dataset import group_instruments, resolve_segment
from wavesep.data.filters import ChunkFilter
from wavesep.data.sharding import RankedStream, Shard
from wavesep.instruments import StemSet, get_stem_set
from wavesep.midi.index import MIDI_SUFFIXES, find_midi_files, read_index, record_path, split_for
from wavesep.midi.song import MidiError, ParseLimits, read_song
from wavesep.synth.render import Renderer, RenderSettings

PathLike = str | os.PathLike

log = logging.getLogger(__name__)


def midi_sources(midi: PathLike | Sequence[PathLike], split: str | None) -> tuple[list[Path], bool]:
    """The MIDI files to stream, and whether each song's split must still be checked once parsed.

    Args:
        midi: a folder (searched recursively), one MIDI file, an index file
            (:func:`wavesep.midi.index.build_index`), or a list of MIDI files.
        split: the split to keep ("train", "valid", "test"), or None for every file. A list or a
            single file is taken as given; an index gives its records of that split.

    Raises:
        ValueError: the source does not exist, is not a readable index, or holds no MIDI file.
    """
    if not isinstance(midi, (str, os.PathLike)):
        paths = [Path(path) for path in midi]
        check = False
    else:
        source = Path(midi)
        if source.is_dir():
            paths, check = find_midi_files(source), split is not None
        elif source.is_file() and source.suffix.lower() in MIDI_SUFFIXES:
            paths, check = [source], False
        elif source.is_file():
            header, records = read_index(source)
            paths = [record_path(header, r) for r in records if "error" not in r and split in (None, r["split"])]
            check = False
        else:
            raise ValueError(f"{source}: no such MIDI folder, file or index")
    if not paths:
        raise ValueError(f"{midi}: no MIDI files" + (f" of split {split!r}" if split else ""))
    return paths, check


class StreamingChunks(RankedStream, torch.utils.data.IterableDataset):
    """Chunks of songs rendered on the fly, through a shuffled pool (see the module docstring).

    Args:
        midi: a MIDI folder, file, index file, or a list of MIDI files (see :func:`midi_sources`).
        stem_set: a stem set or its name.
        segment_samples: chunk length in samples (or give ``segment_s``).
        split: keep only songs of this split (by the hash of their notes); None keeps all.
        sample_rate: rendering rate, when ``render_settings`` is not given.
        channels: 2 for stereo, 1 for mono (mean of the two channels).
        exclude_unnamed: drop instruments no stem names from the mixture (stem sets without other).
        filter: the chunk filter; None keeps every chunk.
        pool_size: chunks held before yielding starts; larger shuffles better and costs memory.
        reuse: times each chunk is yielded before it leaves the pool.
        max_chunks_per_song: cap on the chunks one song puts into the pool, per epoch.
        augmentation: gain, sign and channel swap per stem at each yield (shifts and remixing
            need random access to stored songs: use TrainChunks for those); None for none.
        seed: seed of the song order, chunk phases, pool picks and augmentation.
        epochs: passes over the songs per ``iter()``; None cycles forever. The pool is drained
            after the last.
        soundfont: SoundFont file, or several to draw one per song and instrument (see
            :class:`~wavesep.synth.render.Renderer`); None for
            :func:`~wavesep.synth.render.default_soundfont`.
        render_settings: rendering settings; None for the defaults at ``sample_rate``.
        parse_limits: caps on each MIDI file (size, duration, notes, ...).
        rank, world_size: distributed position; by default from torch.distributed, read when the
            dataset is built if it is initialised then (see :mod:`wavesep.data.sharding`).
        segment_s: the segment in seconds, instead of ``segment_samples``.

    Shape:
        Items are ``(mixture, stems)``: (channels, time) and (n_stems, channels, time) float32.
    """

    def __init__(self, midi: PathLike | Sequence[PathLike], stem_set: StemSet | str = "band",
                 segment_samples: int | None = None, split: str | None = "train", sample_rate: int = 44100,
                 channels: int = 2, exclude_unnamed: bool = False, filter: ChunkFilter | None = ChunkFilter(),
                 pool_size: int = 64, reuse: int = 1, max_chunks_per_song: int = 32,
                 augmentation: Augmentation | None = None, seed: int = 0, epochs: int | None = None,
                 soundfont: PathLike | Sequence[PathLike] | None = None, render_settings: RenderSettings | None = None,
                 parse_limits: ParseLimits = ParseLimits(), rank: int | None = None,
                 world_size: int | None = None, segment_s: float | None = None):
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels}")
        if pool_size < 1 or reuse < 1 or max_chunks_per_song < 1:
            raise ValueError("pool_size, reuse and max_chunks_per_song must be at least 1")
        if augmentation is not None and (augmentation.max_shift_samples or augmentation.remix_probability):
            raise ValueError("StreamingChunks applies gain, sign and channel augmentation only; "
                             "shifts and remixing need TrainChunks over a rendered dataset")
        self.settings = render_settings or RenderSettings(sample_rate=sample_rate)
        self.sample_rate = self.settings.sample_rate
        self.paths, self._check_split = midi_sources(midi, split)
        self.split = split
        self.stem_set = get_stem_set(stem_set)
        self.stem_names = self.stem_set.names
        self.segment_samples = resolve_segment(segment_samples, segment_s, self.sample_rate)
        if self.segment_samples is None:
            raise ValueError("StreamingChunks needs segment_samples or segment_s")
        self.channels, self.exclude_unnamed, self.filter = channels, exclude_unnamed, filter
        self.pool_size, self.reuse, self.max_chunks_per_song = pool_size, reuse, max_chunks_per_song
        self.augmentation, self.seed, self.epochs = augmentation, seed, epochs
        self.soundfont, self.parse_limits = soundfont, parse_limits
        self._capture_rank(rank, world_size)
        self.epoch = 0  # the epoch the next iter() plays (see the module docstring)
        self.stats: collections.Counter = collections.Counter()  # in the iterating process

    @property
    def segment_s(self) -> float:
        return self.segment_samples / self.sample_rate

    def _render(self, renderer: Renderer, path: Path):
        """The rendered song, or None (counted in ``stats``) when it is corrupt, of another split
        or unrenderable."""
        try:
            song = read_song(path, self.parse_limits)
        except (MidiError, ValueError):  # MidiError is the reader's; ValueError for any it missed
            self.stats["corrupt"] += 1
            return None
        if self._check_split and split_for(song.notes_hash) != self.split:
            self.stats["other_split"] += 1
            return None
        try:
            rendered = renderer.render(song)
        except ValueError:  # over the render cap, too many instruments, every stem silent
            self.stats["unrenderable"] += 1
            return None
        self.stats["songs"] += 1
        return rendered

    def song_chunks(self, renderer: Renderer, path: Path, rng: np.random.Generator) -> list[np.ndarray]:
        """The filtered, capped chunks of one song; none when anything about it fails.

        Shape:
            Each chunk is (n_stems [+ 1 for unnamed instruments in the mixture], channels, time).
        """
        try:
            rendered = self._render(renderer, path)
            if rendered is None:
                return []
            rows = self._rows(rendered)
            del rendered  # every instrument and the mix of a long song: free them before cutting
            return self.cut_chunks(rows, rng)
        except Exception as error:  # one odd file must never end training or kill a DataLoader worker
            self.stats["error"] += 1
            log.warning("%s: skipped: %s: %s", path, type(error).__name__, error)
            return []

    def _rows(self, rendered) -> np.ndarray:
        """The stems of a rendered song, then its unnamed instruments if they are mixed in.

        Shape:
            Returns (n_stems [+ 1], channels, frames).
        """
        grouped = group_instruments(rendered.stems, [i.program for i in rendered.instruments], self.stem_set)
        rows = grouped.stems  # (n_stems, 2, frames)
        if not self.exclude_unnamed and grouped.unnamed.any():
            rows = np.concatenate([rows, grouped.unnamed[None]])
        # Mono after grouping: averaging the instruments first would copy all of them.
        return rows.mean(1, keepdims=True) if self.channels == 1 else rows

    def cut_chunks(self, rows: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
        """Chunks of one song at a random phase, filtered, at most ``max_chunks_per_song``.

        A song shorter than a segment gives one zero-padded chunk.

        Shape:
            rows: (n_stems [+ 1], channels, frames); each chunk (n_stems [+ 1], channels, segment).
        """
        n_frames, length, n_stems = rows.shape[-1], self.segment_samples, len(self.stem_set)
        # A random phase per song and epoch, so chunk borders move from one epoch to the next; at
        # most n_frames - length, or a song shorter than two segments would give no chunk at all.
        last_start = max(n_frames - length, 0)
        phase = int(rng.integers(0, min(length - 1, last_start), endpoint=True)) if last_start else 0
        kept = []
        for start in range(phase, last_start + 1, length):
            chunk = np.zeros(rows.shape[:2] + (length,), np.float32)
            piece = rows[..., start : start + length]
            chunk[..., : piece.shape[-1]] = piece
            reason = None if self.filter is None else self.filter.reason(chunk.sum(0), chunk[:n_stems])
            if reason is None:
                kept.append(chunk)
            else:
                self.stats[reason] += 1
        if len(kept) > self.max_chunks_per_song:
            self.stats["capped"] += len(kept) - self.max_chunks_per_song
            kept = [kept[i] for i in rng.choice(len(kept), self.max_chunks_per_song, replace=False)]
        self.stats["kept"] += len(kept)
        return kept

    def _take(self, pool: list[list], rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Yield-ready example from a random pool entry; evicts it after its last use."""
        index = int(rng.integers(len(pool)))
        entry = pool[index]
        entry[1] -= 1
        if entry[1] == 0:
            pool[index] = pool[-1]
            pool.pop()
        rows = entry[0]
        if self.augmentation is not None:
            rows = augment_stems(rows, rng, self.augmentation)
        n_stems = len(self.stem_set)
        stems = np.array(rows[:n_stems])  # a copy: the pool keeps its chunk for later uses
        return torch.from_numpy(rows.sum(0)), torch.from_numpy(stems)

    def shard_paths(self, shard: Shard) -> list[Path]:
        """The songs a shard renders: every ``shard.count``-th, from ``shard.index``."""
        return self.paths[shard.index :: shard.count]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The chunks of the next epoch (see the module docstring)."""
        epoch = self.epoch
        self.epoch += 1  # now, not at the first next(): the next iter() is the next epoch
        return self._epoch_chunks(self.shard(), epoch)

    def _epoch_chunks(self, shard: Shard, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        paths = self.shard_paths(shard)
        if not paths:  # more workers x ranks than songs: this one has nothing to do
            return
        rng = np.random.default_rng([self.seed, epoch, shard.index, shard.count])
        renderer = Renderer(self.soundfont, self.settings)
        pool: list[list] = []  # [chunk, uses left]
        try:
            passes = 0
            while self.epochs is None or passes < self.epochs:
                produced = 0
                for i in rng.permutation(len(paths)):
                    for chunk in self.song_chunks(renderer, paths[i], rng):
                        pool.append([chunk, self.reuse])
                        produced += 1
                        while len(pool) >= self.pool_size:
                            yield self._take(pool, rng)
                if produced == 0 and self.epochs is None:
                    raise RuntimeError(f"a whole pass over {len(paths)} songs gave no chunk: {dict(self.stats)}")
                passes += 1
            while pool:
                yield self._take(pool, rng)
        finally:
            renderer.close()

    def set_epoch(self, epoch: int):
        """Make the next ``iter()`` play ``epoch``; call it before each epoch with DataLoader workers."""
        self.epoch = int(epoch)

    def state_dict(self) -> dict:
        """``{"seed", "epoch"}``: resuming starts ``epoch`` from its beginning."""
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict):
        """Play ``state["epoch"]`` of the stream of ``state["seed"]`` next."""
        unknown = set(state) - {"seed", "epoch"}
        if unknown:
            raise ValueError(f"unknown key(s) in StreamingChunks state: {', '.join(sorted(unknown))}")
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
