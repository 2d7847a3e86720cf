"""Each loss against values worked out by hand or with an independent numpy STFT."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wavesep.losses import LOSSES, LossMix, difference, mae, mse, multires_stft, neg_si_sdr, si_sdr, spec_mae


def batch(*values) -> torch.Tensor:
    """(1, sources, 1, time) from one row of samples per source."""
    return torch.tensor(values, dtype=torch.float32)[None, :, None, :]


def numpy_magnitude(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| written independently of torch.stft: zero-padded centred frames, periodic Hann."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    padded = np.pad(x, n_fft // 2)
    starts = range(0, len(padded) - n_fft + 1, hop)
    return np.abs(np.stack([np.fft.rfft(padded[s : s + n_fft] * window) for s in starts], axis=1))


def test_mse_and_mae():
    assert float(mse(batch([1.0, 1.0]), batch([0.0, 0.0]))) == 1.0
    assert float(mae(batch([2.0, -1.0]), batch([-1.0, -1.0]))) == 1.5


def test_si_sdr_of_a_known_noise_ratio_and_its_scale_invariance():
    t = torch.arange(8000, dtype=torch.float64)
    reference = torch.sin(2 * math.pi * 440 * t / 8000)
    noise = torch.sin(2 * math.pi * 1000 * t / 8000)  # orthogonal over whole periods
    noise = noise * (reference.norm() / noise.norm()) * 0.1  # 20 dB below the reference
    estimate = reference + noise
    assert float(si_sdr(estimate, reference)) == pytest.approx(20.0, abs=1e-6)
    assert float(si_sdr(3 * estimate, reference)) == pytest.approx(20.0, abs=1e-6)
    loss = neg_si_sdr(estimate.float()[None, None, None], reference.float()[None, None, None])
    assert float(loss) == pytest.approx(-20.0, abs=1e-3)


def test_si_sdr_of_silence_asks_for_silence():
    silent = torch.zeros(100)
    assert float(si_sdr(silent, silent)) == 0.0
    assert float(si_sdr(torch.full((100,), 0.1), silent)) < -50


def test_a_silent_estimate_of_a_playing_source_scores_the_floor_not_zero():
    reference = torch.sin(torch.arange(1000.0))
    assert float(si_sdr(torch.zeros(1000), reference)) == -100.0
    noisy = reference + 0.1 * torch.cos(torch.arange(1000.0) * 3)
    assert float(si_sdr(1e-4 * noisy, reference)) == pytest.approx(float(si_sdr(noisy, reference)), abs=1e-3)


def test_difference_loss_by_hand():
    # a[i][j] = mean |est_i - ref_j|: est (1, 1), ref (1, 0) -> a = [[0, 1], [0, 1]]
    estimate, reference = batch([1.0, 1.0], [1.0, 1.0]), batch([1.0, 1.0], [0.0, 0.0])
    assert float(difference(estimate, reference, alpha=0.0)) == 0.5  # the diagonal: MAE
    assert float(difference(estimate, reference, alpha=0.2)) == pytest.approx(0.5 - 0.2 * 0.5)
    one = batch([1.0, 3.0])
    assert float(difference(one, batch([0.0, 0.0]))) == 2.0  # one source: plain MAE


def test_difference_loss_prefers_outputs_away_from_other_sources():
    reference = batch([1.0, 1.0], [-1.0, -1.0])
    leaky = batch([0.5, 0.5], [-0.5, -0.5])  # halfway to silence
    mixed = batch([0.0, 0.0], [0.0, 0.0])  # as far from its source, closer to the other
    assert difference(leaky, reference) < difference(mixed, reference)


def test_spec_mae_matches_a_numpy_spectrogram():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal(2048).astype(np.float32)
    estimate = np.zeros_like(reference)
    n_fft, hop, weight = 256, 64, 0.5
    expected = np.abs(reference).mean() + weight * (numpy_magnitude(reference, n_fft, hop) ** 2).mean()
    value = spec_mae(torch.from_numpy(estimate)[None, None, None], torch.from_numpy(reference)[None, None, None],
                     spec_weight=weight, n_fft=n_fft, hop=hop)
    assert float(value) == pytest.approx(expected, rel=1e-4)


def test_multires_stft_is_zero_for_a_perfect_estimate_and_known_for_silence():
    rng = np.random.default_rng(1)
    reference = rng.standard_normal(4096).astype(np.float32)
    ref = torch.from_numpy(reference)[None, None, None]
    assert float(multires_stft(ref, ref)) == pytest.approx(0.0, abs=1e-6)
    sizes = (256, 512)
    expected = np.mean([
        1.0 + np.abs(np.log(1e-5) - np.log(numpy_magnitude(reference, n, n // 4) + 1e-5)).mean() for n in sizes
    ])
    assert float(multires_stft(torch.zeros_like(ref), ref, fft_sizes=sizes)) == pytest.approx(expected, rel=1e-4)


def test_every_loss_is_differentiable_and_zero_or_minimal_at_the_reference():
    reference = torch.randn(2, 3, 2, 4096)
    for name, loss in LOSSES.items():
        estimate = (reference + 0.1 * torch.randn_like(reference)).requires_grad_()
        value = loss(estimate, reference)
        value.backward()
        assert torch.isfinite(estimate.grad).all(), name
        assert loss(reference, reference) < value, name


def test_loss_shapes_are_checked():
    with pytest.raises(ValueError, match="batch, sources, channels, time"):
        mae(torch.zeros(1, 2, 100), torch.zeros(1, 2, 100))


def test_loss_mix_weights_and_options():
    estimate, reference = batch([1.0, 1.0], [1.0, 1.0]), batch([1.0, 1.0], [0.0, 0.0])
    mix = LossMix({"mae": 2.0, "difference": {"weight": 1.0, "alpha": 0.2}})
    total, parts = mix(estimate, reference)
    assert parts == {"mae": 0.5, "difference": pytest.approx(0.4)}
    assert float(total) == pytest.approx(2 * 0.5 + 0.4)
    with pytest.raises(ValueError, match="unknown option\\(s\\) for loss 'difference': beta \\(it takes: alpha\\)"):
        LossMix({"difference": {"beta": 1}})
    with pytest.raises(ValueError, match="unknown loss 'l3'"):
        LossMix({"l3": 1.0})
    with pytest.raises(ValueError, match="weight must be a number"):
        LossMix({"mae": "heavy"})
    with pytest.raises(ValueError, match="loss 'difference': alpha must be a number, got 'x'"):
        LossMix({"difference": {"alpha": "x"}})
    with pytest.raises(ValueError, match="fft_sizes must be a list of positive integers"):
        LossMix({"multires_stft": {"fft_sizes": [512, "big"]}})


def test_the_si_sdr_loss_keeps_a_gradient_on_a_nearly_silent_estimate():
    reference = torch.sin(torch.arange(1000.0))[None, None, None]
    estimate = (1e-7 * torch.cos(torch.arange(1000.0) * 3))[None, None, None].requires_grad_()
    neg_si_sdr(estimate, reference).backward()
    assert estimate.grad.abs().max() > 0


def test_the_si_sdr_loss_charges_leakage_into_an_absent_stem_relative_to_the_mixture():
    playing = torch.sin(torch.arange(1000.0))
    reference = torch.stack([playing, torch.zeros(1000)])[None, :, None]  # (1, 2 sources, 1, 1000)
    leak = 10 ** (-30 / 20) * playing  # 30 dB below the mixture, in the absent stem
    estimate = torch.stack([playing + 0.1 * torch.cos(torch.arange(1000.0) * 3), leak])[None, :, None]
    clean = torch.stack([estimate[0, 0, 0], torch.zeros(1000)])[None, :, None]
    playing_score = float(si_sdr(estimate[0, 0, 0], playing))
    assert float(neg_si_sdr(clean, reference)) == pytest.approx(-playing_score / 2, abs=1e-4)
    assert float(neg_si_sdr(estimate, reference)) == pytest.approx((-playing_score + 10 * math.log10(2)) / 2, abs=1e-3)


def test_sdr_loss_counts_level_and_sign_where_si_sdr_does_not():
    from wavesep.losses import neg_sdr, neg_si_sdr

    reference = torch.randn(2, 3, 2, 1000, generator=torch.Generator().manual_seed(0))
    noisy = reference + 0.1 * torch.randn(reference.shape, generator=torch.Generator().manual_seed(1))
    assert neg_sdr(noisy, reference).item() == pytest.approx(-20.0, abs=0.3)
    assert neg_si_sdr(-noisy, reference).item() == pytest.approx(neg_si_sdr(noisy, reference).item(), abs=1e-4)
    assert neg_sdr(-noisy, reference).item() > 5  # inverted: worse than silence
    assert neg_sdr(0.5 * noisy, reference).item() > neg_sdr(noisy, reference).item() + 10


def test_si_sdr_loss_pools_channels_so_a_flipped_channel_costs():
    from wavesep.losses import neg_si_sdr

    reference = torch.randn(1, 2, 2, 1000, generator=torch.Generator().manual_seed(0))
    flipped = reference * torch.tensor([1.0, -1.0])[:, None]  # right channel inverted
    assert neg_si_sdr(reference * 0.9, reference).item() < -50
    assert neg_si_sdr(flipped, reference).item() > 20
