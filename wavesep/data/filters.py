"""The original study's chunk filters: drop chunks with too little to learn from.

The study dropped a training chunk when its target was silent over 40 % of the time, or when the
mixture and the target were within 1e-4 over 65 % of the time (nothing to separate). With several
stems, a chunk is dropped when fewer than ``min_active_stems`` stems are non-silent, or when the
mixture mostly equals any one stem.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ChunkFilter:
    """The original study's chunk filters, with its thresholds as defaults.

    A stem is *silent* when more than ``max_silent_fraction`` of its samples are at or below
    ``silence_threshold`` in magnitude. The mixture *mostly equals* a stem when more than
    ``max_identical_fraction`` of samples differ by at most ``identical_tolerance``.
    """

    silence_threshold: float = 1e-4  # |x| at or below this is silence (-80 dBFS)
    max_silent_fraction: float = 0.4  # the study dropped targets silent over 40 % of the chunk
    min_active_stems: int = 1  # fewer non-silent stems than this: nothing to learn
    identical_tolerance: float = 1e-4  # |mixture - stem| at or below this counts as equal
    max_identical_fraction: float = 0.65  # the study's "mostly identical": over 65 % of samples
    drop_identical: bool = True  # drop chunks whose mixture mostly equals one stem (nothing to separate)

    def silent(self, stems) -> np.ndarray:
        """Per stem, whether it is silent. Shape: stems (n_stems, channels, time) -> (n_stems,)."""
        stems = np.asarray(stems)
        quiet = np.abs(stems) <= self.silence_threshold
        return quiet.reshape(len(stems), -1).mean(1) > self.max_silent_fraction

    def identical(self, mixture, stems) -> np.ndarray:
        """Per stem, whether the mixture mostly equals it. Shapes: (channels, time), (n_stems, channels, time)."""
        stems, mixture = np.asarray(stems), np.asarray(mixture)
        close = np.abs(stems - mixture[None]) <= self.identical_tolerance
        return close.reshape(len(stems), -1).mean(1) > self.max_identical_fraction

    def reason(self, mixture, stems) -> str | None:
        """Why a chunk is dropped ("silent" or "identical"), or None when it is kept."""
        if int((~self.silent(stems)).sum()) < self.min_active_stems:
            return "silent"
        if self.drop_identical and self.identical(mixture, stems).any():
            return "identical"
        return None

    def keep(self, mixture, stems) -> bool:
        """Whether a chunk passes every filter."""
        return self.reason(mixture, stems) is None
