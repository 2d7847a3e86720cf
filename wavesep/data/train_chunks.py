"""Random training chunks from a rendered dataset: sampled, augmented, filtered, reproducible.

Each rank sees an endless stream of examples numbered 0, 1, 2, ...; example ``k`` of rank ``r``
is a pure function of ``(seed, r, k)``. That makes three things simple:

- *resuming*: the state is ``{seed, position}``, and example ``position`` is the next one;
- *workers*: counting from the ``position`` where an iteration starts, the examples are cut into
  blocks of ``batch_size``, and block ``k`` goes to DataLoader worker ``k mod W``. A DataLoader
  asks its workers for batches in turn, worker 0 first, each time an iterator is made, so with
  ``TrainChunks(batch_size=B)`` and ``DataLoader(batch_size=B)`` the training loop sees examples
  ``position, position + 1, ...`` in order, whatever ``num_workers`` is and wherever it resumed;
- *ranks*: ranks draw from different streams, so no two ranks yield the same example.

Saving and resuming. With ``num_workers=0`` the dataset object itself iterates and
:meth:`TrainChunks.state_dict` is exact at any moment. With workers, each worker iterates its own
copy, made when the DataLoader iterator is created, and runs ahead of the loop (prefetching), so
the object the trainer holds does not move. The trainer therefore counts what its loop consumed::

    dataset.load_state_dict(saved)            # or nothing, on a fresh start
    start = dataset.position
    batches = iter(DataLoader(dataset, batch_size=B, num_workers=W))   # made after loading
    for step in ...:
        ...
        saved = {"seed": dataset.seed, "position": start + (step + 1) * B}

which equals ``dataset.state_dict()`` when ``num_workers=0``. Make a new DataLoader iterator after
``load_state_dict`` (with ``persistent_workers=True``, a new DataLoader: its workers keep the copy
they made first), and keep the DataLoader's default ``in_order=True``.
"""

from __future__ import annotations

import collections
import itertools
from dataclasses import dataclass

import numpy as np
import torch

from wavesep.data.augment import Augmentation, augment_stems, remix_sources, shift_starts, weighted_index
from wavesep.data.dataset import (
    SongSource, as_songs, check_sample_rate, read_instruments, resolve_segment, stem_assignment,
)
from wavesep.data.filters import ChunkFilter
from wavesep.data.sharding import RankedStream
from wavesep.instruments import StemSet, get_stem_set


@dataclass(frozen=True)
class ChunkPlan:
    """Where the audio of one training example is read from (before signal augmentation)."""

    song: int  # index of the example's song
    start: int  # its start frame; unnamed instruments are read there
    stem_sources: tuple[tuple[int, int], ...]  # per stem: (song index, start frame)


class TrainChunks(RankedStream, torch.utils.data.IterableDataset):
    """An endless, reproducible stream of training chunks (see the module docstring).

    A chunk is drawn as: a song with probability proportional to its length, a start uniform over
    the song (chunks of songs shorter than the segment are zero-padded), per-stem read offsets and
    remixing (``augmentation``), then per-stem gain, sign and channel swap. The mixture is the sum
    of the augmented stems, plus the augmented unnamed instruments when the stem set has no
    ``other`` and ``exclude_unnamed`` is False. A chunk the ``filter`` rejects (judged on the
    augmented example, as the model would see it) is drawn again, at most ``max_attempts`` times;
    ``stats`` counts kept and dropped chunks by reason, in the process that iterates.

    Args:
        songs: a split folder, a list of them, or a list of :class:`~wavesep.data.dataset.SongInfo`.
        stem_set: a stem set or its name.
        segment_samples: chunk length in samples (or give ``segment_s``).
        sample_rate: the rate the songs must have; None takes the songs' own (all equal).
        channels: 2 for stereo, 1 for mono (mean of the two channels).
        exclude_unnamed: drop instruments no stem names from the mixture (stem sets without other).
        augmentation: what to randomise; None for plain chunks.
        filter: the chunk filter; None keeps every chunk.
        max_attempts: draws per example before giving up with RuntimeError: a filter that rejects
            that many chunks in a row means the stem set does not fit the data.
        seed: seed of the whole stream.
        batch_size: examples per block handed to one DataLoader worker; set it to the DataLoader's
            batch size so the order does not depend on ``num_workers``.
        rank, world_size: distributed position; by default from torch.distributed, read when the
            dataset is built if it is initialised then (see :mod:`wavesep.data.sharding`).
        segment_s: the segment in seconds, instead of ``segment_samples``.

    Shape:
        Items are ``(mixture, stems)``: (channels, time) and (n_stems, channels, time) float32.
    """

    def __init__(self, songs: SongSource, stem_set: StemSet | str = "band", segment_samples: int | None = None,
                 sample_rate: int | None = None, channels: int = 2, exclude_unnamed: bool = False,
                 augmentation: Augmentation | None = None, filter: ChunkFilter | None = ChunkFilter(),
                 max_attempts: int = 50, seed: int = 0, batch_size: int = 1,
                 rank: int | None = None, world_size: int | None = None, segment_s: float | None = None):
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels}")
        if max_attempts < 1 or batch_size < 1:
            raise ValueError("max_attempts and batch_size must be at least 1")
        self.songs = as_songs(songs)
        self.sample_rate = check_sample_rate(self.songs, sample_rate)
        self.segment_samples = resolve_segment(segment_samples, segment_s, self.sample_rate)
        if self.segment_samples is None:
            raise ValueError("TrainChunks needs segment_samples or segment_s")
        self.stem_set = get_stem_set(stem_set)
        self.stem_names = self.stem_set.names
        self.channels = channels
        self.exclude_unnamed = exclude_unnamed
        self.augmentation = augmentation
        self.filter = filter
        self.max_attempts = max_attempts
        self.seed = seed
        self.batch_size = batch_size
        self._capture_rank(rank, world_size)
        self.position = 0  # examples of this rank's stream consumed by iterating this object in-process
        self.stats: collections.Counter = collections.Counter()
        self._index_songs()

    def _index_songs(self):
        """Per song, the stem of each instrument; per stem, the songs that have it; cumulative weights."""
        n_stems = len(self.stem_set)
        self._assignment = [stem_assignment(song.programs, self.stem_set) for song in self.songs]
        lengths = np.array([song.num_frames for song in self.songs], np.float64)
        if lengths.sum() <= 0:
            raise ValueError("every song is empty")
        self._cumulative = np.cumsum(lengths)
        self._candidates, self._candidate_cumulative = [], []
        for stem in range(n_stems):
            having = np.array([i for i, assigned in enumerate(self._assignment) if stem in assigned], np.int64)
            self._candidates.append(having)
            self._candidate_cumulative.append(np.cumsum(lengths[having]) if len(having) else np.zeros(0))
        self._has_unnamed = not self.exclude_unnamed and any(None in a for a in self._assignment)

    @property
    def segment_s(self) -> float:
        return self.segment_samples / self.sample_rate

    def _random_start(self, rng: np.random.Generator, song: int) -> int:
        return int(rng.integers(0, max(self.songs[song].num_frames - self.segment_samples, 0), endpoint=True))

    def _plan(self, rng: np.random.Generator) -> ChunkPlan:
        n_stems = len(self.stem_set)
        song = weighted_index(rng, self._cumulative)
        start = self._random_start(rng, song)
        starts = [start] * n_stems
        augmentation = self.augmentation
        if augmentation is not None and augmentation.max_shift_samples > 0:
            max_start = self.songs[song].num_frames - self.segment_samples
            starts = shift_starts(rng, start, n_stems, augmentation.max_shift_samples, max_start).tolist()
        sources = [(song, s) for s in starts]
        if augmentation is not None and augmentation.remix_probability > 0:
            chosen = remix_sources(rng, augmentation.remix_probability, self._candidates, self._candidate_cumulative)
            for stem, other in enumerate(chosen):
                if other is not None:
                    sources[stem] = (other, self._random_start(rng, other))
        return ChunkPlan(song, start, tuple(sources))

    def plan(self, index: int, attempt: int = 0, rank: int = 0) -> ChunkPlan:
        """Where example ``index`` of ``rank`` reads its audio, at a given filter attempt."""
        return self._plan(self._rng(index, attempt, rank))

    def _rng(self, index: int, attempt: int, rank: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, rank, index, attempt])

    def read(self, plan: ChunkPlan) -> np.ndarray:
        """The audio of a plan: one row per stem, then one of unnamed instruments if they are mixed in.

        Shape:
            Returns (n_stems [+ 1], channels, segment_samples) float32.
        """
        n_rows = len(self.stem_set) + int(self._has_unnamed)
        rows = np.zeros((n_rows, self.channels, self.segment_samples), np.float32)
        reads = [(stem, song, start) for stem, (song, start) in enumerate(plan.stem_sources)]
        if self._has_unnamed:
            reads.append((None, plan.song, plan.start))
        for row, (stem, song, start) in enumerate(reads):
            indices = [i for i, assigned in enumerate(self._assignment[song]) if assigned == stem]
            if indices:
                audio = read_instruments(self.songs[song], start, self.segment_samples, self.channels, indices)
                rows[row] = audio.sum(0)
        return rows

    def example(self, index: int, rank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Example ``index`` of ``rank``'s stream: ``(mixture, stems)``, shapes (C, T), (n_stems, C, T).

        Raises:
            RuntimeError: the filter rejected ``max_attempts`` chunks in a row.
        """
        n_stems = len(self.stem_set)
        for attempt in range(self.max_attempts):
            rng = self._rng(index, attempt, rank)
            rows = self.read(self._plan(rng))  # (n_stems [+ unnamed], channels, time)
            if self.augmentation is not None:
                rows = augment_stems(rows, rng, self.augmentation)
            mixture, stems = rows.sum(0), rows[:n_stems]
            reason = None if self.filter is None else self.filter.reason(mixture, stems)
            if reason is None:
                self.stats["kept"] += 1
                return torch.from_numpy(mixture), torch.from_numpy(np.ascontiguousarray(stems))
            self.stats[reason] += 1
        raise RuntimeError(
            f"no chunk passed the filter in {self.max_attempts} attempts (counts so far: "
            f"{dict(self.stats)}): does stem set {self.stem_set.name!r} fit this dataset's instruments?"
        )

    def __iter__(self):
        """Endless: make one iterator per run. A new iterator continues from ``position``."""
        shard = self.shard()
        start = self.position
        # A worker iterates a copy: moving its position would mean nothing to the trainer, and
        # persistent workers would restart their next iterator from scattered positions.
        in_process = torch.utils.data.get_worker_info() is None
        # Blocks count from `start`, not from example 0: the DataLoader asks worker 0 first, so
        # worker 0 must hold the first block of this iteration, wherever the stream resumes.
        for block in itertools.count(shard.worker_id, shard.num_workers):
            first = start + block * self.batch_size
            for index in range(first, first + self.batch_size):
                item = self.example(index, shard.rank)
                if in_process:
                    self.position = index + 1  # before yielding: a state_dict taken now resumes after it
                yield item

    def state_dict(self) -> dict:
        """``{"seed", "position"}``: enough to resume the stream at the next example.

        ``position`` counts examples consumed by iterating this object in-process. With DataLoader
        workers the iterating happens in copies and ``position`` stays where the iterator was
        made: save ``{"seed": dataset.seed, "position": start + steps x batch size}`` instead (see
        the module docstring), exact when ``batch_size`` matches the DataLoader's.
        """
        return {"seed": self.seed, "position": self.position}

    def load_state_dict(self, state: dict):
        """Resume at ``state["position"]`` of the stream of ``state["seed"]``."""
        unknown = set(state) - {"seed", "position"}
        if unknown:
            raise ValueError(f"unknown key(s) in TrainChunks state: {', '.join(sorted(unknown))}")
        self.seed = int(state["seed"])
        self.position = int(state["position"])
