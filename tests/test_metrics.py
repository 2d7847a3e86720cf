"""SI-SDR against values known in closed form; BSS Eval v4 against museval itself."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal
import torch

from wavesep.metrics import (
    BSS_EVAL_METRICS,
    SI_SDR_LIMIT_DB,
    _block_levinson,
    _dense_solve,
    bss_eval_v4,
    median_over_frames,
    si_sdr,
    si_sdr_improvement,
    si_sdr_per_source,
)

SAMPLE_RATE = 8000  # museval's cost grows with the track: a low rate keeps its reference runs short


def _museval():
    """museval, or a failure that says how to get it: this comparison must never be skipped."""
    try:
        import museval
    except (ImportError, RuntimeError) as error:  # RuntimeError: stempeg finds no ffmpeg
        pytest.fail(f"museval is needed to check BSS Eval v4 ({error!r}); scripts/setup.sh installs it "
                    "(pip install museval, and ffmpeg on the PATH for its imports)")
    return museval


def _orthogonal_noise(reference: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise of the reference's shape with <noise, reference> = 0 over all samples."""
    noise = rng.standard_normal(reference.shape)
    return noise - np.sum(noise * reference) / np.sum(reference**2) * reference


# ---------------------------------------------------------------------------------------------
# SI-SDR


@pytest.mark.parametrize("target_db", [-20.0, 0.0, 13.5, 60.0])
def test_si_sdr_of_scaled_reference_plus_orthogonal_noise_is_analytic(target_db):
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((2, 4000))
    noise = _orthogonal_noise(reference, rng)
    scale = 0.7  # the estimate's own gain must not matter
    # |scale ref|^2 / |noise|^2 = 10^(target_db / 10)
    noise *= np.sqrt(np.sum((scale * reference) ** 2) / np.sum(noise**2) / 10 ** (target_db / 10))
    assert si_sdr(scale * reference + noise, reference) == pytest.approx(target_db, abs=1e-9)


def test_si_sdr_pools_channels():
    rng = np.random.default_rng(1)
    reference = rng.standard_normal((2, 3000))
    reference[1] *= 0.1  # a quiet channel weighs less when pooled than in a mean over channels
    estimate = reference + 0.3 * rng.standard_normal(reference.shape)
    pooled = si_sdr(estimate, reference)
    assert pooled == pytest.approx(si_sdr(estimate.ravel(), reference.ravel()))
    per_channel = np.mean([si_sdr(estimate[c], reference[c]) for c in range(2)])
    assert abs(pooled - per_channel) > 1.0


@pytest.mark.parametrize("gain", [1e-3, 7.0, -2.0])
def test_si_sdr_is_scale_invariant(gain):
    rng = np.random.default_rng(2)
    reference = rng.standard_normal((2, 3000))
    estimate = reference + 0.5 * rng.standard_normal(reference.shape)
    score = si_sdr(estimate, reference)
    assert si_sdr(gain * estimate, reference) == pytest.approx(score, abs=1e-9)
    assert si_sdr(estimate, gain * reference) == pytest.approx(score, abs=1e-9)


def test_si_sdr_silent_reference_is_nan_and_silent_estimate_is_the_floor():
    rng = np.random.default_rng(3)
    playing = rng.standard_normal((2, 3000))
    assert np.isnan(si_sdr(playing, np.zeros_like(playing)))
    assert np.isnan(si_sdr(playing, 1e-7 * playing))  # -140 dBFS: below the silence threshold
    assert si_sdr(np.zeros_like(playing), playing) == -SI_SDR_LIMIT_DB
    assert si_sdr(_orthogonal_noise(playing, rng), playing) == -SI_SDR_LIMIT_DB
    assert si_sdr(playing, playing) == SI_SDR_LIMIT_DB


def test_si_sdr_improvement_of_the_mixture_is_zero():
    rng = np.random.default_rng(4)
    stems = rng.standard_normal((3, 2, 3000))
    mixture = stems.sum(axis=0)
    assert si_sdr_improvement(mixture, stems[0], mixture) == 0.0
    better = stems[0] + 0.1 * stems[1]
    expected = si_sdr(better, stems[0]) - si_sdr(mixture, stems[0])
    assert si_sdr_improvement(better, stems[0], mixture) == pytest.approx(expected)
    assert expected > 0


def test_si_sdr_per_source_matches_si_sdr_and_broadcasts_the_mixture():
    rng = np.random.default_rng(5)
    stems = rng.standard_normal((3, 2, 2000))
    stems[2] = 0.0
    estimates = stems + 0.2 * rng.standard_normal(stems.shape)
    scores = si_sdr_per_source(estimates, stems)
    assert scores.shape == (3,)
    assert scores[:2] == pytest.approx([si_sdr(estimates[s], stems[s]) for s in range(2)])
    assert np.isnan(scores[2])
    baseline = si_sdr_per_source(stems.sum(axis=0), stems)  # (channels, time) against (sources, ...)
    assert baseline[:2] == pytest.approx([si_sdr(stems.sum(axis=0), stems[s]) for s in range(2)])
    batched = si_sdr_per_source(np.stack([estimates, stems]), np.stack([stems, stems]))
    assert batched.shape == (2, 3)


def test_si_sdr_takes_torch_tensors():
    rng = np.random.default_rng(6)
    reference = rng.standard_normal((2, 2000))
    estimate = reference + 0.3 * rng.standard_normal(reference.shape)
    expected = si_sdr(estimate, reference)
    got = si_sdr(torch.from_numpy(estimate).float(), torch.from_numpy(reference).float())
    assert isinstance(got, float)
    assert got == pytest.approx(expected, abs=1e-4)  # float32 rounding of the inputs


# ---------------------------------------------------------------------------------------------
# BSS Eval v4


def _structured_tracks(n_sources: int, seconds: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """References and estimates like a separator's: (sources, 2, time) each.

    References: coloured noise (each source its own spectrum), with slow loudness changes and
    different left/right mixes, plus a noise floor 60 dB down, as recordings have (band-limited
    references with no floor make v4's filters ill-determined: see :func:`bss_eval_v4`).
    Estimates: the reference, partly through a short FIR filter, plus leakage of the other
    sources, a little cross-channel bleed, and noise.
    """
    n_time = int(seconds * SAMPLE_RATE)
    t = np.arange(n_time) / SAMPLE_RATE
    references = np.empty((n_sources, 2, n_time))
    for s in range(n_sources):
        b, a = scipy.signal.butter(4, [0.05 + 0.15 * s, 0.3 + 0.15 * s], btype="band")
        tone = scipy.signal.lfilter(b, a, rng.standard_normal(n_time))
        envelope = 1.0 + 0.8 * np.sin(2 * np.pi * (0.3 + 0.2 * s) * t)
        pan = 0.3 + 0.4 * s / max(n_sources - 1, 1)
        references[s] = np.stack([pan, 1 - pan])[:, None] * envelope * tone
    references += 1e-3 * references.std() * rng.standard_normal(references.shape)
    filtered = scipy.signal.lfilter([0.5, 0.3, 0.0, -0.2, 0.1], [1.0], references, axis=-1)
    leakage = 0.25 * (references.sum(axis=0) - references)
    bleed = 0.1 * references[:, ::-1]
    noise = 0.05 * references.std() * rng.standard_normal(references.shape)
    return references, 0.8 * references + 0.4 * filtered + leakage + bleed + noise


@pytest.fixture(scope="module")
def tracks():
    rng = np.random.default_rng(7)
    references, estimates = _structured_tracks(3, 6.6, rng)  # 6 whole 1 s frames and a dropped 0.6 s
    references[1, :, 2 * SAMPLE_RATE:3 * SAMPLE_RATE] = 0.0  # source 1 silent in frame 2
    estimates[2, :, 4 * SAMPLE_RATE:5 * SAMPLE_RATE] = 0.0  # source 2 estimated silent in frame 4
    references[0, :, int(3.5 * SAMPLE_RATE):int(4.2 * SAMPLE_RATE)] = 0.0  # silent across frames 3, 4: not NaN
    return references, estimates


@pytest.mark.parametrize("window_s, hop_s", [(1.0, 1.0), (1.5, 0.75)])
def test_bss_eval_v4_matches_museval(tracks, window_s, hop_s):
    museval = _museval()
    references, estimates = tracks
    ours = bss_eval_v4(references, estimates, SAMPLE_RATE, window_s=window_s, hop_s=hop_s)
    # museval wants (sources, time, channels) and frames in samples
    theirs = museval.evaluate(references.transpose(0, 2, 1), estimates.transpose(0, 2, 1),
                              win=int(window_s * SAMPLE_RATE), hop=int(hop_s * SAMPLE_RATE))
    for name, expected in zip(BSS_EVAL_METRICS, theirs):
        assert ours[name].shape == expected.shape, name
        assert np.array_equal(np.isnan(ours[name]), np.isnan(expected)), name
        np.testing.assert_allclose(ours[name], expected, rtol=0, atol=0.01, err_msg=name)
    if window_s == 1.0:
        assert np.isnan(ours["SDR"][:, 2]).all() and np.isnan(ours["SDR"][:, 4]).all()
        assert np.isfinite(ours["SDR"][:, [0, 1, 3, 5]]).all()


def test_bss_eval_v4_single_frame_mono_and_torch_inputs():
    rng = np.random.default_rng(8)
    references, estimates = _structured_tracks(2, 0.5, rng)
    scores = bss_eval_v4(torch.from_numpy(references[:, 0]), torch.from_numpy(estimates[:, 0]), SAMPLE_RATE)
    assert scores["SDR"].shape == (2, 1)  # shorter than one window: one frame of the whole track
    assert np.isfinite(np.stack(list(scores.values()))).all()
    assert (scores["SDR"] > 0).all()


def test_bss_eval_v4_silent_reference_throughout_gives_nan_not_an_error():
    rng = np.random.default_rng(9)
    references, estimates = _structured_tracks(2, 2.0, rng)
    references[1] = 0.0
    scores = bss_eval_v4(references, estimates, SAMPLE_RATE)
    assert all(np.isnan(values).all() for values in scores.values())


def test_bss_eval_v4_sdr_is_the_energy_ratio_and_a_singular_gram_warns():
    rng = np.random.default_rng(11)
    b, a = scipy.signal.butter(8, 0.5)  # stop band far below float64 precision: G is singular
    references = scipy.signal.lfilter(b, a, rng.standard_normal((2, 1, 2 * SAMPLE_RATE)), axis=-1)
    estimates = references + 0.1 * rng.standard_normal(references.shape)
    with pytest.warns(RuntimeWarning, match="numerically singular"):
        scores = bss_eval_v4(references, estimates, SAMPLE_RATE)
    frames = references.reshape(2, 2, SAMPLE_RATE)  # (sources, frames, window), mono
    errors = (estimates - references).reshape(2, 2, SAMPLE_RATE)
    expected = 10 * np.log10(np.sum(frames**2, axis=-1) / np.sum(errors**2, axis=-1))
    np.testing.assert_allclose(scores["SDR"], expected, rtol=1e-12)


def test_block_levinson_solves_the_dense_system():
    rng = np.random.default_rng(10)
    n_lags, n_in, n_out = 24, 3, 2
    signals = scipy.signal.lfilter([1.0], [1.0, -0.8], rng.standard_normal((n_in, 500)), axis=-1)
    # R(m)[p, q] = sum_t x_p(t) x_q(t + m): (lags, P, P)
    blocks = np.stack([signals[:, : 500 - m] @ signals[:, m:].T for m in range(n_lags)])
    rhs = rng.standard_normal((n_lags, n_in, n_out))
    np.testing.assert_allclose(_block_levinson(blocks, rhs), _dense_solve(blocks, rhs), rtol=1e-8, atol=1e-10)


def test_median_over_frames_leaves_nan_frames_out():
    scores = {"SDR": np.array([[1.0, np.nan, 3.0, 10.0], [np.nan] * 4])}
    medians = median_over_frames(scores)
    assert medians["SDR"][0] == 3.0
    assert np.isnan(medians["SDR"][1])
