"""MIDI from music21's bundled corpus, re-orchestrated."""

import pytest

from wavesep.cli import main
from wavesep.midi.song import read_song

pytest.importorskip("music21")


def test_bach_chorales_orchestrated(tmp_path, capsys):
    assert main(["midi", "music21", "--out", str(tmp_path), "--composer", "bach", "--limit", "3",
                 "--programs", "73,oboe,violin,33"]) == 0
    assert "wrote 3 MIDI files" in capsys.readouterr().out
    files = sorted(tmp_path.glob("*.mid"))
    assert len(files) == 3
    for path in files:
        song = read_song(path)
        assert song.duration_s > 10
        programs = [i.program for i in song.instruments]
        assert programs[:4] == [73, 68, 40, 33][: len(programs)]
        assert len({i.channel for i in song.instruments}) == len(song.instruments)  # no shared channel
    # A re-run keeps what is there.
    assert main(["midi", "music21", "--out", str(tmp_path), "--composer", "bach", "--limit", "3"]) == 0


def test_a_collection_gives_one_file_per_score_and_respects_the_limit(tmp_path):
    from wavesep.midi.music21_corpus import export_corpus

    written, failed = export_corpus(tmp_path, composer="essenFolksong", limit=5)
    assert len(written) == 5 and sorted(tmp_path.iterdir()) == sorted(written)  # no temporaries left
    assert all(path.name.startswith("essenfolksong-") for path in written)
    assert all(read_song(path).n_notes > 0 for path in written)
