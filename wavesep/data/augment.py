"""On-the-fly augmentation of training chunks, applied to stems before they are summed into the
mixture (as Demucs does), so the mixture always equals the sum of the augmented stems.

Two kinds, applied where they can be:

- *reading*: each stem's read offset jittered (:func:`shift_starts`), and each stem taken from
  another random song and offset (:func:`remix_sources`): both change which audio is read, so
  :class:`~wavesep.data.train_chunks.TrainChunks` applies them while reading;
- *signal*: random gain, sign flip and left/right swap per stem (:func:`augment_stems`), on
  arrays already read.

Every function draws from a ``numpy.random.Generator`` it is given, in a fixed order, so the same
generator state gives the same augmentation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Augmentation:
    """What to randomise, per stem of a training example."""

    gain_db: tuple[float, float] = (-6.0, 3.0)  # uniform gain range; Demucs scales by 0.25-1.25 (-12 to +2 dB)
    flip_sign_probability: float = 0.5  # polarity is inaudible alone but changes how stems add up
    swap_channels_probability: float = 0.5  # mirrors a stem's stereo image (stereo only)
    max_shift_samples: int = 0  # read offset jitter, +-; 0 keeps the song's timing (Demucs: 1 s)
    remix_probability: float = 0.0  # take the stem from another song; 0 keeps songs musically coherent

    def __post_init__(self):
        low, high = self.gain_db
        if low > high:
            raise ValueError(f"gain_db range {self.gain_db} is empty")
        for name in ("flip_sign_probability", "swap_channels_probability", "remix_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_shift_samples < 0:
            raise ValueError(f"max_shift_samples must be >= 0, got {self.max_shift_samples}")

    @classmethod
    def none(cls) -> Augmentation:
        """An augmentation that changes nothing."""
        return cls(gain_db=(0.0, 0.0), flip_sign_probability=0.0, swap_channels_probability=0.0)


def augment_stems(stems: np.ndarray, rng: np.random.Generator, augmentation: Augmentation) -> np.ndarray:
    """Random gain, sign and channel order per stem; returns a new array.

    Shape:
        stems: (n_stems, channels, time); returns the same shape, float32.
    """
    n_stems, channels = stems.shape[:2]
    low, high = augmentation.gain_db
    gains = 10 ** (rng.uniform(low, high, n_stems) / 20)
    signs = np.where(rng.random(n_stems) < augmentation.flip_sign_probability, -1.0, 1.0)
    swaps = rng.random(n_stems) < augmentation.swap_channels_probability
    out = stems * (gains * signs).astype(np.float32)[:, None, None]
    if channels == 2 and swaps.any():
        out[swaps] = out[swaps][:, ::-1]
    return out


def shift_starts(rng: np.random.Generator, start: int, n_stems: int, max_shift_samples: int,
                 max_start: int) -> np.ndarray:
    """Per stem, ``start`` jittered by up to ``max_shift_samples`` either way, kept in ``[0, max_start]``.

    Clamping keeps chunks inside the song, so a shift never adds padding a plain read would not.

    Shape:
        Returns (n_stems,) int64.
    """
    shifts = rng.integers(-max_shift_samples, max_shift_samples, n_stems, endpoint=True)
    return np.clip(start + shifts, 0, max(max_start, 0))


def weighted_index(rng: np.random.Generator, cumulative: np.ndarray) -> int:
    """An index drawn with probability proportional to its weight, given the cumulative weights.

    O(log n) per draw, where ``rng.choice(p=...)`` is O(n): this runs once per chunk over
    datasets of many songs.
    """
    return int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))


def remix_sources(rng: np.random.Generator, probability: float, candidates: Sequence[np.ndarray],
                  cumulative_weights: Sequence[np.ndarray]) -> list[int | None]:
    """Per stem, the song to take it from instead of the example's own, or None to keep it.

    Args:
        rng: the generator to draw from.
        probability: chance that a stem is remixed.
        candidates: per stem, indices of songs that have that stem (a song without it would give
            silence); a stem with no candidate is kept.
        cumulative_weights: per stem, the cumulative weights of its candidates.
    """
    chosen: list[int | None] = []
    for songs, cumulative in zip(candidates, cumulative_weights):
        remix = rng.random() < probability
        chosen.append(int(songs[weighted_index(rng, cumulative)]) if remix and len(songs) else None)
    return chosen
