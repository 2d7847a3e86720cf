"""The peers of ``bench/separate.py``: HT-Demucs and Open-Unmix as their packages release them,
with random weights (speed and memory do not depend on the weights).

Install (into the project's venv)::

    .venv/bin/pip install -c constraints.txt einops julius    # or: pip install -e '.[bench]'
    .venv/bin/pip install --no-deps demucs openunmix

``--no-deps`` because openunmix requires torchaudio, which has no build that loads with torch 2.13
here, and demucs's other requirements (lameenc, sphn, huggingface-hub) serve only its CLI and
downloads. The model modules need einops and julius (demucs) and nothing more; openunmix imports
torchaudio at module level but its torch-STFT path never calls it, so :func:`openunmix` puts an
empty module in its place when the real one cannot be imported (any call into it would fail loudly).
"""

from __future__ import annotations

import sys
import types
from fractions import Fraction

import torch

INSTALL = ("install the peers with: .venv/bin/pip install -c constraints.txt einops julius && "
           ".venv/bin/pip install --no-deps demucs openunmix")
SAMPLE_RATE = 44100


class PeerMissing(Exception):
    """A peer's package cannot be imported."""


def htdemucs() -> torch.nn.Module:
    """The released ``htdemucs`` (signature 955717e8, ~42M parameters): HTDemucs's defaults with
    the settings of demucs/grids/mmi.py that it was trained with; segment 7.8 s."""
    try:
        from demucs.htdemucs import HTDemucs
    except ImportError as error:
        raise PeerMissing(f"demucs cannot be imported ({error}): {INSTALL}") from None
    model = HTDemucs(sources=["drums", "bass", "other", "vocals"], samplerate=SAMPLE_RATE,
                     segment=Fraction(39, 5), dconv_mode=3, depth=4, t_layers=5, bottom_channels=512)
    return model.eval()


def run_htdemucs(model: torch.nn.Module, mix: torch.Tensor) -> torch.Tensor:
    """(channels, time) -> (sources, channels, time), as ``demucs.api`` does it: normalised by the
    mono mixture's statistics, 7.8 s segments overlapping by 25 %, no random shifts."""
    from demucs.apply import apply_model

    ref = mix.mean(0)
    mean, std = ref.mean(), ref.std() + 1e-8
    out = apply_model(model, ((mix - mean) / std)[None], shifts=0, split=True, overlap=0.25, progress=False)
    return out[0] * std + mean


def openunmix() -> torch.nn.Module:
    """``openunmix.umxhq``'s layout: four BiLSTM targets (hidden 512, bins up to 16 kHz of a 4096
    STFT) in a ``Separator`` with one Wiener iteration over 300-frame windows, torch STFT."""
    try:
        import torchaudio  # noqa: F401
    except (ImportError, OSError):
        sys.modules["torchaudio"] = types.ModuleType("torchaudio")  # see the module docstring
    try:
        from openunmix.model import OpenUnmix, Separator
        from openunmix.utils import bandwidth_to_max_bin
    except ImportError as error:
        raise PeerMissing(f"openunmix cannot be imported ({error}): {INSTALL}") from None
    max_bin = bandwidth_to_max_bin(rate=44100.0, n_fft=4096, bandwidth=16000)
    targets = {name: OpenUnmix(nb_bins=4096 // 2 + 1, nb_channels=2, hidden_size=512, max_bin=max_bin)
               for name in ("vocals", "drums", "bass", "other")}
    separator = Separator(targets, niter=1, residual=False, n_fft=4096, n_hop=1024, nb_channels=2,
                          sample_rate=44100.0, wiener_win_len=300, filterbank="torch")
    separator.freeze()
    return separator


def run_openunmix(model: torch.nn.Module, mix: torch.Tensor) -> torch.Tensor:
    """(channels, time) -> (targets, channels, time), the whole track at once, as ``umx`` does it."""
    return model(mix[None])[0]


PEERS = {"htdemucs": (htdemucs, run_htdemucs), "openunmix": (openunmix, run_openunmix)}
