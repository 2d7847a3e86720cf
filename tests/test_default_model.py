"""The shipped default model: registered, offline, hash-checked, and better than its stored floor."""

from __future__ import annotations

import numpy as np
import pytest

from wavesep.evaluate import song_audio
from wavesep.instruments import get_stem_set
from wavesep.metrics import si_sdr
from wavesep.pretrained import (
    MANIFEST,
    WEIGHTS_DIR,
    load_any,
    read_weights_info,
    registered_models,
)
from wavesep.separate import Separator


def test_default_is_registered_small_and_described():
    assert "default" in registered_models()
    path = WEIGHTS_DIR / "default.safetensors"
    assert path.stat().st_size <= 25 * 2**20
    model = load_any("default")
    assert model.sources == get_stem_set("band").names and model.sample_rate == 44100
    info = read_weights_info(path)
    assert info["floor_si_sdri"] > 0 and "trained_on" in info


@pytest.fixture(scope="module")
def generated_song(tmp_path_factory):
    """One procedural song the model never trained on (seed 2026), rendered."""
    from wavesep.data.dataset import load_songs
    from wavesep.midi.generate import generate_songs
    from wavesep.synth.batch import render_dataset

    root = tmp_path_factory.mktemp("default-model")
    generate_songs(root / "midi", 1, 2026)
    summary = render_dataset(root / "midi", root / "dataset", workers=1, progress=False)
    assert not summary.failed
    return load_songs(sorted(p for p in (root / "dataset").iterdir() if p.is_dir()))[0]


def mean_si_sdri(song, mono: bool = False) -> tuple[float, list[float]]:
    """The default's mean SI-SDRi over the stems playing in the first 20 s of ``song``."""
    band = get_stem_set("band")
    mixture, references = song_audio(song, band)
    seconds = 20 * song.sample_rate  # 20 s keep the test short
    mixture, references = mixture[:, :seconds], references[..., :seconds]
    if mono:
        mixture, references = mixture.mean(axis=0), references.mean(axis=1)
    stems = Separator("default").separate(mixture, song.sample_rate)
    assert all(stems[name].shape == mixture.shape for name in band.names)
    gains = [si_sdr(stems[name], reference) - si_sdr(mixture, reference)
             for name, reference in zip(band.names, references) if np.any(reference)]
    return float(np.mean(gains)), gains


def test_default_separates_a_new_song_above_its_floor(generated_song):
    floor = read_weights_info(WEIGHTS_DIR / "default.safetensors")["floor_si_sdri"]
    mean, gains = mean_si_sdri(generated_song)
    assert mean > floor, (gains, floor)


def test_default_separates_mono_too(generated_song):
    mean, gains = mean_si_sdri(generated_song, mono=True)
    assert mean > 1.0, gains  # mono in, mono stems out, and separated


def test_default_stems_have_their_level_and_sign(generated_song):
    """Trained on SI-SDR, which scores a stem at any level and either sign, the default is run with
    its stems fitted to the mixture: they sum to it, each has its sign, the loudest its level
    (without the fit: 20 to 50 dB too quiet, the drums upside down). Stems it separates poorly
    come out quieter than they are: the fit gives them less of the mixture."""
    band = get_stem_set("band")
    mixture, references = song_audio(generated_song, band)
    seconds = 10 * generated_song.sample_rate
    mixture, references = mixture[:, :seconds], references[..., :seconds]
    separator = Separator("default")
    assert separator.fit_gains
    stems = separator.separate(mixture, generated_song.sample_rate)
    residual = sum(stems.values()) - mixture
    assert 10 * np.log10(np.sum(residual**2) / np.sum(mixture**2)) < -10
    playing = [(name, reference) for name, reference in zip(band.names, references) if np.any(reference)]
    gains = {name: np.sum(stems[name] * reference) / np.sum(reference**2) for name, reference in playing}
    assert all(gain > 0 for gain in gains.values()), gains  # each stem's projection on its reference
    loudest, reference = max(playing, key=lambda item: np.sum(item[1] ** 2))
    assert abs(10 * np.log10(np.sum(stems[loudest] ** 2) / np.sum(reference**2))) < 3, loudest


def test_a_corrupted_default_is_a_clear_error(tmp_path, monkeypatch):
    from wavesep import pretrained

    broken = tmp_path / "weights"
    broken.mkdir()
    data = bytearray((WEIGHTS_DIR / "default.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x55
    (broken / "default.safetensors").write_bytes(bytes(data))
    (broken / "manifest.json").write_text(MANIFEST.read_text())
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", broken)
    monkeypatch.setattr(pretrained, "MANIFEST", broken / "manifest.json")
    with pytest.raises(ValueError, match="default.safetensors: SHA-256 .* does not match"):
        Separator("default")
