"""Rendering benchmark: wavesep against the naive Slakh-style way, in the same run.

The naive way, as Slakh-style scripts do it: split each song into one MIDI file per track and call
the ``fluidsynth`` command-line tool once per stem (it loads the SoundFont every call). Both sides
render dry (no reverb, no chorus), float, 44.1 kHz, on generated songs. Two comparisons:

- *synthesis*: all stems of each song to float audio. wavesep: one pass of the library per song,
  in memory; naive: one CLI call per stem, each writing a float WAV.
- *dataset*: the same deliverable on both sides: stems normalised to -13 LUFS, one common gain to
  -1 dBFS peak, mixture, 24-bit FLAC (or ``--format wav``) files. wavesep: ``wavesep render``; naive: the CLI per stem,
  then the same normalisation, mixture and FLAC writing (wavesep's own code) on the WAVs read
  back. Its exactness is measured on a mixture rendered by one more CLI call (not timed), as
  Slakh-style scripts render the mixture.

Printed: throughput in seconds of song per wall-second (all stems of a song included), and how
exactly the mixture equals the sum of the stems (SNR in dB, read back from the files written).

    python bench/render.py [--songs 16] [--seed 1234] [--workers 1 2] [--format flac|wav]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import mido
import numpy as np
import soundfile

from wavesep.midi.generate import generate_songs
from wavesep.synth.batch import render_dataset
from wavesep.midi.song import read_song
from wavesep.synth.loudness import integrated_loudness
from wavesep.synth.render import Renderer, RenderSettings, _normalise, _synthesize, default_soundfont
from wavesep.synth.writer import write_audio

SPAWN = multiprocessing.get_context("spawn")  # fork is unsafe once this process used libfluidsynth


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    error = np.sum((reference - estimate) ** 2)
    return math.inf if error == 0 else 10 * math.log10(np.sum(reference**2) / error)


def wavesep_dataset(midi_dir: Path, work: Path, workers: int, audio_format: str) -> dict:
    out = work / f"wavesep-{workers}"
    start = time.perf_counter()
    summary = render_dataset(midi_dir, out, workers=workers, audio_format=audio_format, progress=False)
    wall = time.perf_counter() - start
    assert not summary.failed, [o.reason for o in summary.failed]
    return {"audio_s": sum(o.duration_s for o in summary.outcomes), "wall_s": wall, "snr_db": dataset_snr(out)}


def dataset_snr(out: Path) -> float:
    """Worst mixture-vs-sum-of-stems SNR over the songs of a dataset, from the files."""
    snrs = []
    for metadata_path in out.glob("*/*/metadata.json"):
        song = metadata_path.parent
        metadata = json.loads(metadata_path.read_text())
        mix = soundfile.read(song / metadata["mix"]["file"], dtype="float64")[0]
        stems = sum(soundfile.read(song / s["file"], dtype="float64")[0] for s in metadata["stems"].values())
        snrs.append(snr_db(mix, stems))
    return min(snrs)


def wavesep_synthesis(midi_paths: list[Path], workers: int) -> dict:
    with ProcessPoolExecutor(workers, mp_context=SPAWN) as pool:
        list(pool.map(_synthesis_seconds, midi_paths[:workers]))  # start-up and SoundFont load
        start = time.perf_counter()
        audio_s = sum(pool.map(_synthesis_seconds, midi_paths))
        wall = time.perf_counter() - start
    return {"audio_s": audio_s, "wall_s": wall, "snr_db": math.inf}  # the mix is defined as the sum


_RENDERER = None


def _synthesis_seconds(path: Path) -> float:
    global _RENDERER
    if _RENDERER is None:
        _RENDERER = Renderer(settings=RenderSettings())
    song = read_song(path)
    with _RENDERER.synth(len(song.instruments)) as synth:
        raw = _synthesize(song, synth, _RENDERER.settings)[0]
    return raw.shape[-1] / 44100


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


def naive_song(args: tuple[Path, Path, Path, str | None]) -> float:
    """Render one song the naive way, and with ``audio_format`` make its dataset files; returns
    its length in seconds."""
    path, out, soundfont, audio_format = args
    files = split_tracks(path, out)
    for stem in files:
        fluidsynth_cli(stem, stem.with_suffix(".wav"), soundfont)
    parts = [soundfile.read(f.with_suffix(".wav"), dtype="float32")[0].T for f in files]
    length = max(p.shape[-1] for p in parts)
    if audio_format:  # the same normalisation and files as wavesep's
        stems = np.zeros((len(parts), 2, length), np.float32)
        for i, part in enumerate(parts):
            stems[i, :, : part.shape[-1]] = part
        settings = RenderSettings()
        loudness = [integrated_loudness(stem, 44100) for stem in stems]
        keep = [i for i, value in enumerate(loudness) if math.isfinite(value)]
        gains = np.array([10 ** ((settings.stem_lufs - loudness[i]) / 20) for i in keep])
        peaks = np.array([np.abs(stems[i]).max() for i in keep])
        normalised, mix, _ = _normalise(stems[keep], gains, peaks, settings.peak_dbfs)
        for i, stem in zip(keep, normalised):
            write_audio(files[i].with_name(f"{files[i].stem}-stem.{audio_format}"), stem, 44100)
        write_audio(out / f"{path.stem}-dataset-mix.{audio_format}", mix, 44100)
    return length / 44100


def naive_exactness(path: Path, out: Path, soundfont: Path) -> float:
    """SNR of the naive way's separately rendered mixture against the sum of its stems."""
    fluidsynth_cli(path, out / f"{path.stem}-mix.wav", soundfont)
    mix = soundfile.read(out / f"{path.stem}-mix.wav", dtype="float64")[0]
    parts = [soundfile.read(f.with_suffix(".wav"), dtype="float64")[0] for f in sorted(out.glob(f"{path.stem}-track*.mid"))]
    length = min([len(mix)] + [len(p) for p in parts])
    return snr_db(mix[:length], sum(p[:length] for p in parts))


def naive(midi_paths: list[Path], work: Path, workers: int, soundfont: Path, audio_format: str | None) -> dict:
    """The naive way; with ``audio_format``, making the dataset files too."""
    make_dataset = bool(audio_format)
    out = work / f"naive-{workers}-{audio_format}"
    out.mkdir()
    start = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=SPAWN) as pool:
        audio_s = sum(pool.map(naive_song, [(p, out, soundfont, audio_format) for p in midi_paths]))
    wall = time.perf_counter() - start
    # Not timed: the naive side is not charged for rendering its mixture.
    snr = float(np.median([naive_exactness(p, out, soundfont) for p in midi_paths])) if make_dataset else math.nan
    return {"audio_s": audio_s, "wall_s": wall, "snr_db": snr}


def machine() -> str:
    from wavesep.train.trainer import cpu_name  # torch, only when asked

    return f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--songs", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--format", choices=["flac", "wav"], default="flac", help="dataset files (default flac)")
    args = parser.parse_args(argv)
    if shutil.which("fluidsynth") is None:
        raise SystemExit("bench/render.py needs the fluidsynth command: sudo apt-get install fluidsynth")
    soundfont = default_soundfont()
    rows = []
    with tempfile.TemporaryDirectory(prefix="wavesep-bench-") as tmp:
        work = Path(tmp)
        midi_paths = generate_songs(work / "midi", args.songs, args.seed)
        for workers in args.workers:
            rows.append(("synthesis", workers, wavesep_synthesis(midi_paths, workers),
                         naive(midi_paths, work, workers, soundfont, None)))
            rows.append((f"dataset ({args.format})", workers, wavesep_dataset(work / "midi", work, workers, args.format),
                         naive(midi_paths, work, workers, soundfont, args.format)))
    print(f"\nRendering {args.songs} generated songs (seed {args.seed}), {soundfont.name}, 44.1 kHz stereo, dry")
    print(f"machine: {machine()}\n")
    print("| task | workers | method | song audio (s) | wall (s) | song s per wall s | wavesep speed-up | mix = sum of stems, SNR (dB) |")
    print("|---|---|---|---|---|---|---|---|")
    for task, workers, ours, theirs in rows:
        ours_rate, naive_rate = ours["audio_s"] / ours["wall_s"], theirs["audio_s"] / theirs["wall_s"]
        for name, side, rate in (("wavesep", ours, ours_rate), ("fluidsynth CLI per stem", theirs, naive_rate)):
            snr = side["snr_db"]
            snr = "exact (inf)" if math.isinf(snr) else "-" if math.isnan(snr) else f"{snr:.1f}"
            speedup = f"{ours_rate / naive_rate:.1f}x" if side is ours else ""
            print(f"| {task} | {workers} | {name} | {side['audio_s']:.1f} | {side['wall_s']:.2f} | {rate:.1f} "
                  f"| {speedup} | {snr} |")


if __name__ == "__main__":
    main()
