"""The render command: checks before work, bad songs in a batch, shards, and resumption."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from midi_factory import band_song
from wavesep.cli import main
from wavesep.synth.batch import RenderSetupError, parse_shard, render_dataset
from wavesep.synth.render import RenderSettings


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "midi"
    folder.mkdir()
    for i in range(4):
        band_song(folder / f"song{i}.mid", beats=4 + i)
    return folder


def complete_songs(dataset):
    return sorted(p.name for p in dataset.glob("*/*") if (p / "metadata.json").exists())


def test_bad_song_in_a_batch_is_reported_and_the_rest_rendered(corpus, tmp_path, capsys):
    (corpus / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\x00\x00\x00\x40\x00\x90")
    code = main(["render", str(corpus), "--out", str(tmp_path / "ds"), "--workers", "2"])
    assert code == 1
    err = capsys.readouterr().err
    assert f"{corpus / 'broken.mid'}: corrupt MIDI" in err
    assert len(complete_songs(tmp_path / "ds")) == 4


@pytest.mark.parametrize("name, content, message", [
    ("missing.sf2", None, "SoundFont not found"),
    ("bad.sf2", b"RIFF\x00\x00\x00\x00junk", "no RIFF sfbk header"),
    ("notes.txt", b"hi", "not a SoundFont"),
])
def test_bad_soundfont_fails_before_any_work(corpus, tmp_path, capsys, name, content, message):
    soundfont = tmp_path / name
    if content is not None:
        soundfont.write_bytes(content)
    out = tmp_path / "ds"
    code = main(["render", str(corpus), "--out", str(out), "--soundfont", str(soundfont)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and message in err[0]
    assert not out.exists()


def test_empty_source_and_unwritable_output(corpus, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RenderSetupError, match="no MIDI files"):
        render_dataset(empty, tmp_path / "ds", progress=False)
    with pytest.raises(RenderSetupError, match="no such file"):
        render_dataset(tmp_path / "nowhere", tmp_path / "ds", progress=False)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RenderSetupError, match="not writable"):
        render_dataset(corpus, blocker / "ds", progress=False)


def test_shards_partition_the_corpus_by_content(corpus, tmp_path):
    (corpus / "copy-of-song0.mid").write_bytes((corpus / "song0.mid").read_bytes())
    rendered, skipped = [], []
    for k in (1, 2, 3):
        summary = render_dataset(corpus, tmp_path / f"ds{k}", shard=(k, 3), progress=False)
        rendered += [o.path.name for o in summary.outcomes if o.status == "rendered"]
        skipped += [o.reason for o in summary.outcomes if o.status == "skipped"]
    # Every song once; the copy lands in its original's shard, where one of the two is skipped.
    assert sorted(rendered) == ["copy-of-song0.mid", "song1.mid", "song2.mid", "song3.mid"]
    assert skipped == ["same bytes as another file of the source"]
    with pytest.raises(RenderSetupError):
        parse_shard("4/3")


def test_worker_that_dies_fails_its_song_only():
    from midi_factory import kill_worker_on_boom, no_setup
    from wavesep.synth.batch import WORKER_DIED, _outcomes
    from wavesep.synth.writer import Job

    jobs = [Job(Path(f"song{i}.mid")) for i in range(6)] + [Job(Path("boom.mid"))] + [Job(Path("last.mid"))]
    outcomes = {o.path.name: o for o in _outcomes(jobs, 2, (), run=kill_worker_on_boom, init=no_setup)}
    assert len(outcomes) == 8
    assert outcomes["boom.mid"].status == "failed" and outcomes["boom.mid"].reason == WORKER_DIED
    assert all(o.status == "rendered" for name, o in outcomes.items() if name != "boom.mid")


def test_a_dataset_refuses_songs_rendered_differently(corpus, tmp_path):
    render_dataset(corpus, tmp_path / "ds", progress=False)
    with pytest.raises(RenderSetupError, match="rendered with other settings .*stem_lufs -13.0 there, -20.0 asked"):
        render_dataset(corpus, tmp_path / "ds", settings=RenderSettings(stem_lufs=-20.0), progress=False)


def test_drum_kits_are_a_dataset_setting(corpus, tmp_path, capsys):
    args = ["render", str(corpus), "--out", str(tmp_path / "ds"), "--workers", "1"]
    assert main(args + ["--drum-kits", "gm"]) == 0
    songs = [json.loads(p.read_text()) for p in (tmp_path / "ds").glob("*/*/metadata.json")]
    assert all(song["render"]["drum_kits"] == [0, 8, 16, 24, 25, 32, 40, 48] for song in songs)
    kits = [info["drum_kit"] for song in songs for info in song["stems"].values() if info["is_drum"]]
    assert kits and set(kits) <= {0, 8, 16, 24, 25, 32, 40, 48}
    capsys.readouterr()
    assert main(args + ["--drum-kits", "0,8,16,24,25,32,40,48"]) == 0  # the same list: resumed
    assert "skipped 4" in capsys.readouterr().out
    assert main(args) == 1  # the MIDI's own kits: another dataset
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "drum_kits [0, 8, 16, 24, 25, 32, 40, 48] there, [] asked" in err
    with pytest.raises(SystemExit):
        main(args + ["--drum-kits", "808"])
    assert "drum kits must be preset numbers 0-127" in capsys.readouterr().err


def test_a_dataset_recorded_before_drum_kits_resumes(corpus, tmp_path):
    render_dataset(corpus, tmp_path / "ds", progress=False)
    record = tmp_path / "ds" / "wavesep-dataset.json"
    settings = json.loads(record.read_text())
    del settings["drum_kits"]
    record.write_text(json.dumps(settings))
    assert render_dataset(corpus, tmp_path / "ds", progress=False).count("skipped") == 4
    with pytest.raises(RenderSetupError, match=r"drum_kits \[\] there, \[25\] asked"):
        render_dataset(corpus, tmp_path / "ds", settings=RenderSettings(drum_kits=(25,)), progress=False)


def test_rerun_skips_finished_songs(corpus, tmp_path):
    first = render_dataset(corpus, tmp_path / "ds", progress=False)
    again = render_dataset(corpus, tmp_path / "ds", progress=False)
    assert first.count("rendered") == 4
    assert again.count("rendered") == 0 and again.count("skipped") == 4


def test_killed_render_resumes_and_leaves_nothing_half_done(tmp_path):
    corpus = tmp_path / "midi"
    corpus.mkdir()
    for i in range(6):
        band_song(corpus / f"long{i}.mid", beats=120 + i)  # a minute each
    out = tmp_path / "ds"
    command = [sys.executable, "-m", "wavesep", "render", str(corpus), "--out", str(out), "--workers", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    # Kill it while it writes a song (after at least one is complete), so a half-written song
    # folder exists at the moment of the kill.
    while not (complete_songs(out) and list(out.glob("*/.tmp-*/stems/*"))) and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert list(out.glob("*/.tmp-*")), "the kill should have interrupted a write"
    done_before = complete_songs(out)
    assert 1 <= len(done_before) < 6
    # Whatever the kill interrupted is hidden: every visible song folder is complete.
    visible = [p for p in out.glob("*/*") if not p.name.startswith(".")]
    assert all((p / "metadata.json").exists() for p in visible)

    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"skipped {len(done_before)}" in result.stdout
    assert len(complete_songs(out)) == 6
    assert not [p for p in out.glob("*/.tmp-*")]  # the killed run's temporary is cleaned up
    for song in out.glob("*/*"):
        metadata = json.loads((song / "metadata.json").read_text())
        assert all((song / info["file"]).stat().st_size > 0 for info in metadata["stems"].values())


def test_render_from_index_uses_its_splits_and_skips_its_errors(corpus, tmp_path, capsys):
    (corpus / "bad.mid").write_bytes(os.urandom(64))
    index = tmp_path / "index.jsonl"
    assert main(["midi", "index", str(corpus), "--out", str(index), "--workers", "1"]) == 0
    code = main(["render", str(index), "--out", str(tmp_path / "ds"), "--workers", "1"])
    out = capsys.readouterr().out
    assert code == 0 and "index: corrupt MIDI" in out
    records = [json.loads(line) for line in index.read_text().splitlines()[1:]]
    for record in records:
        if "error" not in record:
            assert (tmp_path / "ds" / record["split"]).is_dir()


def test_wav_format_is_exact_too(corpus, tmp_path):
    import numpy as np
    import soundfile

    summary = render_dataset(corpus, tmp_path / "ds", audio_format="wav", progress=False)
    assert summary.count("rendered") == 4
    for metadata_path in (tmp_path / "ds").glob("*/*/metadata.json"):
        metadata = json.loads(metadata_path.read_text())
        assert metadata["mix"]["file"] == "mix.wav"
        mix = soundfile.read(metadata_path.parent / "mix.wav", dtype="float64")[0]
        stems = [soundfile.read(metadata_path.parent / s["file"], dtype="float64")[0] for s in metadata["stems"].values()]
        assert soundfile.info(metadata_path.parent / "mix.wav").subtype == "PCM_24"
        np.testing.assert_array_equal(mix, np.sum(stems, axis=0))
    with pytest.raises(RenderSetupError, match="unknown audio format 'mp3'"):
        render_dataset(corpus, tmp_path / "ds2", audio_format="mp3", progress=False)


def test_several_soundfonts_are_recorded_and_resumed(corpus, tmp_path, capsys):
    fonts = ["/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2"]
    args = ["render", str(corpus), "--out", str(tmp_path / "ds"), "--workers", "2"]
    assert main(args + ["--soundfont", fonts[0], "--soundfont", fonts[1]]) == 0
    songs = [json.loads(p.read_text()) for p in (tmp_path / "ds").glob("*/*/metadata.json")]
    assert len(songs) == 4 and all(song["soundfonts"] == fonts and "soundfont" not in song for song in songs)
    used = {info["soundfont"] for song in songs for info in song["stems"].values()}
    assert used == set(fonts)
    capsys.readouterr()
    assert main(args + ["--soundfont", fonts[0], "--soundfont", fonts[1]]) == 0
    assert "skipped 4" in capsys.readouterr().out
    # Another list (or one SoundFont) is another dataset: refused, naming the difference.
    assert main(args + ["--soundfont", fonts[0]]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "rendered with other settings" in err and "soundfonts" in err
    assert main(args + ["--soundfont", fonts[0], "--soundfont", fonts[0]]) == 1
    assert f"{fonts[0]}: SoundFont given twice" in capsys.readouterr().err
