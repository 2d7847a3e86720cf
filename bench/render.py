"""Rendering benchmark: wavesep against the naive Slakh-style way, in the same run.

The naive way, as Slakh-style scripts do it: split each song into one MIDI file per track, call
the ``fluidsynth`` command-line tool once per stem (it loads the SoundFont every call), and once
more for the mixture. Both sides render dry (no reverb, no chorus), float, 44.1 kHz.

Printed: throughput in seconds of song per wall-second (all stems of a song included; the naive
side is *not* charged for its mixture call), and how exactly the mixture equals the sum of the
stems (SNR in dB, read back from the files each side wrote).

    python bench/render.py [--songs 8] [--seed 1234] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mido
import numpy as np
import soundfile

from wavesep.midi.generate import generate_songs
from wavesep.synth.batch import render_dataset
from wavesep.synth.render import default_soundfont


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    error = np.sum((reference - estimate) ** 2)
    return math.inf if error == 0 else 10 * math.log10(np.sum(reference**2) / error)


def wavesep_side(midi_dir: Path, work: Path, workers: int) -> dict:
    out = work / f"wavesep-{workers}"
    start = time.perf_counter()
    summary = render_dataset(midi_dir, out, workers=workers, progress=False)
    wall = time.perf_counter() - start
    assert not summary.failed, [o.reason for o in summary.failed]
    audio_s = sum(o.duration_s for o in summary.outcomes)
    snrs = []
    for metadata_path in out.glob("*/*/metadata.json"):
        song = metadata_path.parent
        metadata = json.loads(metadata_path.read_text())
        mix = soundfile.read(song / "mix.flac", dtype="float64")[0]
        stems = sum(soundfile.read(song / s["file"], dtype="float64")[0] for s in metadata["stems"].values())
        snrs.append(snr_db(mix, stems))
    return {"audio_s": audio_s, "wall_s": wall, "snr_db": min(snrs)}


def split_tracks(path: Path, out: Path) -> list[Path]:
    """One MIDI file per track with notes, each with the tempo map: Slakh's per-instrument MIDI."""
    midi = mido.MidiFile(path)
    conductor = [t for t in midi.tracks if not any(m.type == "note_on" for m in t)]
    files = []
    for index, track in enumerate(midi.tracks):
        if not any(m.type == "note_on" for m in track):
            continue
        single = mido.MidiFile(type=1, ticks_per_beat=midi.ticks_per_beat)
        single.tracks.extend(conductor + [track])
        files.append(out / f"{path.stem}-track{index}.mid")
        single.save(files[-1])
    return files


def fluidsynth_cli(midi: Path, wav: Path, soundfont: Path):
    subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-r", "44100", "-O", "float",
                    "-T", "wav", "-F", str(wav), str(soundfont), str(midi)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def naive_side(midi_paths: list[Path], work: Path, workers: int, soundfont: Path) -> dict:
    out = work / f"naive-{workers}"
    out.mkdir()
    stems = {path: split_tracks(path, out) for path in midi_paths}
    jobs = [(stem, stem.with_suffix(".wav")) for files in stems.values() for stem in files]
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda job: fluidsynth_cli(*job, soundfont), jobs))
    wall = time.perf_counter() - start
    audio_s, snrs = 0.0, []
    for path, files in stems.items():
        fluidsynth_cli(path, out / f"{path.stem}-mix.wav", soundfont)  # the mixture, not timed
        mix = soundfile.read(out / f"{path.stem}-mix.wav", dtype="float64")[0]
        parts = [soundfile.read(f.with_suffix(".wav"), dtype="float64")[0] for f in files]
        length = min([len(mix)] + [len(p) for p in parts])
        snrs.append(snr_db(mix[:length], sum(p[:length] for p in parts)))
        audio_s += len(mix) / 44100
    return {"audio_s": audio_s, "wall_s": wall, "snr_db": float(np.median(snrs))}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    if shutil.which("fluidsynth") is None:
        raise SystemExit("bench/render.py needs the fluidsynth command: sudo apt-get install fluidsynth")
    soundfont = default_soundfont()
    with tempfile.TemporaryDirectory(prefix="wavesep-bench-") as tmp:
        work = Path(tmp)
        midi_paths = generate_songs(work / "midi", args.songs, args.seed)
        rows = []
        for workers in args.workers:
            ours = wavesep_side(work / "midi", work, workers)
            naive = naive_side(midi_paths, work, workers, soundfont)
            rows.append((workers, ours, naive))
    print(f"\nRendering {args.songs} generated songs (seed {args.seed}), {soundfont.name}, 44.1 kHz, dry")
    print(f"machine: {machine()}\n")
    print("| workers | method | song audio (s) | wall (s) | song s per wall s | speed-up | mix vs sum of stems SNR (dB) |")
    print("|---|---|---|---|---|---|---|")
    for workers, ours, naive in rows:
        ours_rate, naive_rate = ours["audio_s"] / ours["wall_s"], naive["audio_s"] / naive["wall_s"]
        for name, side, rate in (("wavesep", ours, ours_rate), ("fluidsynth CLI per stem", naive, naive_rate)):
            snr = "exact (inf)" if math.isinf(side["snr_db"]) else f"{side['snr_db']:.1f}"
            speedup = f"{rate / naive_rate:.1f}x"
            print(f"| {workers} | {name} | {side['audio_s']:.1f} | {side['wall_s']:.2f} | {rate:.1f} | {speedup} | {snr} |")


if __name__ == "__main__":
    main()
