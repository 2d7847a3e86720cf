"""Loudness (ITU-R BS.1770-4 integrated, in LUFS), peaks and activity of rendered audio.

References:
    ITU-R BS.1770-4, "Algorithms to measure audio programme loudness and true-peak audio level".
    The K-weighting filters are designed for any sample rate by bilinear transform of analogue
    prototypes fitted to the standard's 48 kHz coefficients (as libebur128 does).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.signal import sosfilt

STEP_S = 0.1  # gating blocks start every 100 ms...
STEPS_PER_BLOCK = 4  # ...and last 400 ms (75 % overlap)
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0


def _k_weighting_sos_at(sample_rate: float) -> np.ndarray:
    """The two K-weighting biquads, as second-order sections, by bilinear transform.

    The prototype parameters reproduce the standard's 48 kHz coefficients to ~1e-10.
    """
    # Stage 1: high shelf, about +4 dB above 1.68 kHz (the head's acoustic effect).
    k = math.tan(math.pi * 1681.974450955533 / sample_rate)
    q = 0.7071752369554196
    v_high = 10 ** (3.999843853973347 / 20)
    v_band = v_high**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = [(v_high + v_band * k / q + k * k) / a0, 2 * (k * k - v_high) / a0,
             (v_high - v_band * k / q + k * k) / a0, 1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    # Stage 2: high-pass at about 38 Hz (RLB weighting), unity gain numerator as in the standard.
    k = math.tan(math.pi * 38.13547087602444 / sample_rate)
    q = 0.5003270373238773
    a0 = 1 + k / q + k * k
    high_pass = [1.0, -2.0, 1.0, 1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    return np.array([shelf, high_pass])  # (sections, 6)


@functools.cache
def _k_weighting_sos(sample_rate: float) -> np.ndarray:
    return _k_weighting_sos_at(sample_rate)


DENORMAL_GUARD = 1e-20
"""Amplitude of the Nyquist tone (-400 dBFS) that keeps IIR filter states out of denormal numbers,
which make the K-weighting ~7x slower on the long silences of stems. It changes no measurement,
and vanishes when audio is rounded to 24 bits even after +100 dB of gain."""


def guard_denormals(audio: np.ndarray) -> np.ndarray:
    """Add the :data:`DENORMAL_GUARD` tone to ``audio`` in place; returns it."""
    audio[..., 0::2] += DENORMAL_GUARD
    audio[..., 1::2] -= DENORMAL_GUARD
    return audio


def k_weight(audio: np.ndarray, sample_rate: float, guarded: bool = False) -> np.ndarray:
    """Apply BS.1770's K-weighting along the last axis, in float32.

    float32 halves the memory traffic of long stems and changes loudness by under 0.001 LU.

    Args:
        guarded: ``audio`` already carries :func:`guard_denormals`'s tone (saves a copy).
    """
    if not guarded or audio.dtype != np.float32:
        audio = guard_denormals(np.array(audio, dtype=np.float32))
    return sosfilt(_k_weighting_sos(float(sample_rate)).astype(np.float32), audio, axis=-1)


def integrated_loudness(audio: np.ndarray, sample_rate: float, guarded: bool = False) -> float:
    """Gated integrated loudness in LUFS; ``-inf`` when nothing passes the -70 LUFS gate.

    Args:
        guarded: as for :func:`k_weight`.
    Shape:
        audio: (channels, time) or (time,). Channels are weighted 1 (left, right, centre).
    Audio shorter than one 400 ms block is measured as a single block.
    """
    audio = np.atleast_2d(audio)
    weighted = k_weight(audio, sample_rate, guarded)  # (channels, time)
    n = weighted.shape[-1]
    if n == 0:
        return -math.inf
    step = int(round(STEP_S * sample_rate))
    if n < STEPS_PER_BLOCK * step:
        power = np.array([float(np.einsum("ct,ct->", weighted, weighted)) / n])
    else:
        n_steps = n // step
        steps = weighted[:, : n_steps * step].reshape(weighted.shape[0], n_steps, step)
        energy = np.einsum("cst,cst->s", steps, steps).astype(np.float64)  # per 100 ms step, all channels
        power = np.convolve(energy, np.ones(STEPS_PER_BLOCK), mode="valid") / (STEPS_PER_BLOCK * step)
    with np.errstate(divide="ignore"):
        loudness = -0.691 + 10 * np.log10(power)
    gated = power[loudness > ABSOLUTE_GATE_LUFS]
    if gated.size == 0:
        return -math.inf
    relative_gate = -0.691 + 10 * math.log10(gated.mean()) + RELATIVE_GATE_LU
    gated = power[(loudness > ABSOLUTE_GATE_LUFS) & (loudness > relative_gate)]
    return -0.691 + 10 * math.log10(gated.mean())


def peak_db(audio: np.ndarray) -> float:
    """Sample peak in dBFS; ``-inf`` for silence."""
    peak = float(np.max(np.abs(audio))) if np.size(audio) else 0.0
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def active_seconds(audio: np.ndarray, sample_rate: float, threshold_db: float = -60.0,
                   window_s: float = 0.1) -> float:
    """Seconds of ``window_s`` windows whose RMS (over channels) is above ``threshold_db`` dBFS.

    Shape:
        audio: (channels, time) or (time,).
    """
    audio = np.atleast_2d(audio)
    window = max(1, int(round(window_s * sample_rate)))
    starts = np.arange(0, audio.shape[-1], window)
    if starts.size == 0:
        return 0.0
    lengths = np.diff(np.append(starts, audio.shape[-1]))  # the last window may be shorter
    power = np.add.reduceat(np.square(audio).sum(axis=0, dtype=np.float64), starts) / (lengths * audio.shape[0])
    return float(lengths[power > 10 ** (threshold_db / 10)].sum() / sample_rate)
