"""Separation: overlap-add, the Separator API, audio files in and out, and `wavesep separate`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from wavesep.cli import main
from wavesep.models import ModelSpec, SeparationModel
from wavesep.overlap import OverlapAdd, crossfade_window, overlap_add, segment_starts
from wavesep.separate import Separator, stems_for_instruments


# -- overlap-add -------------------------------------------------------------------------------
def identity(segment: torch.Tensor) -> torch.Tensor:
    return segment[None].clone()


def test_overlap_add_of_identity_returns_the_input_exactly():
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        length, segment = (int(torch.randint(1, n, (1,), generator=generator)) for n in (4000, 700))
        overlap = int(torch.randint(0, segment, (1,), generator=generator))
        x = torch.randn(2, length, generator=generator)
        y = overlap_add(identity, x, segment, overlap)
        assert y.shape == (1, 2, length)
        assert torch.equal(y[0], x), (length, segment, overlap)


def test_streamed_blocks_of_any_size_give_the_same_output():
    x = torch.randn(2, 10_007)
    whole = overlap_add(lambda c: torch.stack([c, 2 * c]), x, 1000, 250)
    blender = OverlapAdd(lambda c: torch.stack([c, 2 * c]), 1000, 250)
    parts, position = [], 0
    for size in [1, 999, 3, 2500, 17, 4000, 10_000]:
        parts.append(blender.push(x[:, position:position + size]))
        position += size
    parts.append(blender.finish())
    streamed = torch.cat([p for p in parts if p is not None], dim=-1)
    assert torch.equal(streamed, whole)


def test_segments_cover_the_track_and_the_model_only_sees_full_segments():
    assert segment_starts(100, 40, 30) == [0, 30, 60]
    assert segment_starts(101, 40, 30) == [0, 30, 60, 61]  # the last one ends with the track
    assert segment_starts(10, 40, 30) == [0]
    seen = []
    overlap_add(lambda c: (seen.append(c.shape[-1]), c[None])[1], torch.randn(1, 1001), 100, 25)
    assert set(seen) == {100}


def test_crossfade_has_no_level_dip_and_no_zero_weight():
    window = crossfade_window(100, 25)
    assert window.min() > 0
    # Consecutive windows at hop 75 sum to exactly one across the overlap.
    assert torch.allclose(window[75:] + window[:25], torch.ones(25, dtype=torch.float64))


def test_a_segment_that_sees_a_constant_gives_no_click_at_borders():
    # A model whose output jumps at segment edges (it adds its segment's mean) must be blended
    # smoothly: no sample-to-sample step larger than the signal's own.
    x = torch.linspace(0, 1, 5000)[None]
    y = overlap_add(lambda c: (c + c.mean())[None], x, 500, 125)[0, 0]
    assert y.diff().abs().max() < 5 * x.diff().abs().max()


def test_batches_of_segments_give_the_output_of_one_at_a_time():
    x = torch.randn(2, 10_007)
    one = overlap_add(lambda c: torch.stack([c, 2 * c]), x, 1000, 250)
    calls = []

    def batched(c):  # (segments, channels, time) -> (segments, outputs, channels, time)
        calls.append(c.shape[0])
        return torch.stack([c, 2 * c], dim=1)

    for batch in (1, 3, 100):
        calls.clear()
        assert torch.equal(overlap_add(batched, x, 1000, 250, batch=batch), one)
        assert max(calls) <= batch and sum(calls) == len(segment_starts(10_007, 1000, 750))
    blender = OverlapAdd(batched, 1000, 250, batch=4)
    parts = [blender.push(x[:, i:i + 333]) for i in range(0, x.shape[-1], 333)] + [blender.finish()]
    assert torch.equal(torch.cat([p for p in parts if p is not None], dim=-1), one)
    with pytest.raises(ValueError, match="need batch >= 1, got 0"):
        OverlapAdd(batched, 1000, 250, batch=0)


def test_bounded_memory_state_does_not_grow_with_the_track():
    blender = OverlapAdd(identity, 1000, 250)
    sizes = []
    for _ in range(200):
        blender.push(torch.randn(2, 777))
        sizes.append(blender.held)
    assert max(sizes) < 4000
    blender = OverlapAdd(lambda c: c[:, None].clone(), 1000, 250, batch=8)  # holds a batch's hops more
    for _ in range(200):
        blender.push(torch.randn(2, 777))
        sizes.append(blender.held)
    assert max(sizes) < 4000 + 2 * 8 * 750


# -- test models ---------------------------------------------------------------------------
@dataclass
class ShareConfig:
    pass


class Shares(SeparationModel):
    """Output i is ``gains[i]`` times the input: an exact, known "separation"."""

    name = "test-shares"
    Config = ShareConfig

    def __init__(self, sources=("a", "b", "other"), gains=(0.5, 0.25, 0.1), sample_rate=44100,
                 setting="fixed"):
        super().__init__(ModelSpec(sources=tuple(sources), sample_rate=sample_rate, setting=setting),
                         ShareConfig(), feature_channels=1)
        self.register_buffer("gains", torch.tensor(gains))
        self.bias = torch.nn.Parameter(torch.zeros(1))

    @property
    def receptive_field(self) -> int:
        return 1

    def valid_length(self, length: int) -> int:
        return length

    def separate(self, x, cond):
        out = self.gains[None, :, None, None] * x[:, None]  # (batch, sources, channels, time)
        return out.flatten(1, 2), x.mean(dim=1, keepdim=True)


class Grid(Shares):
    """Output i is ``gains[i]`` times the input on the even samples of what the model is given and 0
    on the odd ones: an output that depends on where the audio falls on the model's own grid, as a
    stride's or an STFT's does."""

    name = "test-grid"

    def separate(self, x, cond):
        even = (torch.arange(x.shape[-1]) % 2 == 0).to(x.dtype)
        out = self.gains[None, :, None, None] * (x * even)[:, None]
        return out.flatten(1, 2), x.mean(dim=1, keepdim=True)


def write_audio(path: Path, audio: np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
    soundfile.write(str(path), audio.T, sample_rate, subtype=subtype)
    return path


def tone(channels: int, seconds: float, sample_rate: int) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t + 1)
    return np.stack([x * (1 - 0.3 * c) for c in range(channels)]).astype(np.float32)


# -- the Python API ---------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("sample_rate", [44100, 48000, 22050])
def test_rate_channels_and_length_are_kept(channels, sample_rate):
    x = tone(channels, 2.3, sample_rate)
    stems = Separator(Shares(gains=(0.5, 0.3, 0.2)), segment_s=1.0, consistency=False).separate(x, sample_rate)
    assert list(stems) == ["a", "b", "other"]
    for name, gain in zip(stems, (0.5, 0.3, 0.2)):
        assert stems[name].shape == x.shape and stems[name].dtype == np.float32
        error = stems[name] - gain * x
        # Resampled to 44.1 kHz and back: aligned to the sample, and accurate to > 60 dB.
        assert 10 * np.log10(np.sum((gain * x) ** 2) / np.sum(error ** 2)) > 60


def test_with_consistency_and_an_other_stem_the_stems_sum_to_the_input():
    x = np.random.default_rng(0).normal(0, 0.2, (2, 100_000)).astype(np.float32)
    stems = Separator(Shares(), segment_s=0.5, consistency=True).separate(x, 48000)
    np.testing.assert_allclose(sum(stems.values()), x, atol=1e-6)
    raw = Separator(Shares(), segment_s=0.5).separate(x, 48000)  # the default: the model's own stems
    assert all(np.array_equal(raw[name], stems[name]) for name in ("a", "b"))
    assert np.abs(sum(raw.values()) - x).max() > 0.01


@pytest.mark.parametrize("setting,informed_by", [("fixed", "multihot"), ("informed", "multihot"),
                                                  ("informed", "query"), ("blind", "multihot")])
def test_batched_segments_separate_as_one_at_a_time(setting, informed_by):
    from wavesep.models import build_model

    torch.manual_seed(0)
    spec = ModelSpec(("drums", "bass", "other"), sample_rate=8000, setting=setting, informed_by=informed_by,
                     condition_dim=4)
    model = build_model("latent-wavenet", spec, {"stride": 8, "window": 16, "basis": 16, "channels": 8,
                                                 "skip_channels": 8, "stacks": 1, "blocks": 2, "spectral_ffts": [64]})
    x = np.random.default_rng(0).normal(0, 0.2, (2, 4_321)).astype(np.float32)
    instruments = ["bass", "drums"] if setting == "informed" else None
    for precision in ("float32", "auto"):
        results = []
        for batch in (1, 3):
            separator = Separator(model, segment_s=0.05, batch=batch, instruments=instruments, threshold=0.01,
                                  precision=precision)
            results.append((separator.separate(x), separator.last_detections))
        (one, detected_one), (three, detected_three) = results
        assert list(one) == list(three) and len(one) >= 2
        # float32: the same; bfloat16 (auto, where the CPU has it): the encoder's float32 convolution
        # differs by ~1e-7 between batch sizes, which can flip a bfloat16 rounding after it
        tolerance = 1e-5 if separator.precision == "float32" else 1e-3
        for name in one:
            np.testing.assert_allclose(three[name], one[name], atol=tolerance, err_msg=name)
        assert detected_one == pytest.approx(detected_three, abs=tolerance)
    with pytest.raises(ValueError, match="batch must be >= 1, got 0"):
        Separator(model, batch=0)


def test_auto_precision_takes_bfloat16_only_where_native_and_for_a_checked_architecture(monkeypatch):
    import wavesep.separate as separate

    monkeypatch.setattr(separate, "native_bf16", lambda device: False)  # a CPU without AVX512-BF16 or AMX
    assert Separator("tiny-untrained").precision == "float32"
    with pytest.raises(ValueError, match="precision bfloat16: cpu here computes it by emulation, slower than float32"):
        Separator("tiny-untrained", precision="bfloat16")
    monkeypatch.setattr(separate, "native_bf16", lambda device: True)
    assert Separator("tiny-untrained").precision == "bfloat16"  # a latent-wavenet
    assert Separator(Shares()).precision == "float32"  # an architecture not checked in bfloat16
    assert Separator(Shares(), precision="bfloat16").precision == "bfloat16"  # asked for: the caller's call
    assert Separator("tiny-untrained", precision="float32").precision == "float32"
    with pytest.raises(ValueError, match="precision must be one of auto, float32, bfloat16; got 'half'"):
        Separator("tiny-untrained", precision="half")


def test_bfloat16_separation_is_close_to_float32s_and_gives_float32_stems(monkeypatch):
    import wavesep.separate as separate

    monkeypatch.setattr(separate, "native_bf16", lambda device: True)  # emulated where not: slower, the same numbers
    x = tone(2, 1.5, 44100) + np.random.default_rng(0).normal(0, 0.05, (2, 66150)).astype(np.float32)
    single = Separator("tiny-untrained", precision="float32").separate(x)
    half = Separator("tiny-untrained", precision="bfloat16").separate(x)
    assert list(half) == list(single)
    for name in single:
        assert half[name].dtype == np.float32 and half[name].shape == x.shape
        assert not np.array_equal(half[name], single[name])  # the stacks did run in bfloat16
        error = np.sum((half[name] - single[name]).astype(np.float64) ** 2)
        assert 10 * np.log10(np.sum(single[name].astype(np.float64) ** 2) / error) > 30, name


def test_tensors_in_tensors_out_mono_vector_too():
    x = torch.randn(30_000) * 0.1
    stems = Separator(Shares(), segment_s=0.25).separate(x)
    assert all(isinstance(s, torch.Tensor) and s.shape == x.shape for s in stems.values())


def test_silence_gives_silence_and_bad_arrays_are_refused():
    stems = Separator("tiny-untrained").separate(np.zeros((2, 5000), np.float32))
    assert all(np.array_equal(s, np.zeros((2, 5000))) for s in stems.values())
    separator = Separator(Shares())
    with pytest.raises(ValueError, match="non-finite"):
        separator.separate(np.array([[0.0, np.nan, 0.1]], np.float32))
    with pytest.raises(ValueError, match="no samples"):
        separator.separate(np.zeros((2, 0), np.float32))
    with pytest.raises(ValueError, match="1 or 2 channels"):
        separator.separate(np.zeros((3, 100), np.float32))


def test_stem_choice_and_errors():
    assert list(Separator(Shares(), stems=["b"]).separate(np.ones((1, 100), np.float32) * 0.1)) == ["b"]
    with pytest.raises(ValueError, match="unknown stem.*drums.*a, b, other"):
        Separator(Shares(), stems=["drums"])
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        Separator("nope")
    with pytest.raises(ValueError, match="only.pt: model file not found"):
        Separator("only.pt")
    with pytest.raises(ValueError, match="informed models"):
        Separator(Shares(), instruments=["flute"])


def test_informed_instruments_map_to_stems():
    model = Shares(sources=("drums", "bass", "piano", "guitar", "strings", "other"), gains=(0.1,) * 6,
                   setting="informed")
    assert stems_for_instruments(model, ["Acoustic Grand Piano", "violin", "drums"]) == ["drums", "piano", "strings"]
    with pytest.raises(ValueError, match="no stem of this model holds 'kazoo'"):
        stems_for_instruments(model, ["kazoo"])
    stems = Separator(model, instruments=["bass"], consistency=True).separate(np.ones((1, 500), np.float32) * 0.1)
    assert list(stems) == ["bass", "other"]  # what bass leaves goes to other (all of it when consistent)
    np.testing.assert_allclose(stems["bass"] + stems["other"], 0.1, atol=1e-6)


def test_blind_models_keep_what_they_detect():
    model = Shares(setting="blind")
    with torch.no_grad():  # presence logits from the mean feature: +, -, + for a positive input
        model.presence.linear.weight.zero_()
        model.presence.linear.bias.copy_(torch.tensor([5.0, -5.0, 5.0]))
    separator = Separator(model)
    stems = separator.separate(np.ones((2, 1000), np.float32) * 0.1)
    assert list(stems) == ["a", "other"]
    assert separator.last_detections["b"] < 0.5 < separator.last_detections["a"]


# -- files and the command ----------------------------------------------------------------------
@pytest.fixture
def tiny_song(tmp_path) -> Path:
    (tmp_path / "in").mkdir()
    return write_audio(tmp_path / "in" / "song.wav", tone(2, 1.5, 44100), 44100)


@pytest.mark.parametrize("fmt,bits,subtype", [("wav", "16", "PCM_16"), ("wav", "24", "PCM_24"),
                                              ("wav", "32", "PCM_32"), ("wav", "float", "FLOAT"),
                                              ("flac", "16", "PCM_16"), ("flac", "24", "PCM_24")])
def test_formats_and_bit_depths_are_written(tmp_path, tiny_song, fmt, bits, subtype):
    out = tmp_path / "out"
    assert main(["separate", str(tiny_song), "-m", "tiny-untrained", "-o", str(out), "--format", fmt,
                 "--bits", bits, "--no-progress"]) == 0
    files = sorted((out / "song").iterdir())
    assert [f.name for f in files] == sorted(f"{s}.{fmt}" for s in ("drums", "bass", "piano", "strings"))
    for file in files:
        info = soundfile.info(str(file))
        assert (info.subtype, info.samplerate, info.channels, info.frames) == (subtype, 44100, 2, 66150)


@pytest.mark.parametrize("source_subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT"])
def test_input_formats_are_read(tmp_path, source_subtype):
    song = write_audio(tmp_path / "x.wav", tone(1, 0.5, 32000), 32000, source_subtype)
    stems = Separator(Shares(), consistency=False).separate(song)
    assert stems["a"].shape == (1, 16000)
    # Resampled to 44.1 kHz and back; the tone starts and stops abruptly, so skip the edges.
    np.testing.assert_allclose(stems["a"][:, 8:-8], 0.5 * tone(1, 0.5, 32000)[:, 8:-8], atol=2e-3)


@pytest.mark.parametrize("suffix", [".flac", ".ogg", ".mp3"])
def test_compressed_inputs_are_read(tmp_path, suffix):
    song = write_audio(tmp_path / f"x{suffix}", tone(2, 1.0, 44100), 44100)
    stems = Separator(Shares()).separate(song)
    assert stems["a"].shape[0] == 2 and abs(stems["a"].shape[1] - 44100) < 2000


def test_consistent_files_sum_to_input_with_clip_none_and_float(tmp_path):
    x = np.random.default_rng(1).normal(0, 0.3, (2, 50_000)).astype(np.float32)
    x[:, 100] = 1.5  # beyond full scale: kept with --clip none and float
    song = write_audio(tmp_path / "loud.wav", x, 44100, "FLOAT")
    separator = Separator(Shares(gains=(1.2, 0.5, 0.1)), segment_s=0.3, consistency=True)
    separator.separate_file(song, tmp_path / "out", clip="none")
    stems = [soundfile.read(str(tmp_path / "out" / "loud" / f"{s}.wav"), dtype="float32")[0].T
             for s in ("a", "b", "other")]
    np.testing.assert_allclose(sum(stems), x, atol=1e-5)
    assert np.abs(stems[0]).max() > 1.5


def test_clipping_policies(tmp_path):
    x = np.full((1, 4000), 0.9, np.float32)
    song = write_audio(tmp_path / "hot.wav", x, 44100, "FLOAT")
    peaks = {}
    for clip in ("rescale", "clamp", "none"):
        Separator(Shares(gains=(2.0, 0.5, 0.1)), consistency=False).separate_file(
            song, tmp_path / clip, clip=clip, bits="float")
        a, b = (soundfile.read(str(tmp_path / clip / "hot" / f"{s}.wav"))[0] for s in ("a", "b"))
        peaks[clip] = (np.abs(a).max(), np.abs(b).max())
    assert peaks["rescale"][0] == pytest.approx(0.999, abs=1e-4)
    assert peaks["rescale"][1] == pytest.approx(0.45 * 0.999 / 1.8, abs=1e-4)  # one gain for all stems
    assert peaks["clamp"] == pytest.approx((1.0, 0.45), abs=1e-4)
    assert peaks["none"] == pytest.approx((1.8, 0.45), abs=1e-4)


def test_cli_separates_folders_skips_done_files_and_honours_the_template(tmp_path, capsys):
    songs = tmp_path / "songs"
    songs.mkdir()
    for name in ("one", "two"):
        write_audio(songs / f"{name}.flac", tone(2, 0.7, 44100), 44100)
    write_audio(songs / "three.wav", tone(1, 0.4, 16000), 16000)
    out = tmp_path / "out"
    args = ["separate", str(songs), "-m", "tiny-untrained", "-o", str(out), "--stems", "drums,bass",
            "--filename", "{stem}/{track}.{ext}", "--no-progress"]
    assert main(args) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "bass/one.wav", "bass/three.wav", "bass/two.wav", "drums/one.wav", "drums/three.wav", "drums/two.wav"]
    assert soundfile.info(str(out / "drums" / "three.wav")).samplerate == 16000
    assert soundfile.info(str(out / "drums" / "three.wav")).channels == 1
    before = (out / "bass" / "one.wav").stat().st_mtime_ns
    assert main(args) == 0
    assert "skipped 3 already done" in capsys.readouterr().out
    assert (out / "bass" / "one.wav").stat().st_mtime_ns == before
    assert main(args + ["--force"]) == 0
    assert (out / "bass" / "one.wav").stat().st_mtime_ns != before


def test_bad_inputs_fail_alone_with_one_line_each_and_leave_nothing(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    write_audio(folder / "good.wav", tone(2, 0.5, 44100), 44100)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "corrupt.flac").write_bytes(b"fLaC" + bytes(range(256)) * 4)
    write_audio(folder / "zero.wav", np.zeros((2, 0), np.float32), 44100)
    nan = tone(1, 0.5, 44100)
    nan[0, 20000] = np.nan
    write_audio(folder / "nan.wav", nan, 44100, "FLOAT")
    inf = tone(1, 30.0, 8000)
    inf[0, -5] = np.inf  # found only in the last block, after stems were written
    write_audio(folder / "late-inf.wav", inf, 8000, "FLOAT")
    out = tmp_path / "out"
    code = main(["separate", str(folder), str(tmp_path / "missing.wav"), "-m", "tiny-untrained", "-o", str(out),
                 "--no-progress"])
    assert code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("wavesep: error")]
    reasons = {Path(line.split(": ")[2]).name: line for line in errors}
    assert set(reasons) == {"empty.wav", "corrupt.flac", "zero.wav", "nan.wav", "late-inf.wav", "missing.wav"}
    assert "empty file" in reasons["empty.wav"] and "no such file" in reasons["missing.wav"]
    assert "not a readable audio file" in reasons["corrupt.flac"] and "zero length" in reasons["zero.wav"]
    assert "NaN or inf) at 0.454 s" in reasons["nan.wav"] and "at 29.999 s" in reasons["late-inf.wav"]
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert left == [f"good/{s}.wav" for s in ("bass", "drums", "piano", "strings")]  # no partial file anywhere


def test_cli_rejects_bad_options_before_any_work(tmp_path, tiny_song, capsys):
    out = tmp_path / "out"
    assert main(["separate", str(tiny_song), "-m", "tiny-untrained", "-o", str(out), "--format", "flac",
                 "--bits", "32"]) == 1
    assert main(["separate", str(tiny_song), "-m", "no-such-model", "-o", str(out)]) == 1
    assert main(["separate", str(tiny_song), "-m", "tiny-untrained", "-o", str(out), "--stems", "vocals"]) == 1
    err = capsys.readouterr().err
    assert "FLAC holds 16 or 24-bit" in err and "unknown model 'no-such-model'" in err
    assert "unknown stem(s) vocals" in err
    assert not out.exists()


def test_blind_model_writes_detections(tmp_path, tiny_song):
    model = Shares(setting="blind")
    with torch.no_grad():
        model.presence.linear.weight.zero_()
        model.presence.linear.bias.copy_(torch.tensor([5.0, -5.0, -5.0]))
    Separator(model).separate_file(tiny_song, tmp_path / "out")
    report = json.loads((tmp_path / "out" / "song" / "detections.json").read_text())
    assert report["kept"] == ["a"] and report["probabilities"]["b"] < 0.01
    assert sorted(p.name for p in (tmp_path / "out" / "song").iterdir()) == ["a.wav", "detections.json"]


def test_help_states_the_clipping_policy(capsys):
    with pytest.raises(SystemExit):
        main(["separate", "--help"])
    text = capsys.readouterr().out
    assert "rescale" in text and "sum to the input" in text


def test_the_package_exports_the_separator():
    import wavesep
    from wavesep.separate import Separator as direct

    assert wavesep.Separator is direct


def test_outputs_never_collide(tmp_path, capsys):
    for folder in ("a", "b"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        write_audio(tmp_path / "in" / folder / "song.wav", tone(1, 0.3, 44100), 44100)
    out = tmp_path / "in" / "stems"  # inside the input folder: its files are not inputs next time
    args = ["separate", str(tmp_path / "in"), "-m", "tiny-untrained", "-o", str(out), "--no-progress"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "b/song.wav: its stems would overwrite those of" in err and "a/song.wav" in err
    assert main(args) == 1 and "separated 0 file(s)" in capsys.readouterr().out  # a/ skipped, b/ refused again
    assert main(args[:-1] + ["--filename", "{track}.{ext}"]) == 1
    assert "it needs {stem}" in capsys.readouterr().err


def test_a_request_that_keeps_nothing_is_refused():
    model = Shares(sources=("drums", "bass", "other"), setting="informed")
    with pytest.raises(ValueError, match="leave no stem"):
        Separator(model, stems=["drums"], instruments=["bass"])


def test_blind_reruns_follow_the_request(tmp_path, tiny_song):
    model = Shares(setting="blind")
    with torch.no_grad():
        model.presence.linear.weight.zero_()
        model.presence.linear.bias.copy_(torch.tensor([5.0, 5.0, -5.0]))
    out = tmp_path / "out"
    assert Separator(model, stems=["a"]).separate_file(tiny_song, out).status == "separated"
    assert Separator(model).separate_file(tiny_song, out).status == "separated"  # more stems asked: not skipped
    assert Separator(model).separate_file(tiny_song, out).status == "skipped"
    with torch.no_grad():
        model.presence.linear.bias.copy_(torch.tensor([5.0, -5.0, -5.0]))
    Separator(model).separate_file(tiny_song, out, force=True)
    assert sorted(p.name for p in (out / "song").iterdir()) == ["a.wav", "detections.json"]  # b.wav removed


def test_fitted_gains_undo_a_per_segment_level_and_sign():
    from wavesep.separate import fit_gains

    stems = torch.randn(3, 2, 1000)
    mixture = stems.sum(0)
    scrambled = stems * torch.tensor([-0.3, 2.0, 0.7])[:, None, None]
    torch.testing.assert_close(fit_gains(scrambled, mixture), stems, atol=1e-4, rtol=1e-4)
    silent = fit_gains(torch.zeros(3, 2, 100), torch.randn(2, 100))
    assert torch.equal(silent, torch.zeros(3, 2, 100))


def test_shifts_average_runs_that_fall_differently_on_the_models_grid():
    from wavesep.separate import shift_offsets

    assert shift_offsets(1, 8000) == [0] and shift_offsets(3, 8000) == [0, 1333, 2667]
    # 4,000-sample segments every 3,000 samples over 13,000: every segment starts on an even sample
    x = np.random.default_rng(0).normal(0, 0.2, (2, 13_000)).astype(np.float32)
    gains = (0.5, 0.25, 0.1)
    once = Separator(Grid(gains=gains, sample_rate=8000), segment_s=0.5).separate(x)
    thrice = Separator(Grid(gains=gains, sample_rate=8000), segment_s=0.5, shifts=3).separate(x)
    even = np.arange(x.shape[-1]) % 2 == 0
    for name, gain in zip(("a", "b", "other"), gains):
        np.testing.assert_allclose(once[name], gain * x * even, atol=1e-6)
        # offset 0 keeps the even samples, the odd offsets 1333 and 2667 the odd ones, all put back in line
        np.testing.assert_allclose(thrice[name], gain * x * np.where(even, 1 / 3, 2 / 3), atol=1e-6)
    # a model that does not care where the audio falls gives what it gives without shifts
    plain = Separator(Shares(sample_rate=8000), segment_s=0.5).separate(x)
    shifted = Separator(Shares(sample_rate=8000), segment_s=0.5, shifts=4).separate(x)
    assert all(np.allclose(shifted[name], plain[name], atol=1e-6) for name in plain)


def test_shifts_change_a_strided_models_stems_reproducibly():
    x = tone(2, 1.5, 44100) + np.random.default_rng(0).normal(0, 0.05, (2, 66150)).astype(np.float32)
    once = Separator("tiny-untrained", precision="float32").separate(x)
    twice = Separator("tiny-untrained", precision="float32", shifts=2).separate(x)
    again = Separator("tiny-untrained", precision="float32", shifts=2).separate(x)
    for name in once:
        assert twice[name].shape == x.shape and not np.allclose(twice[name], once[name], atol=1e-6)
        assert np.array_equal(twice[name], again[name])  # fixed offsets: the same stems every time
    with pytest.raises(ValueError, match="shifts must be an integer >= 1, got 0"):
        Separator(Shares(), shifts=0)


def test_cli_shifts(tmp_path, tiny_song, capsys):
    out = tmp_path / "out"
    assert main(["separate", str(tiny_song), "-m", "tiny-untrained", "-o", str(out), "--shifts", "2",
                 "--precision", "float32", "--no-progress"]) == 0
    expected = Separator("tiny-untrained", precision="float32", shifts=2).separate(tiny_song)
    for name, stem in expected.items():
        written, _ = soundfile.read(out / "song" / f"{name}.wav", dtype="float32", always_2d=True)
        np.testing.assert_allclose(written.T, stem, atol=1e-6, err_msg=name)
    with pytest.raises(SystemExit) as error:
        main(["separate", str(tiny_song), "-o", str(out), "--shifts", "0"])
    assert error.value.code == 2 and "--shifts: must be at least 1, got 0" in capsys.readouterr().err
