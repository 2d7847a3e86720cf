"""On-the-fly augmentation of training chunks, applied to stems before they are summed into the
mixture (as Demucs does), so the mixture always equals the sum of the augmented stems.

Two kinds, applied where they can be:

- *reading*: each stem's read offset jittered (:func:`shift_starts`), and each stem taken from
  another random song and offset (:func:`remix_sources`): both change which audio is read, so
  :class:`~wavesep.data.train_chunks.TrainChunks` applies them while reading;
- *signal*: random gain, sign flip and left/right swap per stem (:func:`augment_stems`), on
  arrays already read, and optionally a random timbre: a stem played higher or lower
  (:func:`repitch`: resampled, pitch and tempo together, so a drum kit is heard tuned otherwise),
  and a smooth random EQ curve and a low-pass at a random cutoff (:func:`random_equalizer`), so
  that a model does not learn one SoundFont's spectra (other SoundFonts' samples are brighter,
  duller, tuned otherwise, or recorded at a lower rate).

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
    eq_db: float = 0.0  # random smooth EQ per stem, up to +-eq_db at each of EQ_POINTS frequencies; 0 for none
    lowpass_probability: float = 0.0  # chance that a stem is low-passed at a random cutoff
    repitch_semitones: float = 0.0  # each stem resampled up or down by up to this many semitones; 0 for none

    def __post_init__(self):
        low, high = self.gain_db
        if low > high:
            raise ValueError(f"gain_db range {self.gain_db} is empty")
        if self.eq_db < 0:
            raise ValueError(f"eq_db must be >= 0, got {self.eq_db}")
        if self.repitch_semitones < 0:
            raise ValueError(f"repitch_semitones must be >= 0, got {self.repitch_semitones}")
        for name in ("flip_sign_probability", "swap_channels_probability", "remix_probability",
                     "lowpass_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.max_shift_samples < 0:
            raise ValueError(f"max_shift_samples must be >= 0, got {self.max_shift_samples}")

    @classmethod
    def none(cls) -> Augmentation:
        """An augmentation that changes nothing."""
        return cls(gain_db=(0.0, 0.0), flip_sign_probability=0.0, swap_channels_probability=0.0)


def augment_stems(stems: np.ndarray, rng: np.random.Generator, augmentation: Augmentation) -> np.ndarray:
    """Random gain, sign and channel order per stem, then its random timbre if asked for
    (:func:`repitch`, :func:`random_equalizer`); returns a new array.

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
    if augmentation.repitch_semitones:
        semitones = rng.uniform(-augmentation.repitch_semitones, augmentation.repitch_semitones, n_stems)
        out = repitch(out, 2 ** (semitones / 12))
    if augmentation.eq_db or augmentation.lowpass_probability:
        curves = random_equalizer(rng, n_stems, stems.shape[-1] // 2 + 1, augmentation.eq_db,
                                  augmentation.lowpass_probability)
        out = np.fft.irfft(np.fft.rfft(out, axis=-1) * curves[:, None], n=stems.shape[-1], axis=-1)
    return out.astype(np.float32, copy=False)


def repitch(stems: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Each stem played ``factor`` times faster (higher and shorter for a factor above 1), by
    linear interpolation about the chunk's centre; what a faster stem does not cover at the chunk's
    ends is silence.

    Shape:
        stems: (n_stems, channels, time), factors: (n_stems,); returns the same shape.
    """
    length = stems.shape[-1]
    time = np.arange(length, dtype=np.float64)
    centre = (length - 1) / 2
    out = np.empty_like(stems)
    for stem, factor in enumerate(factors):
        where = (time - centre) * factor + centre
        for channel in range(stems.shape[1]):
            out[stem, channel] = np.interp(where, time, stems[stem, channel], left=0.0, right=0.0)
    return out


EQ_POINTS = 8  # random EQ gains, log-spaced from 1/512 of the Nyquist frequency (43 Hz at 44.1 kHz) to it


def random_equalizer(rng: np.random.Generator, n_stems: int, bins: int, eq_db: float,
                     lowpass_probability: float) -> np.ndarray:
    """Per stem, a random magnitude response over ``bins`` rFFT bins: gains drawn uniformly in
    ``+-eq_db`` at :data:`EQ_POINTS` log-spaced frequencies and interpolated (in dB, over log
    frequency), times, with ``lowpass_probability``, a roll-off of 24 dB per octave above a cutoff
    drawn log-uniformly between 1/4 of the Nyquist frequency and all of it.

    Shape:
        Returns (n_stems, bins) float32, real and non-negative (zero phase).
    """
    frequency = np.linspace(0.0, 1.0, bins)  # fraction of the Nyquist frequency
    log_f = np.log2(np.maximum(frequency, 1 / 1024))
    points = np.linspace(-9.0, 0.0, EQ_POINTS)  # log2 of 1/512 ... 1
    gains_db = rng.uniform(-eq_db, eq_db, (n_stems, EQ_POINTS))
    lowpass = rng.random(n_stems) < lowpass_probability
    cutoffs = rng.uniform(-2.0, 0.0, n_stems)  # log2 of the cutoff
    curves = np.empty((n_stems, bins), np.float32)
    for stem in range(n_stems):
        db = np.interp(log_f, points, gains_db[stem])
        if lowpass[stem]:
            db -= 24.0 * np.maximum(log_f - cutoffs[stem], 0.0)
        curves[stem] = 10 ** (db / 20)
    return curves


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
