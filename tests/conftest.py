"""Session fixtures: a tiny corpus rendered once, shared by the data tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_helpers import SONGS, write_midi

from wavesep.data.dataset import load_songs
from wavesep.midi.index import INDEX_FORMAT, build_index


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """MIDI files, an index sending "delta" to valid and the rest to train, and the rendered dataset."""
    from wavesep.synth.batch import render_dataset

    root = tmp_path_factory.mktemp("corpus")
    midi_dir = root / "midi"
    midi_dir.mkdir()
    paths = {name: write_midi(midi_dir / f"{name}.mid", *spec) for name, spec in SONGS.items()}
    index = root / "index.jsonl"
    records = build_index(midi_dir, index, progress=False)
    for record in records:
        record["split"] = "valid" if Path(record["path"]).stem == "delta" else "train"
    header = {"format": INDEX_FORMAT, "root": str(midi_dir)}
    index.write_text("".join(json.dumps(item) + "\n" for item in [header, *records]))
    dataset = root / "dataset"
    summary = render_dataset(index, dataset, workers=1, progress=False)
    assert not summary.failed, summary.text()
    return {"midi": paths, "index": index, "dataset": dataset}


@pytest.fixture(scope="session")
def train_songs(corpus):
    return load_songs(corpus["dataset"] / "train")
