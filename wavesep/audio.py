"""Audio files in and out for separation: checked opening, block reading, stem writing.

Reading goes through libsndfile (soundfile): WAV (16/24/32-bit integer and float), FLAC, OGG and
MP3. Every problem with an input is a :class:`BadAudio` whose message is one line naming the file
and the reason. Writing: WAV at 16, 24 or 32-bit integer or 32-bit float; FLAC at 16 or 24 bits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
FORMATS = ("wav", "flac")
BITS = ("16", "24", "32", "float")
SUBTYPES = {"16": "PCM_16", "24": "PCM_24", "32": "PCM_32", "float": "FLOAT"}


class BadAudio(ValueError):
    """An input that cannot be separated; ``str()`` is one line naming the file and the reason."""


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def _reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[-1] if text else type(error).__name__


def open_audio(path: str | os.PathLike) -> AudioInfo:
    """What separating ``path`` needs to know, or :class:`BadAudio` saying why it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise BadAudio(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    if path.stat().st_size == 0:
        raise BadAudio(f"{path}: empty file (0 bytes)")
    try:
        info = soundfile.info(str(path))
    except Exception as error:  # libsndfile raises LibsndfileError/RuntimeError for anything it cannot parse
        raise BadAudio(f"{path}: not a readable audio file ({_reason(error)})") from None
    if info.frames <= 0:
        raise BadAudio(f"{path}: no audio samples (zero length)")
    if info.channels not in (1, 2):
        raise BadAudio(f"{path}: {info.channels} channels; wavesep separates mono or stereo")
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames))


def read_blocks(info: AudioInfo, block_frames: int) -> Iterator[np.ndarray]:
    """The file's samples as float32 blocks ``(channels, <= block_frames)``.

    Raises :class:`BadAudio` on a decoding error or a non-finite sample (NaN or inf), naming the
    time where it happened.
    """
    position = 0
    try:
        with soundfile.SoundFile(str(info.path)) as handle:
            while True:
                block = handle.read(block_frames, dtype="float32", always_2d=True)  # (time, channels)
                if not len(block):
                    break
                if not np.isfinite(block).all():
                    where = position + int(np.argmin(np.isfinite(block).all(axis=1)))
                    raise BadAudio(f"{info.path}: non-finite samples (NaN or inf) at "
                                   f"{where / info.sample_rate:.3f} s")
                position += len(block)
                yield block.T
    except BadAudio:
        raise
    except Exception as error:
        raise BadAudio(f"{info.path}: decoding failed at {position / info.sample_rate:.3f} s "
                       f"({_reason(error)})") from None
    if position == 0:
        raise BadAudio(f"{info.path}: no audio samples (zero length)")


def subtype(format: str, bits: str) -> str:
    """The libsndfile subtype for ``format`` at ``bits``; ValueError for a pair that cannot be."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
    if bits not in BITS:
        raise ValueError(f"unknown bit depth {bits!r}: use one of {', '.join(BITS)}")
    if format == "flac" and bits not in ("16", "24"):
        raise ValueError(f"FLAC holds 16 or 24-bit integers, not {bits}: use --bits 16|24 or --format wav")
    return SUBTYPES[bits]


def open_writer(path: Path, sample_rate: int, channels: int, frames: int, format: str,
                bits: str) -> soundfile.SoundFile:
    """A stem file of ``frames`` samples opened for block writing. A WAV that would pass WAV's
    4 GiB limit is written as RF64 (its 64-bit extension); anything smaller as plain WAV."""
    sub = subtype(format, bits)
    container = "FLAC"
    if format == "wav":
        sample_bytes = 4 if bits == "float" else int(bits) // 8
        container = "RF64" if frames * channels * sample_bytes >= 2**32 - 2**20 else "WAV"
    return soundfile.SoundFile(str(path), "w", sample_rate, channels, sub, format=container)


def all_audio_files(paths: list[Path]) -> list[Path]:
    """Files as given, and folders expanded to the audio files under them (sorted)."""
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        else:
            files.append(path)
    return files
