"""The floor tests/test_default_model.py holds a model to: its mean SI-SDRi over the stems of 20 s
of a procedural song it never trained on (seed 2026), less 1 dB. Prints the floor in dB.

    python scripts/floor.py WEIGHTS
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from wavesep.data.dataset import load_songs
from wavesep.evaluate import model_stem_set, song_audio
from wavesep.metrics import si_sdr
from wavesep.midi.generate import generate_songs
from wavesep.separate import Separator
from wavesep.synth.batch import render_dataset

MARGIN_DB = 1.0


def main(weights: str) -> float:
    separator = Separator(weights)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_songs(root / "midi", 1, 2026)
        render_dataset(root / "midi", root / "dataset", workers=1, progress=False)
        song = load_songs(sorted(p for p in (root / "dataset").iterdir() if p.is_dir()))[0]
        mixture, references = song_audio(song, model_stem_set(separator, None))
    seconds = 20 * song.sample_rate
    mixture, references = mixture[:, :seconds], references[..., :seconds]
    stems = separator.separate(mixture, song.sample_rate)
    gains = [si_sdr(stems[name], reference) - si_sdr(mixture, reference)
             for name, reference in zip(separator.stems, references) if np.any(reference)]
    return round(float(np.mean(gains)) - MARGIN_DB, 2)


if __name__ == "__main__":
    print(main(sys.argv[1]))
