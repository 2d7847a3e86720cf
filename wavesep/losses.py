"""Training losses, selectable and combinable with weights from the config.

Every loss takes ``estimate`` and ``reference`` shaped (batch, sources, channels, time) and returns
a scalar to minimise. The registry :data:`LOSSES` maps config names to them; :class:`LossMix`
sums weighted terms and reports each one.

- ``mse``, ``mae``: mean squared / absolute error over every sample;
- ``spec_mae``: the study's MAE plus ``spec_weight`` x the L2 distance between linear magnitude
  spectrograms (the STFT is differentiable: the model stays in the waveform domain);
- ``difference``: Lluís et al.'s difference loss: with ``a[i][j] = mean |est_i - ref_j|``, the
  diagonal (each output against its own source) minus ``alpha`` x the mean off-diagonal term
  (each output against the other sources, which pushes it away from them);
- ``si_sdr``: negative scale-invariant SDR in dB, per source (channels pooled), averaged;
- ``sdr``: the same without scale invariance, so the level and sign of the estimate count;
- ``multires_stft``: spectral convergence + log-magnitude L1 at several STFT resolutions.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

import torch

from wavesep.typed import is_number

EPS = 1e-8


def _check(estimate: torch.Tensor, reference: torch.Tensor):
    if estimate.shape != reference.shape or estimate.dim() != 4:
        raise ValueError(f"estimate and reference must both be (batch, sources, channels, time), got "
                         f"{tuple(estimate.shape)} and {tuple(reference.shape)}")


def mse(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    _check(estimate, reference)
    return (estimate - reference).square().mean()


def mae(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    _check(estimate, reference)
    return (estimate - reference).abs().mean()


def magnitude(audio: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """|STFT| with a periodic Hann window, centred frames: (..., time) -> (..., n_fft // 2 + 1, frames)."""
    flat = audio.reshape(-1, audio.shape[-1]).float()
    window = torch.hann_window(n_fft, device=audio.device)
    spec = torch.stft(flat, n_fft, hop, window=window, center=True, pad_mode="constant", return_complex=True)
    return spec.abs().reshape(*audio.shape[:-1], *spec.shape[-2:])


def spec_mae(estimate: torch.Tensor, reference: torch.Tensor, spec_weight: float = 1.0, n_fft: int = 1024,
             hop: int = 256) -> torch.Tensor:
    """MAE + ``spec_weight`` x mean squared difference of linear magnitude spectrograms."""
    spectral = (magnitude(estimate, n_fft, hop) - magnitude(reference, n_fft, hop)).square().mean()
    return mae(estimate, reference) + spec_weight * spectral


def difference(estimate: torch.Tensor, reference: torch.Tensor, alpha: float = 0.05) -> torch.Tensor:
    """Lluís et al.'s difference loss (see the module docstring); with one source, plain MAE.

    It is bounded below for ``alpha < 1``: an off-diagonal term never exceeds the diagonal one by
    more than the distance between two references.
    """
    _check(estimate, reference)
    n = estimate.shape[1]
    # a[b, i, j] = mean over channels and time of |estimate_i - reference_j|: (batch, sources, sources)
    a = (estimate.unsqueeze(2) - reference.unsqueeze(1)).abs().mean(dim=(-2, -1))
    diagonal = a.diagonal(dim1=1, dim2=2).mean()
    if n == 1:
        return diagonal
    off = (a.sum(dim=(1, 2)) - a.diagonal(dim1=1, dim2=2).sum(dim=1)) / (n * (n - 1))
    return diagonal - alpha * off.mean()


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = EPS, floor: bool = True) -> torch.Tensor:
    """Scale-invariant SDR in dB per (..., time) signal, without mean removal: ``(...)``.

    A playing reference scores ``10 log10(|target|^2 / |noise|^2)``. As a metric (``floor``), that is
    clamped to [-100, 100] dB, and an estimate 100 dB or more below its reference counts as silent
    and scores -100 dB, not 0. As a loss (``floor=False``) nothing is clamped, so the gradient
    never vanishes on a nearly silent estimate. A silent reference (energy <= ``eps``) has no
    SI-SDR; it scores ``10 log10(eps / (|estimate|^2 + eps))``: 0 dB for a silent estimate, less
    the louder the estimate, so a model trained on it learns silence for absent sources.
    """
    dot = (estimate * reference).sum(dim=-1, keepdim=True)
    energy = reference.square().sum(dim=-1, keepdim=True)
    silent = energy.squeeze(-1) <= eps
    target = dot / energy.clamp_min(eps) * reference
    noise = estimate - target
    tiny = torch.finfo(torch.float32).tiny
    playing = 10 * torch.log10((target.square().sum(-1) + tiny) / (noise.square().sum(-1) + tiny))
    estimate_energy = estimate.square().sum(-1)
    if floor:
        muted = estimate_energy <= 1e-10 * energy.squeeze(-1)
        playing = torch.where(muted, torch.full_like(playing, -100.0), playing.clamp(-100.0, 100.0))
    quiet = 10 * torch.log10(eps / (estimate_energy + eps))
    return torch.where(silent, quiet, playing)


def neg_si_sdr(estimate: torch.Tensor, reference: torch.Tensor, silence_db: float = -30.0) -> torch.Tensor:
    """Minus the mean SI-SDR over batch and sources, each stem's channels pooled, unclamped (see
    :func:`si_sdr`).

    A silent reference (an absent stem) scores ``10 log10(f / (|estimate|^2 + f))``, with ``f``
    the mixture's energy (the sum of the references) ``silence_db`` below it: 0 dB for silence,
    -3 dB for leakage at that level, and slowly less beyond. With a fixed tiny floor instead, the
    faintest leakage costs tens of dB, and a model learns to mute every stem that is often absent
    (seen: piano, guitar and strings at -100 dB after 250 steps).
    """
    return _neg_sdr(estimate, reference, silence_db, scale_invariant=True)


def neg_sdr(estimate: torch.Tensor, reference: torch.Tensor, silence_db: float = -30.0) -> torch.Tensor:
    """Minus the mean SDR (signal-to-distortion ratio, ``10 log10(|ref|^2 / |ref - est|^2)``) over
    batch and sources (channels pooled); absent stems as in :func:`neg_si_sdr`.

    Unlike SI-SDR it fixes the estimate's level and sign. A model trained on SI-SDR alone is free
    to change both along the track (the loss sees each chunk on its own), and its segments then
    do not add up once blended over a whole song (measured: piano -15 dB SI-SDRi over whole
    songs where 3 s validation chunks gave +4 dB).
    """
    return _neg_sdr(estimate, reference, silence_db, scale_invariant=False)


def _neg_sdr(estimate: torch.Tensor, reference: torch.Tensor, silence_db: float, scale_invariant: bool):
    _check(estimate, reference)
    # Channels pooled into one signal per stem: scored channel by channel, each channel's sign and
    # level would be free, and a model trained so once gave stereo stems with opposite signs.
    estimate, reference = estimate.float().flatten(-2), reference.float().flatten(-2)  # (batch, sources, samples)
    if scale_invariant:
        scores = si_sdr(estimate, reference, floor=False)
    else:
        tiny = torch.finfo(torch.float32).tiny
        scores = 10 * torch.log10((reference.square().sum(-1) + tiny) / ((reference - estimate).square().sum(-1) + tiny))
    mixture_energy = reference.sum(dim=1, keepdim=True).square().sum(-1)  # (batch, 1)
    floor = 10 ** (silence_db / 10) * mixture_energy + EPS
    quiet = 10 * torch.log10(floor / (estimate.square().sum(-1) + floor))
    silent = reference.square().sum(-1) <= EPS
    return -torch.where(silent, quiet, scores).mean()


def multires_stft(estimate: torch.Tensor, reference: torch.Tensor,
                  fft_sizes: Sequence[int] = (512, 1024, 2048)) -> torch.Tensor:
    """Mean over resolutions (hop = n_fft / 4) of spectral convergence + log-magnitude L1."""
    _check(estimate, reference)
    total = 0.0
    for n_fft in fft_sizes:
        est, ref = magnitude(estimate, n_fft, n_fft // 4), magnitude(reference, n_fft, n_fft // 4)
        convergence = torch.linalg.vector_norm(ref - est) / (torch.linalg.vector_norm(ref) + EPS)
        log_l1 = (torch.log(est + 1e-5) - torch.log(ref + 1e-5)).abs().mean()
        total = total + convergence + log_l1
    return total / len(fft_sizes)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "mse": mse, "mae": mae, "spec_mae": spec_mae, "difference": difference, "si_sdr": neg_si_sdr,
    "sdr": neg_sdr, "multires_stft": multires_stft,
}
# Losses that score an estimate the same at any level and either sign: a model trained on these
# alone outputs each stem at a level and sign of its own (see LossMix.learns_level).
SCALE_INVARIANT = frozenset({"si_sdr"})


def loss_options(name: str) -> dict:
    """The options (keyword arguments with defaults) loss ``name`` takes."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}: use one of {', '.join(LOSSES)}")
    parameters = list(inspect.signature(LOSSES[name]).parameters.values())[2:]
    return {p.name: p.default for p in parameters}


def _check_option(loss: str, key: str, value, default):
    """An option must have its default's type: a number, an integer, or a list of integers."""
    if isinstance(default, tuple):
        ok = isinstance(value, (list, tuple)) and value and all(isinstance(v, int) and v > 0 for v in value)
        expected = "a list of positive integers"
    elif isinstance(default, int):
        ok, expected = isinstance(value, int) and not isinstance(value, bool) and value > 0, "a positive integer"
    else:
        ok, expected = is_number(value), "a number"
    if not ok:
        raise ValueError(f"loss {loss!r}: {key} must be {expected}, got {value!r}")


class LossMix:
    """A weighted sum of losses.

    Args:
        terms: ``{"name": weight}`` or ``{"name": {"weight": w, option: value, ...}}``; options are
            checked against the loss's keyword arguments.
    """

    def __init__(self, terms: dict):
        if not terms:
            raise ValueError("at least one loss is needed")
        self.terms: list[tuple[str, float, dict]] = []
        for name, value in terms.items():
            options = loss_options(name)
            settings = dict(value) if isinstance(value, dict) else {"weight": value}
            weight = settings.pop("weight", 1.0)
            unknown = set(settings) - set(options)
            if unknown:
                raise ValueError(f"unknown option(s) for loss {name!r}: {', '.join(sorted(unknown))} "
                                 f"(it takes: {', '.join(options) or 'none'})")
            for key, value in settings.items():
                _check_option(name, key, value, options[key])
            if not is_number(weight) or weight < 0:
                raise ValueError(f"loss {name!r}: weight must be a number >= 0, got {weight!r}")
            self.terms.append((name, float(weight), settings))

    @property
    def learns_level(self) -> bool:
        """Whether training on this loss teaches a model its outputs' level and sign: not when every
        weighted term is scale-invariant (:data:`SCALE_INVARIANT`)."""
        return any(weight > 0 and name not in SCALE_INVARIANT for name, weight, _ in self.terms)

    def __call__(self, estimate: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted total and each term's unweighted value (for logging)."""
        total, parts = 0.0, {}
        for name, weight, options in self.terms:
            value = LOSSES[name](estimate, reference, **options)
            parts[name] = float(value.detach())
            total = total + weight * value
        return total, parts
