"""Write rendered songs as a stem dataset, in parallel, resumably, and atomically.

Layout::

    DATASET/<split>/<song-id>/mix.flac
    DATASET/<split>/<song-id>/stems/<stem-id>.flac      # stem-id = instrument id, 't01-c09-p128'
    DATASET/<split>/<song-id>/metadata.json             # written last: its presence marks a song done

Audio is 24-bit FLAC (or 24-bit WAV, faster to write, ~3x bigger): stems are rounded to the 24-bit
grid before the mixture is summed from them, so the mixture read back equals the sum of the stems
read back exactly. A song is written into a
hidden temporary folder and renamed into place, so an interrupted run never leaves a song that
looks complete; a re-run skips songs whose folder exists.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from wavesep import __version__
from wavesep.instruments import slug
from wavesep.midi.index import split_for
from wavesep.midi.song import MidiError, ParseLimits, Song, read_song
from wavesep.synth import fluidsynth
from wavesep.synth.loudness import integrated_loudness, peak_db
from wavesep.synth.render import PCM_SCALE, RenderedSong, Renderer, RenderSettings

FORMAT = "wavesep-stems/1"
METADATA = "metadata.json"
_TMP_PREFIX = ".tmp-"


def song_id(song: Song) -> str:
    """Folder name of a song: its file name and the start of its content hash."""
    return f"{slug(song.path.stem)[:48] or 'song'}-{song.sha256[:10]}"


AUDIO_FORMATS = ("flac", "wav")


def write_audio(path: Path, audio: np.ndarray, sample_rate: int):
    """Write (channels, time) audio on the 24-bit grid (see render.py) losslessly, as 24-bit FLAC
    or WAV after the path's suffix."""
    pcm = np.empty(audio.shape[::-1], np.int32)  # (time, channels), C order as libsndfile wants
    np.multiply(audio.T, PCM_SCALE * 256, out=pcm, casting="unsafe")  # exact: integer values
    # (x 256: libsndfile takes int32 as left-aligned, the 24 significant bits on top)
    soundfile.write(path, pcm, sample_rate, format=path.suffix[1:].upper(), subtype="PCM_24")


def song_metadata(rendered: RenderedSong, split: str, soundfonts: list[Path], settings: RenderSettings,
                  audio_format: str = "flac") -> dict:
    song = rendered.song
    stems = {}
    for instrument, info in zip(rendered.instruments, rendered.stem_info):
        stems[instrument.id] = {
            "file": f"stems/{instrument.id}.{audio_format}",
            "track": instrument.track,
            "channel": instrument.channel,
            "program": instrument.program,
            "name": instrument.name,
            "class": instrument.family,
            "is_drum": instrument.is_drum,
            **info,
        }
    return {
        "format": FORMAT,
        "song_id": song_id(song),
        "split": split,
        "source": {"path": str(song.path.resolve()), "sha256": song.sha256, "notes_hash": song.notes_hash},
        **soundfont_record(soundfonts),
        "sample_rate": rendered.sample_rate,
        "channels": 2,
        "num_frames": rendered.n_frames,
        "duration_s": rendered.duration_s,
        "mix": {
            "file": f"mix.{audio_format}",
            "gain_db": rendered.mix_gain_db,
            "loudness_lufs": integrated_loudness(rendered.mix, rendered.sample_rate),
            "peak_dbfs": peak_db(rendered.mix),
        },
        "stems": stems,
        "dropped": rendered.dropped,
        "render": {
            "wavesep": __version__,
            "synthesizer": f"fluidsynth {fluidsynth.version()}",
            "effects": "none (dry: FluidSynth's reverb and chorus belong to no stem)",
            **asdict(settings),
        },
    }


def write_song(rendered: RenderedSong, split_dir: Path, metadata: dict) -> Path:
    """Write one song atomically into ``split_dir/<song-id>``; returns that folder."""
    final = split_dir / metadata["song_id"]
    tmp = split_dir / f"{_TMP_PREFIX}{metadata['song_id']}@{socket.gethostname()}@{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "stems").mkdir(parents=True)
    try:
        for stem, info in zip(rendered.stems, metadata["stems"].values()):
            write_audio(tmp / info["file"], stem, rendered.sample_rate)
        write_audio(tmp / metadata["mix"]["file"], rendered.mix, rendered.sample_rate)
        (tmp / METADATA).write_text(json.dumps(metadata, indent=1))
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / METADATA).exists():  # not a concurrent shard that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def remove_stale_temporaries(dataset: Path):
    """Delete this host's temporary song folders left by killed runs (other hosts' are kept)."""
    host = socket.gethostname()
    for tmp in dataset.glob(f"*/{_TMP_PREFIX}*@*@*"):
        _, tmp_host, pid = tmp.name.rsplit("@", 2)  # song ids and host names have no '@'
        if tmp_host == host and pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


DATASET_SETTINGS = "wavesep-dataset.json"


def soundfont_record(soundfonts: list[Path]) -> dict:
    """How metadata names the SoundFonts: ``soundfont``, a path, for one; ``soundfonts``, a list,
    for several (each stem then names its own)."""
    paths = [str(path) for path in soundfonts]
    return {"soundfont": paths[0]} if len(paths) == 1 else {"soundfonts": paths}


LATER_SETTINGS = ("drum_kits",)
"""Render settings added after datasets were recorded: those datasets were rendered with their default."""


def _as_stored(settings: dict) -> dict:
    """Settings as the dataset's settings file holds them (tuples are lists there), to compare with it."""
    return json.loads(json.dumps(settings))


def check_dataset_settings(dataset: Path, soundfonts: list[Path], settings: RenderSettings, audio_format: str):
    """Record how a dataset is rendered, or refuse to add songs rendered differently to it.

    Raises:
        ValueError: the dataset was rendered with other settings; naming them.
    """
    render = {k: v for k, v in asdict(settings).items() if k != "max_stem_seconds"}  # a cap, not a setting
    wanted = _as_stored({**soundfont_record([path.resolve() for path in soundfonts]), "audio_format": audio_format,
                         **render})
    path = dataset / DATASET_SETTINGS
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(wanted, indent=1))
        os.replace(tmp, path)
        return
    try:
        recorded = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: unreadable ({error})") from None
    defaults = _as_stored(asdict(RenderSettings()))
    for key in LATER_SETTINGS:  # a dataset recorded before a setting existed had its default
        recorded.setdefault(key, defaults[key])
    keys = set(wanted) | ({"soundfont", "soundfonts"} & set(recorded))
    different = [f"{key} {recorded.get(key)!r} there, {wanted.get(key)!r} asked" for key in sorted(keys)
                 if recorded.get(key) != wanted.get(key)]
    if different:
        raise ValueError(f"{dataset} was rendered with other settings ({'; '.join(different)}): "
                         "render into another folder")


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Job:
    """One MIDI file to render; ``split`` is None when the song's notes decide it."""

    path: Path
    split: str | None = None


@dataclass
class Outcome:
    """What became of one job."""

    path: Path
    status: str  # "rendered", "skipped" (already done) or "failed"
    reason: str = ""
    song_id: str = ""
    duration_s: float = 0.0
    n_stems: int = 0
    seconds: float = 0.0  # wall time spent


@dataclass
class WorkerState:
    renderer: Renderer
    out: Path
    settings: RenderSettings
    limits: ParseLimits = field(default_factory=ParseLimits)
    audio_format: str = "flac"


_STATE: WorkerState | None = None


def init_worker(soundfonts: list[Path], out: Path, settings: RenderSettings, limits: ParseLimits,
                audio_format: str = "flac"):
    """Per process: load the SoundFonts once."""
    global _STATE
    _STATE = WorkerState(Renderer(soundfonts, settings), out, settings, limits, audio_format)


def run_job(job: Job) -> Outcome:
    """Parse, render and write one song; never raises for a bad song."""
    state = _STATE
    start = time.perf_counter()
    try:
        song = read_song(job.path, state.limits)
        split = job.split or split_for(song.notes_hash)
        identifier = song_id(song)
        split_dir = state.out / split
        if (split_dir / identifier / METADATA).exists():
            return Outcome(job.path, "skipped", "already rendered", identifier)
        rendered = state.renderer.render(song)
        metadata = song_metadata(rendered, split, state.renderer.soundfonts, state.settings, state.audio_format)
        split_dir.mkdir(parents=True, exist_ok=True)
        write_song(rendered, split_dir, metadata)
        return Outcome(job.path, "rendered", "", identifier, rendered.duration_s, len(rendered.instruments),
                       time.perf_counter() - start)
    except (MidiError, ValueError) as error:
        return Outcome(job.path, "failed", str(error), seconds=time.perf_counter() - start)
    except OSError as error:
        return Outcome(job.path, "failed", f"cannot write: {error}", seconds=time.perf_counter() - start)
    except Exception as error:  # one song's surprise must not stop a corpus
        return Outcome(job.path, "failed", f"{type(error).__name__}: {error}",
                       seconds=time.perf_counter() - start)
