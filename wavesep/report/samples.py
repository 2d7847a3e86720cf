"""A static listening page for separation results, like a paper's samples page.

Layout written (one folder, relative links only, so it can be zipped or hosted as it is)::

    OUT/index.html                              # inline CSS, no scripts, no external URLs
    OUT/<nn>-<song>/mixture.flac, .png
    OUT/<nn>-<song>/<mm>-<stem>-reference.flac, .png
    OUT/<nn>-<song>/<mm>-<stem>-estimate.flac, .png

Audio is 16-bit FLAC: lossless, so a listener hears the separation's artifacts and no codec's
(Vorbis would add its own), and played by Chromium, Firefox and Safari (11+). Spectrograms are
log-magnitude STFTs on a log-frequency axis with an absolute dB scale (0 dB = a full-scale sine),
so a reference and its estimate read on the same scale; the PNG is written with zlib and struct,
which keeps matplotlib and Pillow out of the dependencies for one small image format.

The page is built in a hidden folder beside OUT and renamed into place, so a crash never leaves a
complete-looking page; a re-run replaces the previous page.
"""

from __future__ import annotations

import html
import math
import os
import secrets
import shutil
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
import soundfile

from wavesep import __version__
from wavesep.instruments import slug

INDEX = "index.html"
AUDIO_SUFFIX = ".flac"
GENERATOR = "wavesep samples page"  # in a <meta>: marks a folder this module may overwrite
SILENT_REFERENCE = "silent reference"  # tooltip of a score that is NaN
MISSING = "\u2014"  # em dash

SPEC_WIDTH = 400  # pixels; every spectrogram has the same size, so rows line up
SPEC_HEIGHT = 128
SPEC_N_FFT = 2048  # 21.5 Hz bins at 44.1 kHz: enough to tell bass notes apart
SPEC_MIN_HZ = 40.0  # bottom of the log-frequency axis
SPEC_DB_RANGE = 80.0  # dB below full scale shown; quieter is black
SPEC_MAX_FRAMES = 4 * SPEC_WIDTH  # bounds STFT memory on whole songs; pooled down to the width


@dataclass
class SampleSong:
    """One song of the page: its mixture, the stems the model estimated, and their scores."""

    name: str  # song id, e.g. "gen-7-00012"
    sample_rate: int
    mixture: np.ndarray  # (channels, time) float32
    references: dict[str, np.ndarray]  # stem -> (channels, time); a stem absent in the song is missing
    estimates: dict[str, np.ndarray]  # stem -> (channels, time)
    scores: dict[str, dict[str, float]]  # stem -> {"SI-SDR": dB, ...}; NaN (or None): silent reference
    excerpt: tuple[float, float] | None = None  # (start_s, end_s) shown; None: the whole song

    def stems(self) -> list[str]:
        """Estimated stems first, in the model's order, then any that only have a reference."""
        return list(dict.fromkeys([*self.estimates, *self.references]))

    def excerpt_slice(self) -> slice:
        """The samples shown, clipped to the mixture; an empty excerpt is an error."""
        length = as_audio(self.mixture).shape[-1]
        if self.excerpt is None:
            return slice(0, length)
        start_s, end_s = self.excerpt
        start = min(max(round(start_s * self.sample_rate), 0), length)
        end = min(max(round(end_s * self.sample_rate), start), length)
        if end == start:
            raise ValueError(f"song {self.name!r}: excerpt {self.excerpt} holds no audio ({length} samples)")
        return slice(start, end)


@dataclass
class Clip:
    """One player on the page: its audio and spectrogram files, relative to the page."""

    audio: str
    image: str
    duration_s: float


# --- audio and images -----------------------------------------------------------------------------


def as_audio(audio) -> np.ndarray:
    """(time,) or (channels, time), array-like -> (channels, time) float32."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or audio.shape[-1] == 0:
        raise ValueError(f"audio must be (channels, time) with some time, got shape {audio.shape}")
    return audio


def write_audio(path: Path, audio: np.ndarray, sample_rate: int):
    """Write (channels, time) audio as 16-bit FLAC. Clipped to [-1, 1] first: libsndfile would wrap
    an over-range estimate around instead of clipping it."""
    pcm = np.clip(np.nan_to_num(audio), -1.0, 1.0).T  # (time, channels)
    soundfile.write(path, pcm, sample_rate, format="FLAC", subtype="PCM_16")


def spectrogram_db(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log-magnitude STFT of the channel mean, pooled to (SPEC_HEIGHT, SPEC_WIDTH), low notes at the
    bottom, in dB re a full-scale sine."""
    mono = audio.mean(axis=0)  # (time,)
    mono = np.pad(mono, (0, max(0, SPEC_N_FFT - mono.size)))
    hop = max(SPEC_N_FFT // 4, math.ceil((mono.size - SPEC_N_FFT) / (SPEC_MAX_FRAMES - 1)))
    frames = np.lib.stride_tricks.sliding_window_view(mono, SPEC_N_FFT)[::hop]  # (frames, n_fft)
    window = np.hanning(SPEC_N_FFT).astype(np.float32)
    magnitude = np.abs(np.fft.rfft(frames * window, axis=-1)).T  # (bins, frames)
    magnitude *= 2 / window.sum()  # a full-scale sine peaks at 1
    pooled = _pool_columns(_pool_log_frequency(magnitude, sample_rate), SPEC_WIDTH)
    return 20 * np.log10(np.maximum(pooled, 1e-10))[::-1]  # (height, width), row 0 = top = high


def _pool_log_frequency(magnitude: np.ndarray, sample_rate: int) -> np.ndarray:
    """(bins, frames) -> (SPEC_HEIGHT, frames): the loudest bin of each log-spaced band, or the bin
    under it where a band is narrower than a bin (np.maximum.reduceat does both)."""
    bin_hz = sample_rate / SPEC_N_FFT
    edges_hz = np.geomspace(SPEC_MIN_HZ, sample_rate / 2, SPEC_HEIGHT + 1)
    starts = np.minimum((edges_hz[:-1] / bin_hz).astype(int), magnitude.shape[0] - 1)
    return np.maximum.reduceat(magnitude, starts, axis=0)


def _pool_columns(image: np.ndarray, width: int) -> np.ndarray:
    """(rows, frames) -> (rows, width): the loudest frame of each column, or frames repeated when
    there are fewer than columns."""
    frames = image.shape[1]
    if frames <= width:
        return image[:, np.arange(width) * frames // width]
    starts = np.arange(width) * frames // width
    return np.maximum.reduceat(image, starts, axis=1)


# Matplotlib's "magma" sampled at nine points: dark for silence, perceptually even in between.
_MAGMA = np.array([(0, 0, 4), (28, 16, 68), (79, 18, 123), (129, 37, 129), (181, 54, 122),
                   (229, 80, 100), (251, 135, 97), (254, 194, 135), (252, 253, 191)], dtype=np.float64)


def colorize(db: np.ndarray) -> np.ndarray:
    """(height, width) dB -> (height, width, 3) uint8, [-SPEC_DB_RANGE, 0] dB across the colormap."""
    level = np.clip(db / SPEC_DB_RANGE + 1, 0, 1)
    anchors = np.linspace(0, 1, len(_MAGMA))
    channels = [np.interp(level, anchors, _MAGMA[:, c]) for c in range(3)]
    return np.round(np.stack(channels, axis=-1)).astype(np.uint8)


def encode_png(rgb: np.ndarray) -> bytes:
    """(height, width, 3) uint8 -> PNG bytes: 8-bit RGB, rows unfiltered (on these spectrograms
    the "Sub" and "Up" filters compressed 10-40% worse than none)."""
    height, width, _ = rgb.shape
    rows = rgb.reshape(height, width * 3)
    filtered = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1)  # filter byte 0 first

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit, RGB, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(filtered.tobytes(), 9)) + chunk(b"IEND", b""))


def write_clip(folder: Path, stem: str, audio, sample_rate: int, shown: slice) -> Clip:
    """Write folder/<stem>.flac and .png for the shown part of audio; return their relative paths."""
    audio = as_audio(audio)[:, shown]
    write_audio(folder / f"{stem}{AUDIO_SUFFIX}", audio, sample_rate)
    (folder / f"{stem}.png").write_bytes(encode_png(colorize(spectrogram_db(audio, sample_rate))))
    return Clip(audio=f"{folder.name}/{stem}{AUDIO_SUFFIX}", image=f"{folder.name}/{stem}.png",
                duration_s=audio.shape[-1] / sample_rate)


def write_song_clips(root: Path, index: int, song: SampleSong) -> dict[str, Clip]:
    """Write a song's players into root/<nn>-<song>/; keys "mixture", "<stem>/reference",
    "<stem>/estimate" (present only where the song has that audio)."""
    folder = root / f"{index:02d}-{slug(song.name)[:48] or 'song'}"  # the index keeps names unique
    folder.mkdir()
    shown = song.excerpt_slice()
    clips = {"mixture": write_clip(folder, "mixture", song.mixture, song.sample_rate, shown)}
    for number, stem in enumerate(song.stems()):
        base = f"{number:02d}-{slug(stem)[:32] or 'stem'}"
        for role, audio in (("reference", song.references.get(stem)), ("estimate", song.estimates.get(stem))):
            if audio is not None:
                clips[f"{stem}/{role}"] = write_clip(folder, f"{base}-{role}", audio, song.sample_rate, shown)
    return clips


# --- scores -------------------------------------------------------------------------------------


def _finite_or_nan(value) -> float:
    return math.nan if value is None else float(value)


def score_means(songs: list[SampleSong]) -> dict[str, dict[str, tuple[float, int]]]:
    """stem -> metric -> (mean over the songs with a value, how many songs that is); NaN (a silent
    reference) is left out, and a mean over no songs is NaN."""
    values: dict[str, dict[str, list[float]]] = {}
    for song in songs:
        for stem, metrics in song.scores.items():
            for metric, value in metrics.items():
                values.setdefault(stem, {}).setdefault(metric, []).append(_finite_or_nan(value))
    means = {}
    for stem, metrics in values.items():
        means[stem] = {}
        for metric, scores in metrics.items():
            kept = [score for score in scores if not math.isnan(score)]
            means[stem][metric] = (sum(kept) / len(kept) if kept else math.nan, len(kept))
    return means


def format_score(value) -> str:
    """A score as HTML: two decimals, or a dash with a tooltip for NaN (the reference is silent)."""
    value = _finite_or_nan(value)
    if math.isnan(value):
        return f'<span class="nan" title="{SILENT_REFERENCE}">{MISSING}</span>'
    return f"{value:.2f}"


# --- HTML ---------------------------------------------------------------------------------------


def _text(text: str) -> str:
    return html.escape(str(text), quote=True)


def _link(path: str) -> str:
    """A relative file path as an escaped URL attribute value."""
    return _text(quote(path))


def _player(clip: Clip | None, label: str) -> str:
    if clip is None:
        return f'<td class="absent">{MISSING} <small>no {_text(label)} in this song</small></td>'
    return (f'<td><audio controls preload="metadata" src="{_link(clip.audio)}"></audio>'
            f'<img src="{_link(clip.image)}" width="{SPEC_WIDTH}" height="{SPEC_HEIGHT}" '
            f'alt="spectrogram: {_text(label)}"></td>')


def _scores_cell(metrics: dict[str, float]) -> str:
    if not metrics:
        return f'<td class="scores">{MISSING}</td>'
    items = "".join(f'<dt>{_text(metric)}</dt><dd data-metric="{_text(metric)}">{format_score(value)}</dd>'
                    for metric, value in metrics.items())
    return f'<td class="scores"><dl>{items}</dl></td>'


def _song_section(index: int, song: SampleSong, clips: dict[str, Clip]) -> str:
    duration = clips["mixture"].duration_s
    shown = f"{duration:.1f} s"
    if song.excerpt is not None:
        start = song.excerpt_slice().start / song.sample_rate
        shown = f"excerpt {start:.1f}\u2013{start + duration:.1f} s"
    mixture = _player(clips["mixture"], "mixture")
    rows = [f'<tr class="mixture"><th>mixture</th>{mixture}<td></td><td></td></tr>']
    for stem in song.stems():
        rows.append(f'<tr class="stem"><th>{_text(stem)}</th>'
                    f'{_player(clips.get(f"{stem}/reference"), f"{stem} reference")}'
                    f'{_player(clips.get(f"{stem}/estimate"), f"{stem} estimate")}'
                    f'{_scores_cell(song.scores.get(stem, {}))}</tr>')
    return (f'<section id="song-{index:02d}"><h2>{_text(song.name)}</h2>'
            f'<p class="meta">{shown}, {song.sample_rate} Hz</p>'
            '<table class="song"><tr><th></th><th>reference</th><th>estimate</th><th>scores</th></tr>'
            + "".join(rows) + "</table></section>")


def _summary(songs: list[SampleSong]) -> str:
    means = score_means(songs)
    if not means:
        return ""
    metrics = list(dict.fromkeys(metric for per_stem in means.values() for metric in per_stem))
    head = "".join(f"<th>{_text(metric)}</th>" for metric in metrics)
    rows = []
    for stem, per_stem in means.items():
        cells = []
        for metric in metrics:
            mean, count = per_stem.get(metric, (math.nan, 0))
            cells.append(f'<td data-metric="{_text(metric)}" title="mean of {count} song(s)">'
                         f"{format_score(mean)}</td>")
        rows.append(f"<tr><th>{_text(stem)}</th>{''.join(cells)}</tr>")
    return (f'<table class="summary"><caption>Mean per stem over {len(songs)} song(s), '
            f"silent references left out</caption><tr><th>stem</th>{head}</tr>{''.join(rows)}</table>")


def _paragraphs(text: str) -> str:
    """Plain text, blank lines between paragraphs, as escaped <p> elements."""
    blocks = [block.strip() for block in text.split("\n\n")]
    return "".join(f"<p>{_text(block)}</p>" for block in blocks if block)


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{padding:.3em .6em;vertical-align:top;text-align:left}
table.summary td,table.summary th{border:1px solid #ccc}table.summary td{text-align:right}
table.song tr+tr{border-top:1px solid #ddd}audio{display:block;width:100%}
img{display:block;margin-top:.3em;max-width:100%;height:auto}
dl{display:grid;grid-template-columns:auto auto;gap:0 .8em;margin:0}dd{margin:0;text-align:right}
.nan{cursor:help}.absent,.meta,caption{color:#777}.notes,.model{white-space:pre-line}
"""


def render_page(songs: list[SampleSong], clips: list[dict[str, Clip]], title: str,
                model_description: str, notes: str) -> str:
    """The whole page as one string: inline CSS, no scripts, links relative to the page."""
    contents = "".join(f'<li><a href="#song-{index:02d}">{_text(song.name)}</a></li>'
                       for index, song in enumerate(songs))
    sections = "".join(_song_section(index, song, song_clips)
                       for index, (song, song_clips) in enumerate(zip(songs, clips)))
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="{GENERATOR}">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            '<link rel="icon" href="data:,">'  # no favicon request (a 404 on a hosted page)
            f"<title>{_text(title)}</title><style>{_CSS}</style></head><body>"
            f'<h1>{_text(title)}</h1><div class="model">{_paragraphs(model_description)}</div>'
            f'<div class="notes">{_paragraphs(notes)}</div>{_summary(songs)}'
            f'<ul class="contents">{contents}</ul>{sections}'
            f'<footer class="meta">wavesep {__version__}</footer></body></html>\n')


# --- writing the folder -------------------------------------------------------------------------


def _check_replaceable(out_dir: Path):
    """Refuse to replace anything but an empty folder or an earlier samples page: replacing deletes."""
    if not out_dir.exists() and not out_dir.is_symlink():
        return
    if not out_dir.is_dir() or out_dir.is_symlink():
        raise FileExistsError(f"{out_dir} exists and is not a folder")
    index = out_dir / INDEX
    is_page = index.is_file() and GENERATOR in index.read_text(errors="replace")[:2000]
    if any(out_dir.iterdir()) and not is_page:
        raise FileExistsError(f"{out_dir} holds files that are not a samples page; not replacing it")


def _move_into_place(built: Path, out_dir: Path):
    """Rename built onto out_dir; an earlier page is renamed aside first and deleted after."""
    if not out_dir.exists():
        os.rename(built, out_dir)
        return
    old = built.with_name(built.name + "-old")
    os.rename(out_dir, old)
    os.rename(built, out_dir)
    shutil.rmtree(old)


def write_samples_page(out_dir, songs: list[SampleSong], title: str, model_description: str,
                       notes: str = "") -> Path:
    """Write out_dir/index.html with audio and spectrogram files beside it; return the index path.

    The page is built in a hidden folder beside out_dir and renamed into place at the end, so an
    interrupted run leaves the previous page (or none), never a partial one. out_dir may be missing,
    empty, or an earlier samples page, which is replaced.
    """
    out_dir = Path(out_dir).absolute()
    _check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    built = out_dir.with_name(f".{out_dir.name}.tmp-{secrets.token_hex(4)}")
    built.mkdir()  # not mkdtemp: its 0700 mode would hide the page from a web server
    try:
        clips = [write_song_clips(built, index, song) for index, song in enumerate(songs)]
        page = render_page(songs, clips, title, model_description, notes)
        (built / INDEX).write_text(page, encoding="utf-8")  # last: a page without it is not done
        _move_into_place(built, out_dir)
    finally:
        shutil.rmtree(built, ignore_errors=True)  # gone already unless something failed
    return out_dir / INDEX
