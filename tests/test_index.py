"""The corpus index: records, errors recorded not raised, content-based splits, resumption."""

import collections
import hashlib
import json

import mido
import pytest

from midi_factory import TICKS, band_song, conductor, part, raw_midi, save, scale, varlen
from wavesep.midi.index import SPLITS, build_index, read_index, split_for, summarize


def make_corpus(folder):
    folder.mkdir()
    (folder / "nested").mkdir()
    band_song(folder / "band.mid")
    save(folder / "nested" / "tune.midi", [conductor(), part(0, 24, scale(0, 8))])
    # The same notes re-orchestrated and slower: a duplicate that must share the split.
    save(folder / "tune-copy.mid", [conductor([(0, 700_000)]), part(3, 73, scale(0, 8))])
    band = (folder / "band.mid").read_bytes()
    (folder / "truncated.mid").write_bytes(band[: len(band) // 2])
    (folder / "random.mid").write_bytes(bytes(range(200)))
    raw_midi(folder / "zero-tracks.mid", [])
    raw_midi(folder / "tempo.mid", [b"\x00\xff\x51\x03\x00\x00\x02\x00\x90\x3c\x40\x60\x80\x3c\x40\x00\xff\x2f\x00"])
    huge = varlen(0x0FFFFFFF)  # the largest delta time MIDI allows, twice
    raw_midi(folder / "delta.mid", [b"\x00\x90\x3c\x40" + huge + b"\x80\x3c\x40" + huge + b"\x90\x3e\x40\x00\xff\x2f\x00"])
    never_ends = mido.MidiTrack([mido.Message("note_on", note=60, velocity=80),
                                 mido.Message("note_on", note=62, velocity=80, time=2 * TICKS)])
    save(folder / "never-ends.mid", [conductor(), never_ends])
    (folder / "notes.txt").write_text("not MIDI, not scanned")
    return folder


def test_index_records_good_and_bad_files(tmp_path, capsys):
    corpus = make_corpus(tmp_path / "corpus")
    records = build_index(corpus, tmp_path / "index.jsonl", workers=2, progress=False)
    by_name = {r["path"]: r for r in records}
    assert sorted(by_name) == sorted(["band.mid", "nested/tune.midi", "tune-copy.mid", "truncated.mid",
                                      "random.mid", "zero-tracks.mid", "tempo.mid", "delta.mid",
                                      "never-ends.mid"])
    band = by_name["band.mid"]
    assert band["duration_s"] == 4.0 and band["n_notes"] == 41 and band["split"] in SPLITS
    assert [(i["program"], i["channel"], i["notes"]) for i in band["instruments"]][:2] == [(128, 9, 16), (33, 1, 8)]
    assert by_name["never-ends.mid"]["duration_s"] == 1.0
    assert by_name["truncated.mid"]["error"].startswith("corrupt MIDI")
    assert by_name["random.mid"]["error"].startswith("corrupt MIDI")
    assert by_name["zero-tracks.mid"]["error"] == "no tracks"
    assert "absurd tempo" in by_name["tempo.mid"]["error"]
    assert "ticks" in by_name["delta.mid"]["error"]
    # Duplicates by notes share the split, whatever their file name.
    assert by_name["tune-copy.mid"]["split"] == by_name["nested/tune.midi"]["split"]
    text = summarize(records)
    assert "9 files: 4 usable" in text and "5 with errors" in text and "errors by reason" in text
    assert "1 files share their notes" in text
    header, again = read_index(tmp_path / "index.jsonl")
    assert header["root"] == str(corpus.resolve()) and again == records


def test_splits_are_deterministic_and_balanced():
    counts = collections.Counter(split_for(hashlib.sha256(str(i).encode()).hexdigest()) for i in range(5000))
    assert counts["train"] / 5000 == pytest.approx(0.8, abs=0.03)
    assert counts["valid"] / 5000 == pytest.approx(0.1, abs=0.02)
    assert split_for("0" * 64) == "train" and split_for("f" * 64) == "test"


def test_interrupted_scan_resumes(tmp_path, monkeypatch):
    corpus = make_corpus(tmp_path / "corpus")
    out = tmp_path / "index.jsonl"
    build_index(corpus, out, progress=False)
    # Pretend a scan was killed half-way: the index is gone, a partial log remains.
    lines = out.read_text().splitlines()[1:]
    out.unlink()
    (tmp_path / "index.jsonl.partial").write_text("\n".join(lines[:4]) + "\n{\"torn")
    seen = []
    import wavesep.midi.index as index_module

    original = index_module.index_file
    monkeypatch.setattr(index_module, "index_file", lambda path, limits: seen.append(path) or original(path, limits))
    records = build_index(corpus, out, progress=False)
    assert len(records) == 9 and len(seen) == 5
    assert not (tmp_path / "index.jsonl.partial").exists()
    assert [json.loads(line) for line in out.read_text().splitlines()[1:]] == records
