"""Separation metrics in numpy float64: SI-SDR and BSS Eval v4.

Every function takes numpy arrays or torch tensors (converted to float64 numpy first) and works
on signals shaped (channels, time); stacks of stems are (sources, channels, time).

- :func:`si_sdr`: scale-invariant SDR of one signal, all its channels pooled into one vector;
  :func:`si_sdr_per_source` does a stack of stems, :func:`si_sdr_improvement` subtracts the
  mixture's own score.
- :func:`bss_eval_v4`: SDR, ISR, SIR and SAR per source and 1 s frame, as ``museval.evaluate``
  computes them (v4: distortion filters fitted once on the whole track); the figure a paper
  reports per track is :func:`median_over_frames` of it.

Note the argument orders, each its field's convention: SI-SDR takes ``(estimate, reference)``
like the losses, BSS Eval takes ``(references, estimates)`` like museval.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.fft
import scipy.linalg
import torch

SI_SDR_LIMIT_DB = 100.0  # scores are clamped to +-this: a silent estimate would be -inf, a perfect one +inf
SILENT_POWER = 1e-12  # mean square (-120 dBFS) at or below which a reference counts as silent
BSS_EVAL_METRICS = ("SDR", "ISR", "SIR", "SAR")
_CORRELATION_FFT = 16384  # block FFT size for the correlations: 97 % of each FFT is new samples at 512 lags
_FRAMES_PER_CHUNK = 8  # frames projected together: ~300 MB at most for 6 stereo sources, 1 s at 44.1 kHz


def _as_array(signal) -> np.ndarray:
    """A float64 numpy array of ``signal`` (numpy array, torch tensor, or nested sequence)."""
    if isinstance(signal, torch.Tensor):
        signal = signal.detach().cpu().double().numpy()
    return np.asarray(signal, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# SI-SDR


def _si_sdr_rows(estimate: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """SI-SDR in dB of each row: (n, samples), (n, samples) -> (n,); see :func:`si_sdr`."""
    reference_energy = np.sum(reference**2, axis=-1)
    silent = reference_energy <= SILENT_POWER * reference.shape[-1]
    # The optimal scale of the reference (the projection of the estimate on it); 0 where silent.
    scale = np.sum(estimate * reference, axis=-1) / np.where(silent, 1.0, reference_energy)
    target_energy = scale**2 * reference_energy
    noise_energy = np.sum((estimate - scale[:, None] * reference) ** 2, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = 10 * np.log10(target_energy / noise_energy)
    # 0 / 0 happens only for a silent estimate (no target, no noise): the worst score, not NaN.
    scores = np.where(np.isnan(scores), -SI_SDR_LIMIT_DB, scores)
    scores = np.clip(scores, -SI_SDR_LIMIT_DB, SI_SDR_LIMIT_DB)
    return np.where(silent, np.nan, scores)


def si_sdr(estimate, reference) -> float:
    """Scale-invariant SDR in dB of one signal, all channels pooled (Le Roux et al. 2019).

    ``10 log10(|a s|^2 / |a s - e|^2)`` with ``a = <e, s> / |s|^2``, over every sample of every
    channel at once (the channels are concatenated, not scored apart and averaged); no mean
    removal.

    Args:
        estimate: the estimated signal.
        reference: the true signal, same shape.

    Shape:
        (channels, time) or (time,), both the same.

    Returns:
        The score, clamped to [-100, 100] dB: a silent (all-zero) estimate of a playing
        reference scores -100 (mathematically -inf), a perfect one +100 (+inf). NaN when the
        reference is silent (mean square <= ``SILENT_POWER``): it has no SI-SDR, and the caller
        should report such signals apart rather than average them in.

    References:
        J. Le Roux, S. Wisdom, H. Erdogan, J. R. Hershey, "SDR - half-baked or well done?",
        ICASSP 2019.
    """
    estimate, reference = _as_array(estimate), _as_array(reference)
    if estimate.shape != reference.shape:
        raise ValueError(f"estimate and reference shapes differ: {estimate.shape} and {reference.shape}")
    return float(_si_sdr_rows(estimate.reshape(1, -1), reference.reshape(1, -1))[0])


def si_sdr_per_source(estimates, references) -> np.ndarray:
    """:func:`si_sdr` of each stem in a stack, channels pooled within each stem.

    ``estimates`` broadcasts against ``references``: pass the mixture (channels, time) as the
    estimate to get the baseline every stem is improved from.

    Shape:
        estimates and references (..., sources, channels, time) -> (..., sources).
    """
    estimates, references = np.broadcast_arrays(_as_array(estimates), _as_array(references))
    if references.ndim < 2:
        raise ValueError(f"stems must be (..., channels, time), got shape {references.shape}")
    lead = references.shape[:-2]
    # One row per stem: (stems, channels * time)
    rows = _si_sdr_rows(estimates.reshape(-1, np.prod(references.shape[-2:])),
                        references.reshape(-1, np.prod(references.shape[-2:])))
    return rows.reshape(lead)


def si_sdr_improvement(estimate, reference, mixture) -> float:
    """SI-SDRi: ``si_sdr(estimate, reference) - si_sdr(mixture, reference)``, in dB.

    The mixture used as its own estimate scores 0; NaN for a silent reference.

    Shape:
        (channels, time) or (time,), all three the same.
    """
    return si_sdr(estimate, reference) - si_sdr(mixture, reference)


# ---------------------------------------------------------------------------------------------
# BSS Eval v4
#
# For source j with estimate e_j, BSS Eval projects e_j onto two subspaces spanned by the
# references delayed by 0 .. filter_len - 1 samples (every channel of each): that of reference j
# alone (P_own e_j) and that of all references (P_all e_j). With s_j the true image,
#   SDR = |s_j|^2 / |e_j - s_j|^2          ISR = |s_j|^2 / |P_own e_j - s_j|^2
#   SIR = |P_own e_j|^2 / |P_all e_j - P_own e_j|^2    SAR = |P_all e_j|^2 / |e_j - P_all e_j|^2
# The projections are least-squares FIR filters (normal equations G C = D, G the Gram matrix of
# the delayed references, D their correlations with the estimates). v4 fits them once on the
# whole track; each frame then filters its own stretch of the references (zero outside the
# frame) and sums the energies over the frame plus the filters' tail of filter_len - 1 samples.


def bss_eval_v4(references, estimates, sample_rate: int, window_s: float = 1.0, hop_s: float = 1.0,
                filter_len: int = 512) -> dict[str, np.ndarray]:
    """BSS Eval v4 images metrics per source and frame, as ``museval.evaluate`` computes them.

    That is museval's ``bss_eval`` with ``framewise_filters=False``,
    ``bsseval_sources_version=False`` and no permutation (estimate j is scored against reference
    j). Frames are ``window_s`` long every ``hop_s``; a last frame shorter than ``window_s`` is
    dropped, and a track shorter than one window is one frame. In a frame where any reference or
    any estimate is silent (all zeros), every source scores NaN, as in museval.

    SDR does not depend on the filters, but ISR, SIR and SAR do, and v4 applies filters fitted
    on the whole track to each frame's references cut out alone. Where the references have
    (nearly) no energy in some band, as synthesized stems with no noise floor may, the
    least-squares filters are huge in that band and the frame edges excite them: museval then
    gives ISR of -40 dB and SAR of 0 dB to a good estimate (seen on low-passed noise 140 dB down
    in its stop band; at 60 dB down the figures are sound). This function reproduces museval
    there too, and warns only when the whole-track system is numerically singular.

    Args:
        references: the true stems.
        estimates: the estimated stems, same shape (no padding or truncation is done).
        sample_rate: samples per second; frames are rounded to whole samples.
        window_s: frame length in seconds.
        hop_s: seconds between frame starts.
        filter_len: taps of the distortion filters (the lags the projections may use).

    Shape:
        references and estimates (sources, channels, time) or (sources, time) for mono ->
        each metric (sources, frames).

    Returns:
        ``{"SDR", "ISR", "SIR", "SAR"}`` in dB (``+inf`` where the error energy is zero).

    References:
        A. Liutkus, F.-R. Stöter, N. Ito, "The 2018 Signal Separation Evaluation Campaign",
        LVA/ICA 2018. E. Vincent, R. Gribonval, C. Févotte, "Performance measurement in blind
        audio source separation", IEEE TASLP 14(4), 2006.
    """
    references, estimates = _as_stems(references), _as_stems(estimates)
    if references.shape != estimates.shape:
        raise ValueError(f"references and estimates shapes differ: {references.shape} and {estimates.shape}")
    window, hop = round(window_s * sample_rate), round(hop_s * sample_rate)
    if window < 1 or hop < 1 or filter_len < 1:
        raise ValueError("window_s, hop_s and filter_len must give at least one sample")
    n_sources, _, n_time = references.shape
    starts, window = _frame_starts(n_time, window, hop)
    silent = _silent_frames(references, starts, window) | _silent_frames(estimates, starts, window)
    scores = np.full((len(BSS_EVAL_METRICS), len(starts), n_sources), np.nan)
    if not silent.all():  # a reference silent all along leaves no frame to score (and G singular)
        filters = _filter_spectra(*_distortion_filters(references, estimates, filter_len), window)
        playing = np.flatnonzero(~silent)
        for chunk in np.array_split(playing, -(-len(playing) // _FRAMES_PER_CHUNK)):
            scores[:, chunk] = _frame_scores(references, estimates, starts[chunk], window, *filters)
    # (metrics, frames, sources) -> {metric: (sources, frames)}
    return {name: scores[i].T.copy() for i, name in enumerate(BSS_EVAL_METRICS)}


def median_over_frames(scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The usual per-track BSS Eval figure: the median over frames, NaN frames left out.

    Shape:
        each metric (..., frames) -> (...); NaN where every frame is NaN.
    """
    medians = {}
    for name, values in scores.items():
        values = np.asarray(values, dtype=np.float64)
        counted = ~np.isnan(values).all(axis=-1)
        # nanmedian warns on all-NaN rows: fill those and put the NaN back ourselves
        filled = np.where(counted[..., None], values, 0.0)
        medians[name] = np.where(counted, np.nanmedian(filled, axis=-1), np.nan)
    return medians


def _as_stems(stems) -> np.ndarray:
    """(sources, channels, time), a mono (sources, time) given one channel."""
    stems = _as_array(stems)
    if stems.ndim == 2:
        stems = stems[:, None, :]
    if stems.ndim != 3:
        raise ValueError(f"stems must be (sources, channels, time) or (sources, time), got {stems.shape}")
    return stems


def _frame_starts(n_time: int, window: int, hop: int) -> tuple[np.ndarray, int]:
    """Frame start samples and the frame length: museval's framing (whole frames only; a track
    no longer than one window is a single frame of its own length)."""
    if window >= n_time:
        return np.zeros(1, dtype=int), n_time
    return np.arange((n_time - window) // hop + 1) * hop, window


def _silent_frames(stems: np.ndarray, starts: np.ndarray, window: int) -> np.ndarray:
    """Whether any stem is all zeros in each frame: (sources, channels, time) -> (frames,).

    (museval calls a sample silent when its channels sum to 0, which also takes exactly
    opposite channels for silence; here every channel must be 0.)
    """
    sounding = np.any(stems != 0, axis=1)  # (sources, time)
    # sounding samples before each time: (sources, time + 1)
    counts = np.concatenate([np.zeros((len(stems), 1), dtype=int), np.cumsum(sounding, axis=-1)], axis=-1)
    return (counts[:, starts + window] == counts[:, starts]).any(axis=0)


def _distortion_filters(references: np.ndarray, estimates: np.ndarray,
                        filter_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares FIR filters from the delayed references to each estimate, fitted on the
    whole track: onto all references, and onto each estimate's own reference only.

    With ``x_p`` the reference channels and ``R(m)[p, q] = sum_t x_p(t) x_q(t + m)``, the Gram
    matrix of the delayed references is block Toeplitz, block (a, b) = R(a - b), and
    ``R(-m) = R(m)^T``: lags 0 .. filter_len - 1 of the correlations define the whole system.

    Shape:
        references, estimates (sources, channels, time) ->
        all (filter_len, sources * channels in, sources * channels out),
        own (sources, filter_len, channels in, channels out).
    """
    n_sources, n_channels, n_time = references.shape
    n_refs = n_sources * n_channels
    signals_in = references.reshape(n_refs, n_time)
    signals_out = np.concatenate([signals_in, estimates.reshape(n_refs, n_time)])
    corr = _cross_correlations(signals_in, signals_out, filter_len)  # (filter_len, refs, 2 refs)
    blocks = corr[:, :, :n_refs].copy()  # R(0 .. filter_len - 1): (filter_len, refs, refs)
    # museval adds the same machine-epsilon ridge to G: keeps exactly singular cases alike
    blocks[0] += np.finfo(np.float64).eps * np.eye(n_refs)
    rhs = corr[:, :, n_refs:]  # D[a][p, q] = <x_p delayed by a, estimate channel q>
    every = _solve_block_toeplitz(blocks, rhs)
    own = [slice(j * n_channels, (j + 1) * n_channels) for j in range(n_sources)]
    own_blocks = np.stack([blocks[:, c, c] for c in own])  # (sources, filter_len, channels, channels)
    return every, _solve_block_toeplitz(own_blocks, np.stack([rhs[:, c, c] for c in own]))


def _cross_correlations(x: np.ndarray, y: np.ndarray, n_lags: int) -> np.ndarray:
    """``c[m, p, q] = sum_t x[p, t] y[q, t + m]`` for lags ``0 <= m < n_lags``, the signals zero
    outside [0, time).

    Only a few hundred lags of tracks millions of samples long are needed, so rather than one
    FFT the length of the track per pair, x is cut into blocks, each correlated with the stretch
    of y its lags reach; the blocks' cross-spectra add up, which turns the sum over blocks into
    one small matrix product per frequency.

    Shape:
        x (P, time), y (Q, time) -> (n_lags, P, Q).
    """
    n_fft = max(_CORRELATION_FFT, 1 << (4 * n_lags).bit_length())
    block = n_fft - n_lags + 1  # so that no lag of a block wraps around the FFT
    n_blocks = -(-x.shape[-1] // block)
    x_pad = np.zeros((x.shape[0], n_blocks * block))
    x_pad[:, : x.shape[-1]] = x
    x_blocks = x_pad.reshape(x.shape[0], n_blocks, block)  # (P, blocks, block)
    y_pad = np.zeros((y.shape[0], n_blocks * block + n_lags - 1))
    y_pad[:, : y.shape[-1]] = y
    # Block b of y covers samples [b block, (b + 1) block + n_lags - 1): (Q, blocks, n_fft)
    y_blocks = np.lib.stride_tricks.sliding_window_view(y_pad, n_fft, axis=-1)[:, ::block]
    cross = np.zeros((n_fft // 2 + 1, x.shape[0], y.shape[0]), dtype=np.complex128)  # (freqs, P, Q)
    per_chunk = 16  # blocks whose spectra are held at once: ~20 MB per 10 signals
    for first in range(0, n_blocks, per_chunk):
        x_spec = scipy.fft.rfft(x_blocks[:, first:first + per_chunk], n=n_fft, axis=-1)
        y_spec = scipy.fft.rfft(y_blocks[:, first:first + per_chunk], axis=-1)
        # sum over blocks of conj(X_p) Y_q: (freqs, P, blocks) @ (freqs, blocks, Q)
        cross += np.matmul(x_spec.conj().transpose(2, 0, 1), y_spec.transpose(2, 1, 0))
    return scipy.fft.irfft(cross, n=n_fft, axis=0)[:n_lags]


def _solve_block_toeplitz(blocks: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``x`` with ``sum_b R(a - b) x_b = d_a`` for ``a < n``, ``R(-m) = R(m)^T`` (a Gram matrix).

    The block Levinson recursion costs O(n^2 P^3) against a dense solve's O(n^3 P^3): ~30 times
    faster for 6 stereo sources. It is only weakly stable (on coloured, correlated references
    its backward error reaches 1e-11), so its answer is refined with the residual until the
    backward error is a dense solver's (~1e-16); where that fails (a numerically singular G),
    the dense LU solve museval uses is done instead.

    Shape:
        blocks R(0 .. n - 1) (..., n, P, P), rhs (..., n, P, Q) -> (..., n, P, Q).
    """
    def size(v):  # Euclidean norm of each system's whole vector: (..., n, P, Q) -> (...)
        return np.sqrt(np.sum(v**2, axis=(-3, -2, -1)))

    norm = _block_toeplitz_norm(blocks)
    solution = _block_levinson(blocks, rhs)
    for _ in range(4):  # two refinements are usually enough
        residual = rhs - _block_toeplitz_matmul(blocks, solution)
        backward_error = size(residual) / (norm * size(solution) + size(rhs))
        if (backward_error <= 1e-15).all():
            break
        solution = solution + _block_levinson(blocks, residual)
    for index in np.ndindex(backward_error.shape):  # each system of the batch
        if backward_error[index] > 1e-14:
            warnings.warn("BSS Eval: the references' Gram matrix is numerically singular (band-limited "
                          "references with no noise floor?); ISR, SIR and SAR may be meaningless, as "
                          "museval's are on the same input. SDR does not depend on it.", RuntimeWarning,
                          stacklevel=4)
            solution[index] = _dense_solve(blocks[index], rhs[index])
    return solution


def _block_levinson(blocks: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve the block Toeplitz system of :func:`_solve_block_toeplitz` by the block Levinson
    recursion: from the solution for the first n block rows, with the forward and backward
    vectors (``T_n f = [I, 0, ...]``, ``T_n b = [..., 0, I]``), extend to n + 1.

    Shape:
        blocks (..., n, P, P), rhs (..., n, P, Q) -> (..., n, P, Q); vectors are kept as
        stacked blocks (..., k P, P).
    """
    *batch, n, p, _ = blocks.shape
    # [R(n-1), ..., R(1), R(0)] side by side: sum_{k<m} R(m - k) v_k is one slice @ v: (..., P, n P)
    row = np.flip(blocks, -3).swapaxes(-3, -2).reshape(*batch, p, n * p)
    # [R(1)^T, ..., R(n-1)^T] side by side, for sum_{k<m} R(-(k + 1)) v_k: (..., P, (n - 1) P)
    column = blocks[..., 1:, :, :].swapaxes(-1, -2).swapaxes(-3, -2).reshape(*batch, p, (n - 1) * p)
    d = rhs.reshape(*batch, n * p, rhs.shape[-1])
    eye = np.eye(p)
    forward = np.linalg.inv(blocks[..., 0, :, :])
    backward = forward.copy()
    solution = forward @ d[..., :p, :]
    for m in range(1, n):
        lags = row[..., (n - 1 - m) * p:(n - 1) * p]  # R(m), ..., R(1)
        # T_{m+1} [f; 0] = [I; 0; err_f] and T_{m+1} [0; b] = [err_b; 0; I]
        err_f, err_b = lags @ forward, column[..., : m * p] @ backward
        alpha, delta = np.linalg.inv(eye - err_b @ err_f), np.linalg.inv(eye - err_f @ err_b)
        zeros = np.zeros((*batch, p, p))
        f_ext, b_ext = np.concatenate([forward, zeros], -2), np.concatenate([zeros, backward], -2)
        forward = f_ext @ alpha - b_ext @ (err_f @ alpha)
        backward = b_ext @ delta - f_ext @ (err_b @ delta)
        # T_{m+1} [x; 0] = [d_0 .. d_{m-1}; lags @ x]: the backward vector corrects the last row
        mismatch = d[..., m * p:(m + 1) * p, :] - lags @ solution
        solution = np.concatenate([solution, np.zeros_like(mismatch)], -2) + backward @ mismatch
    return solution.reshape(rhs.shape)


def _block_toeplitz_matmul(blocks: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``y_a = sum_b R(a - b) x_b``, a convolution over lags done by FFT.

    Shape:
        blocks R(0 .. n - 1) (..., n, P, P), x (..., n, P, Q) -> (..., n, P, Q).
    """
    n = blocks.shape[-3]
    n_fft = scipy.fft.next_fast_len(3 * n - 2, real=True)
    # R(-(n-1)) .. R(n-1): (..., 2n - 1, P, P)
    sequence = np.concatenate([np.flip(blocks[..., 1:, :, :], -3).swapaxes(-1, -2), blocks], -3)
    product = scipy.fft.rfft(sequence, n=n_fft, axis=-3) @ scipy.fft.rfft(x, n=n_fft, axis=-3)
    return scipy.fft.irfft(product, n=n_fft, axis=-3)[..., n - 1:2 * n - 1, :, :]


def _block_toeplitz_norm(blocks: np.ndarray) -> np.ndarray:
    """About the spectral norm of the block Toeplitz matrix: the largest eigenvalue of its
    symbol ``sum_m R(m) exp(-i w m)`` over a grid of w. (..., n, P, P) -> (...)."""
    n = blocks.shape[-3]
    sequence = np.concatenate([blocks, np.flip(blocks[..., 1:, :, :], -3).swapaxes(-1, -2)], -3)
    symbol = scipy.fft.fft(sequence, n=4 * n, axis=-3)  # Hermitian per frequency
    return np.abs(np.linalg.eigvalsh(symbol)).max(axis=(-2, -1))


def _dense_solve(blocks: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """The same system by LU on the dense matrix, as museval. (n, P, P), (n, P, Q) -> (n, P, Q)."""
    n, p, _ = blocks.shape
    lag = np.arange(n)[:, None] - np.arange(n)[None, :]  # a - b
    # block (a, b) = R(a - b), or R(b - a)^T below the diagonal: (n P, n P)
    dense = np.where((lag >= 0)[:, :, None, None], blocks[np.abs(lag)],
                     blocks[np.abs(lag)].swapaxes(-1, -2))
    dense = dense.transpose(0, 2, 1, 3).reshape(n * p, n * p)
    try:
        with warnings.catch_warnings():  # said above, in words that name the cause
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
            solution = scipy.linalg.solve(dense, rhs.reshape(n * p, -1), check_finite=False)
    except np.linalg.LinAlgError:
        solution = scipy.linalg.lstsq(dense, rhs.reshape(n * p, -1), check_finite=False)[0]
    return solution.reshape(rhs.shape)


def _filter_spectra(every: np.ndarray, own: np.ndarray, window: int) -> tuple[int, np.ndarray, np.ndarray]:
    """The filters' spectra for filtering frames of ``window`` samples, and the FFT size.

    Shape:
        filters as :func:`_distortion_filters` returns them ->
        all (freqs, sources * channels out, sources * channels in),
        own (sources, freqs, channels in, channels out).
    """
    n_fft = scipy.fft.next_fast_len(window + every.shape[0] - 1, real=True)
    every_f = scipy.fft.rfft(every, n=n_fft, axis=0).swapaxes(1, 2)
    return n_fft, every_f, scipy.fft.rfft(own, n=n_fft, axis=1)


def _frame_scores(references: np.ndarray, estimates: np.ndarray, starts: np.ndarray, window: int,
                  n_fft: int, every_f: np.ndarray, own_f: np.ndarray) -> np.ndarray:
    """SDR, ISR, SIR and SAR of some frames, each frame's references filtered alone.

    Shape:
        references, estimates (sources, channels, time); starts (frames,); filter spectra as
        :func:`_filter_spectra` returns them -> (4, frames, sources).
    """
    # (frames, sources, channels, window)
    refs = np.stack([references[..., s:s + window] for s in starts])
    ests = np.stack([estimates[..., s:s + window] for s in starts])
    spec = scipy.fft.rfft(refs, n=n_fft, axis=-1)  # (frames, sources, channels, freqs)
    # Filtering is a product per frequency, summed over the channels in.
    flat = spec.reshape(len(starts), -1, spec.shape[-1]).transpose(2, 1, 0)  # (freqs, refs, frames)
    all_spec = np.matmul(every_f, flat).transpose(2, 1, 0)  # (frames, refs out, freqs)
    own_spec = np.einsum("sfco,nscf->nsof", own_f, spec)  # (frames, sources, channels out, freqs)
    # A filtered frame (frame + filter tail) fits in n_fft samples: the rest is zero.
    proj_all = scipy.fft.irfft(all_spec, n=n_fft, axis=-1).reshape(own_spec.shape[:-1] + (n_fft,))
    proj_own = scipy.fft.irfft(own_spec, n=n_fft, axis=-1)
    return _energy_ratios(refs, ests, proj_own, proj_all)


def _energy_ratios(refs: np.ndarray, ests: np.ndarray, proj_own: np.ndarray, proj_all: np.ndarray) -> np.ndarray:
    """The four ratios in dB from a frame's signals and projections (see the comment above
    :func:`bss_eval_v4`); refs and ests are zero in the projections' tail.

    Shape:
        refs, ests (frames, sources, channels, window); projections (..., window + tail) ->
        (4, frames, sources).
    """
    def energy(signal):  # (frames, sources, channels, samples) -> (frames, sources)
        return np.sum(signal**2, axis=(-2, -1))

    def energy_minus(projection, signal):  # |projection - signal zero-padded|^2
        window = signal.shape[-1]
        return energy(projection[..., :window] - signal) + energy(projection[..., window:])

    image = energy(refs)
    return np.stack([
        _db(image, energy(ests - refs)),
        _db(image, energy_minus(proj_own, refs)),
        _db(energy(proj_own), energy(proj_all - proj_own)),
        _db(energy(proj_all), energy_minus(proj_all, ests)),
    ])


def _db(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``10 log10(numerator / denominator)``, +inf where the denominator is 0 (as museval)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator == 0, np.inf, 10 * np.log10(numerator / denominator))
