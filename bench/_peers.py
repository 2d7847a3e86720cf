"""The peers of ``bench/separate.py``: HT-Demucs and Open-Unmix as their packages release them,
with random weights (speed and memory do not depend on the weights).

``make setup`` installs them (``--no-deps``, see pyproject's ``peers`` extra); they are imported
through :func:`wavesep.models.peers.peer_module`, which stands an empty module in for torchaudio
(openunmix imports it at module level; no build of it loads with torch 2.13 here, and the torch-STFT
path used here never calls it).
"""

from __future__ import annotations

from fractions import Fraction

import torch

from wavesep.models.peers import PeerMissing, peer_module  # noqa: F401 (PeerMissing: for bench/separate.py)

SAMPLE_RATE = 44100


def htdemucs() -> torch.nn.Module:
    """The released ``htdemucs`` (signature 955717e8, ~42M parameters): HTDemucs's defaults with
    the settings of demucs/grids/mmi.py that it was trained with; segment 7.8 s."""
    model = peer_module("demucs.htdemucs").HTDemucs(sources=["drums", "bass", "other", "vocals"], samplerate=SAMPLE_RATE,
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
    model, utils = peer_module("openunmix.model"), peer_module("openunmix.utils")
    OpenUnmix, Separator, bandwidth_to_max_bin = model.OpenUnmix, model.Separator, utils.bandwidth_to_max_bin
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
