"""BS.1770 loudness against the standard's own reference points, and against pyloudnorm."""

import math

import numpy as np
import pytest

from wavesep.synth.loudness import _k_weighting_sos_at, active_seconds, integrated_loudness, peak_db


def sine(hz, amplitude_db, seconds, sample_rate, channels=2):
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return np.tile(10 ** (amplitude_db / 20) * np.sin(2 * np.pi * hz * t), (channels, 1))


def test_k_weighting_matches_the_standard_at_48k():
    # ITU-R BS.1770-4, tables 1 and 2.
    shelf, high_pass = _k_weighting_sos_at(48000)
    np.testing.assert_allclose(shelf, [1.53512485958697, -2.69169618940638, 1.19839281085285,
                                       1.0, -1.69065929318241, 0.73248077421585], atol=1e-9)
    np.testing.assert_allclose(high_pass, [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621], atol=1e-9)


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000])
def test_997_hz_sine_at_minus_23_dbfs_reads_minus_23_lufs(sample_rate):
    # The calibration point of the standard (EBU Tech 3341, test 1 uses the same): a stereo
    # 1 kHz sine at -23 dBFS in each channel is -23 LUFS.
    assert integrated_loudness(sine(997, -23, 10, sample_rate), sample_rate) == pytest.approx(-23, abs=0.05)


def test_gating():
    rate = 48000
    loud = sine(997, -20, 5, rate)
    quiet = sine(997, -40, 5, rate)  # 20 LU lower: under the relative gate
    # Blocks of 400 ms every 100 ms: 47 all loud, 3 straddling (3/4, 1/2, 1/4 loud), the quiet
    # ones gated out. Mean power of the 50 kept blocks, relative to a loud block:
    kept = (47 + (0.75 + 0.25 * 0.01) + (0.5 + 0.5 * 0.01) + (0.25 + 0.75 * 0.01)) / 50
    assert integrated_loudness(np.concatenate([loud, quiet], axis=1), rate) == pytest.approx(
        integrated_loudness(loud, rate) + 10 * math.log10(kept), abs=0.005)
    assert integrated_loudness(np.zeros((2, rate)), rate) == -math.inf
    assert integrated_loudness(sine(997, -80, 2, rate), rate) == -math.inf  # under the absolute gate
    assert math.isfinite(integrated_loudness(sine(997, -20, 0.1, rate), rate))  # shorter than a block


def test_agrees_with_pyloudnorm_on_music_like_signals():
    pyloudnorm = pytest.importorskip("pyloudnorm")
    rate = 44100
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((2, 6 * rate)) * np.repeat(rng.uniform(0.01, 0.3, 60), rate // 10)
    ours = integrated_loudness(noise, rate)
    theirs = pyloudnorm.Meter(rate).integrated_loudness(noise.T)
    # pyloudnorm's default filter is an approximation of the standard's; they agree to ~0.2 LU.
    assert ours == pytest.approx(theirs, abs=0.2)


def test_peak_and_activity():
    rate = 1000
    audio = np.zeros((2, 3 * rate))
    audio[0, 1000:2000] = 0.5
    assert peak_db(audio) == pytest.approx(20 * math.log10(0.5))
    assert peak_db(np.zeros(4)) == -math.inf
    assert active_seconds(audio, rate) == pytest.approx(1.0)
