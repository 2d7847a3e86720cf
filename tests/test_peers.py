"""The peer adapters: the peers' own classes as wavesep models, trained by ``wavesep train``,
rebuilt from checkpoints and run by the Separator like any wavesep model."""

from __future__ import annotations

import pytest
import torch

from wavesep.cli import main
from wavesep.models import ModelSpec, build_model, model_from_description
from wavesep.models.peers import PeerMissing, peer_module
from wavesep.separate import Separator

SEED4 = ("drums", "bass", "piano", "strings")
TINY = {  # a few thousand to half a million parameters: seconds on a CPU
    "conv-tasnet": {"n_filters": 16, "kernel_size": 16, "stride": 8, "n_blocks": 2, "n_repeats": 1, "bn_chan": 8,
                    "hid_chan": 16, "skip_chan": 8},
    "hdemucs": {"channels": 4, "depth": 6, "dconv_depth": 1},
    "open-unmix": {"hidden_size": 8, "nb_layers": 1, "n_fft": 512, "n_hop": 128},
}


@pytest.mark.parametrize("name", TINY)
@pytest.mark.parametrize("length", [11025, 4037, 37, 1])
def test_a_peer_separates_any_length_mono_or_stereo_and_learns_through_every_weight(name, length):
    torch.manual_seed(0)
    model = build_model(name, ModelSpec(sources=SEED4), TINY[name])
    stems = model(torch.randn(2, 2, length)).stems
    assert stems.shape == (2, 4, 2, length) and torch.isfinite(stems).all()
    stems.square().mean().backward()
    untouched = {n for n, p in model.named_parameters()
                 if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)}
    if length >= 11025:  # HDemucs's deepest attention sees nothing of a very short input
        assert not untouched  # as DistributedDataParallel requires (Conv-TasNet's unread weights are frozen)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, length)).stems.shape == (1, 4, 1, length)
        silent = model(torch.zeros(1, 2, length)).stems
    assert torch.equal(silent, torch.zeros_like(silent))  # silence in, silence out (no division by zero)


@pytest.mark.parametrize("name", TINY)
def test_a_peer_is_rebuilt_from_its_description(name):
    torch.manual_seed(1)
    model = build_model(name, ModelSpec(sources=SEED4), TINY[name]).eval()
    rebuilt = model_from_description(model.describe()).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(1, 2, 8000)
    with torch.no_grad():
        assert torch.equal(model(x).stems, rebuilt(x).stems)


@pytest.mark.parametrize("name", TINY)
def test_peers_offer_the_fixed_setting_only(name):
    with pytest.raises(ValueError, match=f"{name}: the peer adapters offer the fixed setting only"):
        build_model(name, ModelSpec(sources=SEED4, setting="blind"), TINY[name])


def test_a_missing_peer_package_says_how_to_install_it():
    with pytest.raises(PeerMissing, match="install the peers with: .*--no-deps"):
        peer_module("wavesep_no_such_peer")


@pytest.mark.parametrize("name", TINY)
def test_wavesep_train_trains_a_peer_whose_checkpoint_separates(name, corpus, tmp_path):
    run = tmp_path / "run"
    args = ", ".join(f"{key}: {value}" for key, value in TINY[name].items())
    code = main(["train", "configs/tiny.yaml", "--run-dir", str(run), "--no-progress",
                 "--set", f"data.source={corpus['dataset']}", "--set", f"model.name={name}",
                 "--set", f"model.args={{{args}}}", "--set", "training.steps=3", "--set", "training.valid_every=3",
                 "--set", "training.checkpoint_every=3"])
    assert code == 0
    separator = Separator(str(run / "best.pt"))
    assert separator.model.describe()["name"] == name
    mixture = torch.randn(2, 30000) * 0.1
    stems = separator.separate(mixture)
    assert set(stems) == set(SEED4) and all(s.shape == mixture.shape for s in stems.values())
