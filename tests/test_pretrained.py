"""Models by name or path: safetensors round trip, hash check, export and registration."""

from __future__ import annotations

import pytest
import torch

from wavesep import pretrained
from wavesep.cli import main
from wavesep.pretrained import (
    load_any,
    load_weights,
    read_weights_info,
    save_weights,
    tiny_model,
)
from wavesep.train.checkpoint import checkpoint_payload, save_atomic


def outputs(model, seed=0):
    x = torch.randn(1, 2, 4000, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(x).stems


def test_tiny_model_is_the_same_everywhere():
    assert torch.equal(outputs(tiny_model()), outputs(tiny_model()))
    assert torch.equal(outputs(load_any("tiny-untrained")), outputs(tiny_model()))


def test_weights_round_trip_with_their_info(tmp_path):
    path = tmp_path / "m.safetensors"
    digest = save_weights(tiny_model(), path, {"step": 7})
    assert torch.equal(outputs(load_weights(path, digest)), outputs(tiny_model()))
    assert read_weights_info(path) == {"step": 7}
    assert torch.equal(outputs(load_any(path)), outputs(tiny_model()))


def test_a_changed_or_corrupt_file_is_refused_with_one_line(tmp_path):
    path = tmp_path / "m.safetensors"
    digest = save_weights(tiny_model(), path)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match the registered"):
        load_weights(path, digest)
    path.write_bytes(bytes(data[:100]))
    with pytest.raises(ValueError, match="not a wavesep weights file") as error:
        load_weights(path)
    assert "\n" not in str(error.value)


def test_export_and_register_ship_a_model_by_name(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", tmp_path / "weights")
    monkeypatch.setattr(pretrained, "MANIFEST", tmp_path / "weights" / "manifest.json")
    checkpoint = tmp_path / "best.pt"
    save_atomic(checkpoint_payload(tiny_model(), {"model": {"name": "latent-wavenet"}}, {"step": 3}), checkpoint)
    out = tmp_path / "exported.safetensors"
    assert main(["export", str(checkpoint), "--out", str(out), "--register", "mine", "--description", "a test"]) == 0
    assert "registered as 'mine'" in capsys.readouterr().out
    assert torch.equal(outputs(load_any("mine")), outputs(tiny_model()))
    assert read_weights_info(out)["step"] == 3
    assert main(["models"]) == 0
    assert "mine" in capsys.readouterr().out
    shipped = tmp_path / "weights" / "mine.safetensors"
    shipped.write_bytes(shipped.read_bytes()[:-4] + b"oops")  # a damaged install
    with pytest.raises(ValueError, match="mine.safetensors: SHA-256 .* reinstall"):
        load_any("mine")


def test_a_model_trained_on_a_scale_invariant_loss_is_run_with_fitted_gains(tmp_path):
    """SI-SDR leaves an output's level and sign free, so the separator fits them to the mixture;
    any loss term that sees the level (here sdr) makes that unnecessary; a file's own say wins."""
    from wavesep.train.checkpoint import load_model

    def options(info: dict) -> dict:
        path = tmp_path / "m.safetensors"
        save_weights(tiny_model(), path, info)
        return load_weights(path).separator_options

    def trained_on(losses: dict) -> dict:
        return {"training": {"losses": losses}}

    assert options({"config": trained_on({"si_sdr": 1.0})}) == {"fit_gains": True}
    assert options({"config": trained_on({"si_sdr": 1.0, "sdr": {"weight": 0.1}})}) == {}
    assert options({"config": trained_on({"si_sdr": 1.0, "mae": 0.0})}) == {"fit_gains": True}  # a zero weight teaches nothing
    assert options({"config": trained_on({"si_sdr": 1.0}), "separator": {"fit_gains": False}}) == {"fit_gains": False}
    assert options({}) == {}
    assert options({"config": trained_on({"a_loss_of_the_future": 1.0})}) == {}  # still loads
    checkpoint = tmp_path / "best.pt"
    save_atomic(checkpoint_payload(tiny_model(), {"training": {"losses": {"si_sdr": 1.0}}}), checkpoint)
    assert load_model(checkpoint).separator_options == {"fit_gains": True}
