"""Read a rendered stem dataset: song metadata, chunks of stems grouped by a stem set, and the
deterministic map-style dataset used for validation and test.

The dataset on disk is the one :mod:`wavesep.synth.writer` writes::

    DATASET/<split>/<song-id>/stems/<instrument-id>.flac   # one per instrument
    DATASET/<split>/<song-id>/metadata.json                 # present only when the song is complete

Only ``metadata.json`` is read to know a song (never audio headers), so listing a split of
100 000 songs costs 100 000 small JSON reads, once.

The mixture of a chunk:
    Instruments are summed into the stems of a :class:`~wavesep.instruments.StemSet` by program.
    The mixture is the sum of *all* instrument stems of the chunk, never ``mix.flac``, so that
    augmented stems can be summed into a matching mixture.

    - If the stem set has ``other``, every instrument no stem names goes to ``other``, and
      ``mixture == stems.sum(0)`` exactly.
    - If it has no ``other``, instruments that no stem names stay in the mixture as interference
      (``mixture == stems.sum(0) + unnamed``); with ``exclude_unnamed=True`` they are dropped
      from the mixture as well, as the original study did.
"""

from __future__ import annotations

import collections
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import soundfile
import torch

from wavesep.data.filters import ChunkFilter
from wavesep.instruments import StemSet, check_program, family_name, get_stem_set
from wavesep.synth.writer import METADATA

PathLike = str | os.PathLike

FILTER_WINDOW_S = 30.0
"""Audio :class:`StemDataset` reads at once to filter chunks: 30 s of 6 stereo stems, the
unnamed instruments and one instrument take about 85 MB at 44.1 kHz."""


@dataclass(frozen=True)
class StemInfo:
    """One instrument stem of a song, as its metadata describes it."""

    id: str  # instrument id, also the file name: 't01-c09-p128'
    path: Path  # absolute path of the FLAC file
    program: int  # 0-127, or 128 for drums
    family: str  # GM class ('Bass', 'Drums', ...)
    seconds_active: float  # from the renderer; 0 when unknown


@dataclass(frozen=True)
class SongInfo:
    """A rendered song, read from its metadata.json only."""

    folder: Path
    song_id: str
    split: str
    sample_rate: int
    num_frames: int
    stems: tuple[StemInfo, ...]

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.sample_rate

    @property
    def programs(self) -> list[int]:
        return [stem.program for stem in self.stems]


def _require(condition: bool, reason: str):
    if not condition:
        raise ValueError(reason)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_metadata(path: Path, data) -> SongInfo:
    """Validate the content of one ``metadata.json`` and build its :class:`SongInfo`.

    Raises:
        ValueError: naming ``path`` and what is wrong.
    """
    try:
        _require(isinstance(data, dict), "not a JSON object")
        sample_rate, num_frames, stems = data["sample_rate"], data["num_frames"], data["stems"]
        _require(_is_int(sample_rate) and sample_rate > 0, f"sample_rate {sample_rate!r} is not a positive integer")
        _require(data["channels"] == 2, f"channels is {data['channels']!r}, stem datasets are stereo")
        _require(_is_int(num_frames) and num_frames >= 0, f"num_frames {num_frames!r} is not a count")
        _require(isinstance(stems, dict) and stems, "'stems' is not a non-empty mapping")
        infos = []
        for stem_id, stem in stems.items():
            _require(isinstance(stem, dict), f"stem {stem_id!r} is not a mapping")
            file = stem["file"]
            _require(isinstance(file, str) and file and not Path(file).is_absolute() and ".." not in Path(file).parts,
                     f"stem {stem_id!r} has a bad file name {file!r}")
            program = check_program(stem["program"])
            infos.append(StemInfo(
                id=str(stem_id), path=path.parent / file, program=program,
                family=str(stem.get("class", family_name(program))),
                seconds_active=float(stem.get("seconds_active", 0.0)),
            ))
    except KeyError as error:
        raise ValueError(f"{path}: broken metadata: missing key {error}") from None
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: broken metadata: {error}") from None
    return SongInfo(
        folder=path.parent, song_id=str(data.get("song_id", path.parent.name)),
        split=str(data.get("split", path.parent.parent.name)), sample_rate=sample_rate,
        num_frames=num_frames, stems=tuple(infos),
    )


def read_metadata(path: PathLike) -> SongInfo:
    """Read and validate one ``metadata.json``.

    Raises:
        ValueError: the file is unreadable, not JSON, or not valid metadata; the message names it.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: broken metadata: {error}") from None
    return parse_metadata(path, data)


def _song_folders(split_dir: Path) -> list[Path]:
    """Complete song folders: not hidden (unfinished renders), with a metadata.json."""
    return sorted(
        entry for entry in split_dir.iterdir()
        if entry.is_dir() and not entry.name.startswith(".") and (entry / METADATA).is_file()
    )


def load_songs(split_dirs: PathLike | Sequence[PathLike]) -> list[SongInfo]:
    """Every complete song of one split folder (``DATASET/<split>``) or of a list of them.

    Folders starting with "." (renders in progress) and song folders without metadata.json
    (unfinished) are skipped. Only metadata is read.

    Raises:
        ValueError: a folder does not exist, is a dataset root rather than a split folder, or
            a metadata.json is broken (the message names the file).
    """
    if isinstance(split_dirs, (str, os.PathLike)):
        split_dirs = [split_dirs]
    songs = []
    for split_dir in map(Path, split_dirs):
        if not split_dir.is_dir():
            raise ValueError(f"{split_dir}: no such dataset folder")
        folders = _song_folders(split_dir)
        if not folders and (nested := [d.name for d in _split_dirs(split_dir) if _song_folders(d)]):
            raise ValueError(
                f"{split_dir} is a dataset root; pass one of its split folders "
                f"({', '.join(nested)}), e.g. {split_dir / nested[0]}"
            )
        songs += [read_metadata(folder / METADATA) for folder in folders]
    return songs


def _split_dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def _size_on_disk(root: Path) -> int:
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except OSError:  # removed while we walk (a concurrent render's temporary)
                pass
    return total


def _format_bytes(n_bytes: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n_bytes < 1000:
            return f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return f"{n_bytes:.1f} TB"


def describe_dataset(path: PathLike) -> str:
    """A short printable summary of a rendered dataset.

    Args:
        path: the dataset root (holding split folders), or one split folder.

    Returns:
        Lines with songs and hours per split, stems per GM class, unfinished songs and the
        total size on disk.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: no such dataset folder")
    splits = [path] if _song_folders(path) else _split_dirs(path)
    lines, classes = [], collections.Counter()
    total_songs, total_s = 0, 0.0
    for split_dir in splits:
        songs = load_songs(split_dir)
        unfinished = sum(
            1 for d in split_dir.iterdir()
            if d.is_dir() and (d.name.startswith(".") or not (d / METADATA).is_file())
        )
        seconds = sum(song.duration_s for song in songs)
        total_songs, total_s = total_songs + len(songs), total_s + seconds
        classes.update(stem.family for song in songs for stem in song.stems)
        note = f", {unfinished} unfinished" if unfinished else ""
        lines.append(f"  {split_dir.name}: {len(songs)} songs, {seconds / 3600:.3f} h{note}")
    head = (f"dataset {path}: {total_songs} songs, {total_s / 3600:.3f} h of audio, "
            f"{sum(classes.values())} stems, {_format_bytes(_size_on_disk(path))} on disk")
    by_class = ", ".join(f"{name} {n}" for name, n in classes.most_common()) or "none"
    return "\n".join([head, *lines, f"  stems per class: {by_class}"])


def read_instruments(song: SongInfo, start: int, length: int, channels: int = 2,
                     indices: Sequence[int] | None = None) -> np.ndarray:
    """Frames ``[start, start + length)`` of instrument stems, zero outside the song.

    Args:
        song: the song to read.
        start: first frame; may be negative or past the end (those frames are zeros).
        length: number of frames.
        channels: 2 for stereo, 1 for mono (the mean of the two channels).
        indices: which of ``song.stems`` to read; all when None.

    Shape:
        Returns (len(indices), channels, length) float32.

    Raises:
        ValueError: a stem file is shorter than its metadata says.
    """
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels}")
    indices = range(len(song.stems)) if indices is None else indices
    out = np.zeros((len(indices), channels, length), np.float32)  # (instruments, channels, time)
    first, last = max(start, 0), min(start + length, song.num_frames)
    if last <= first:
        return out
    for row, index in enumerate(indices):
        path = song.stems[index].path
        audio, _ = soundfile.read(path, start=first, frames=last - first, dtype="float32", always_2d=True)
        if audio.shape[0] != last - first:
            raise ValueError(f"{path}: {audio.shape[0] + first} frames, metadata says {song.num_frames}")
        audio = audio.T  # (channels, time)
        out[row, :, first - start : last - start] = audio.mean(0, keepdims=True) if channels == 1 else audio
    return out


def stem_assignment(programs: Sequence[int], stem_set: StemSet) -> list[int | None]:
    """Per instrument, the index of the stem it is summed into, or None (unnamed, no ``other``)."""
    return [stem_set.stem_index(program) for program in programs]


def group_instruments(audio: np.ndarray, programs: Sequence[int], stem_set: StemSet) -> Chunk:
    """Sum instruments into the stems of a stem set.

    Shape:
        audio: (instruments, channels, time).
        Returns a :class:`Chunk` with stems (n_stems, channels, time) and unnamed (channels, time).
    """
    stems = np.zeros((len(stem_set),) + audio.shape[1:], np.float32)
    unnamed = np.zeros(audio.shape[1:], np.float32)
    for row, index in enumerate(stem_assignment(programs, stem_set)):
        target = unnamed if index is None else stems[index]
        target += audio[row]
    return Chunk(stems, unnamed)


class Chunk(NamedTuple):
    """Stems of a stretch of a song, and what no stem takes.

    Shape:
        stems: (n_stems, channels, time) float32.
        unnamed: (channels, time) float32, the instruments no stem names (zeros when the stem
            set has ``other``).
    """

    stems: np.ndarray
    unnamed: np.ndarray

    def mixture(self, exclude_unnamed: bool = False) -> np.ndarray:
        """The sum of the stems, plus the unnamed instruments unless excluded. Shape (channels, time)."""
        mixture = self.stems.sum(0)
        return mixture if exclude_unnamed else mixture + self.unnamed


def read_chunk(song: SongInfo, start: int, length: int, stem_set: StemSet | str,
               channels: int = 2) -> Chunk:
    """Read frames ``[start, start + length)`` of a song, zero-padded, grouped into stems.

    Instruments are read and summed one at a time, so memory holds the stems and one instrument,
    never every instrument at once (20 instruments of a 10-minute song would take about 4 GB).
    Use ``chunk.mixture(exclude_unnamed)`` for the mixture; see the module docstring.
    """
    stem_set = get_stem_set(stem_set)
    stems = np.zeros((len(stem_set), channels, length), np.float32)  # (n_stems, channels, time)
    unnamed = np.zeros((channels, length), np.float32)
    for index, stem in enumerate(stem_assignment(song.programs, stem_set)):
        target = unnamed if stem is None else stems[stem]
        target += read_instruments(song, start, length, channels, [index])[0]
    return Chunk(stems, unnamed)


SongSource = PathLike | Sequence[PathLike] | Sequence[SongInfo]


def as_songs(source: SongSource) -> list[SongInfo]:
    """Songs from split folder(s), or a list of :class:`SongInfo` as is; never empty."""
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, SongInfo) for s in source):
        songs = list(source)
    else:
        songs = load_songs(source)
    if not songs:
        raise ValueError(f"{source}: no complete songs (folders with {METADATA})")
    return songs


def check_sample_rate(songs: Sequence[SongInfo], sample_rate: int | None) -> int:
    """The common sample rate of ``songs``, which must equal ``sample_rate`` when given.

    Raises:
        ValueError: naming a song whose rate differs.
    """
    expected = songs[0].sample_rate if sample_rate is None else sample_rate
    for song in songs:
        if song.sample_rate != expected:
            raise ValueError(
                f"{song.folder}: sample rate {song.sample_rate} Hz, expected {expected} Hz "
                "(render the dataset at the model's rate, or resample it)"
            )
    return expected


def resolve_segment(segment_samples: int | None, segment_s: float | None, sample_rate: int) -> int | None:
    """Segment length in samples from either argument (at most one may be given)."""
    if segment_samples is not None and segment_s is not None:
        raise ValueError("give segment_samples or segment_s, not both")
    if segment_s is not None:
        segment_samples = round(segment_s * sample_rate)
    if segment_samples is not None and segment_samples <= 0:
        raise ValueError(f"segment must be positive, got {segment_samples} samples")
    return segment_samples


def to_example(chunk: Chunk, exclude_unnamed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(mixture, stems) tensors of a chunk. Shapes (channels, time) and (n_stems, channels, time)."""
    mixture = chunk.mixture(exclude_unnamed)
    return torch.from_numpy(np.ascontiguousarray(mixture)), torch.from_numpy(np.ascontiguousarray(chunk.stems))


class StemDataset(torch.utils.data.Dataset):
    """Fixed chunks of every song, in order: the deterministic dataset for validation and test.

    Song ``i`` of length ``L`` gives ``ceil((L - segment) / stride) + 1`` chunks starting at
    ``0, stride, 2 * stride, ...``; the last one is zero-padded past the end of the song, so the
    chunks cover the whole song. With no segment, every item is a whole song.

    With a ``filter``, every song is read once at construction, a window of chunks at a time, and
    chunks it drops are left out (``drop_counts`` counts them by reason): the dataset's length and
    items stay fixed.

    Args:
        songs: a split folder, a list of them, or a list of :class:`SongInfo`.
        stem_set: a stem set or its name (see :func:`wavesep.instruments.get_stem_set`).
        segment_samples: chunk length in samples; None for whole songs.
        stride_samples: distance between chunk starts; defaults to the segment (no overlap).
        sample_rate: the rate the songs must have; None takes the songs' own (all equal).
        channels: 2 for stereo, 1 for mono (mean of the two channels).
        exclude_unnamed: drop instruments no stem names from the mixture (stem sets without other).
        filter: drop chunks this filter rejects; None keeps every chunk.
        segment_s: the segment in seconds, instead of ``segment_samples``.

    Shape:
        Items are ``(mixture, stems)``: (channels, time) and (n_stems, channels, time) float32.
    """

    def __init__(self, songs: SongSource, stem_set: StemSet | str = "band", segment_samples: int | None = None,
                 stride_samples: int | None = None, sample_rate: int | None = None, channels: int = 2,
                 exclude_unnamed: bool = False, filter: ChunkFilter | None = None,
                 segment_s: float | None = None):
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, got {channels}")
        self.songs = as_songs(songs)
        self.sample_rate = check_sample_rate(self.songs, sample_rate)
        self.stem_set = get_stem_set(stem_set)
        self.stem_names = self.stem_set.names
        self.segment_samples = resolve_segment(segment_samples, segment_s, self.sample_rate)
        self.stride_samples = stride_samples or self.segment_samples
        if self.stride_samples is not None and self.stride_samples <= 0:
            raise ValueError(f"stride must be positive, got {self.stride_samples} samples")
        self.channels = channels
        self.exclude_unnamed = exclude_unnamed
        self.filter = filter
        self.drop_counts: collections.Counter = collections.Counter()
        self.chunks: list[tuple[int, int]] = []  # (song index, start frame)
        for index, song in enumerate(self.songs):
            starts = self._starts(song)
            if filter is not None:
                starts = self._filtered(song, starts)
            self.chunks += [(index, start) for start in starts]

    @property
    def segment_s(self) -> float | None:
        return None if self.segment_samples is None else self.segment_samples / self.sample_rate

    def _starts(self, song: SongInfo) -> list[int]:
        if self.segment_samples is None or song.num_frames <= self.segment_samples:
            return [0]
        n_chunks = math.ceil((song.num_frames - self.segment_samples) / self.stride_samples) + 1
        return [k * self.stride_samples for k in range(n_chunks)]

    def _length(self, song: SongInfo) -> int:
        return song.num_frames if self.segment_samples is None else self.segment_samples

    def _filtered(self, song: SongInfo, starts: list[int]) -> list[int]:
        """The starts whose chunk the filter keeps.

        Reads the song a window of consecutive chunks at a time (see :data:`FILTER_WINDOW_S`):
        memory stays bounded whatever the song's length, and each file is opened once per window
        rather than once per chunk.
        """
        length = self._length(song)
        window_frames = max(round(FILTER_WINDOW_S * song.sample_rate), length)
        windows = [[starts[0]]]  # consecutive starts whose chunks fit in one window
        for start in starts[1:]:
            if start + length - windows[-1][0] > window_frames:
                windows.append([start])
            else:
                windows[-1].append(start)
        return [start for window in windows for start in self._kept_in_window(song, window, length)]

    def _kept_in_window(self, song: SongInfo, starts: list[int], length: int) -> list[int]:
        """The ``starts`` (ascending, within one window) whose chunk the filter keeps."""
        first = starts[0]
        window = read_chunk(song, first, starts[-1] + length - first, self.stem_set, self.channels)
        kept = []
        for start in starts:
            cut = slice(start - first, start - first + length)
            chunk = Chunk(window.stems[..., cut], window.unnamed[..., cut])
            reason = self.filter.reason(chunk.mixture(self.exclude_unnamed), chunk.stems)
            if reason is None:
                kept.append(start)
            else:
                self.drop_counts[reason] += 1
        return kept

    def __len__(self) -> int:
        return len(self.chunks)

    def chunk_info(self, index: int) -> tuple[SongInfo, int]:
        """The song and start frame of item ``index``."""
        song_index, start = self.chunks[index]
        return self.songs[song_index], start

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        song, start = self.chunk_info(index)
        chunk = read_chunk(song, start, self._length(song), self.stem_set, self.channels)
        return to_example(chunk, self.exclude_unnamed)
