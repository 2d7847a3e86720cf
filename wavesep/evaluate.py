"""Evaluate a separator on a rendered test set, with the mixture and the oracle mask as bounds.

For every song of the test split, three systems are scored on the same stems:

- ``model``: the separator under test (:class:`~wavesep.separate.Separator`, in memory);
- ``mixture``: the mixture itself as every stem's estimate, the floor a separator must beat
  (its SI-SDRi is 0 dB by definition);
- ``oracle IRM``: the ideal ratio mask, computed from the true stems and applied to the mixture's
  STFT: the ceiling of any method that masks one STFT of the mixture.

Metrics per song and stem: SI-SDR and SI-SDRi (:mod:`wavesep.metrics`, all channels pooled), and
BSS Eval v4 SDR, SIR, SAR and ISR (the median over 1 s frames). Per stem, the mean and median over
songs. :data:`SILENCE_NOTE` states how silent references are treated; it goes into every output.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wavesep.data.dataset import SongInfo, load_songs, read_chunk
from wavesep.instruments import StemSet, get_stem_set, stem_set_named
from wavesep.metrics import SI_SDR_LIMIT_DB, bss_eval_v4, median_over_frames, si_sdr
from wavesep.separate import Separator

SYSTEMS = ("model", "mixture", "oracle IRM")
METRICS = ("SI-SDR", "SI-SDRi", "SDR", "SIR", "SAR", "ISR")
IRM_FFT, IRM_HOP = 4096, 1024  # the oracle's STFT: Hann window, 93 ms at 44.1 kHz
SILENCE_NOTE = (
    "A stem absent from a song (silent reference) has no score in that song and is left out of "
    "that stem's mean and median; n counts the songs scored. SI-SDR pools all channels of a stem. "
    "BSS Eval v4 (museval's definition: distortion filters of 512 taps fitted on the whole track, "
    "1 s frames) is computed over the stems present in the song; a frame where any of them is "
    "silent is skipped, and a song's figure is the median over its frames. Every score is clamped "
    "to +-100 dB (a silent estimate of a playing stem scores -100). Read BSS Eval's SDR: its ISR, SIR "
    "and SAR rest on distortion filters that v4 fits on the whole track and applies frame by frame, "
    "which is unstable for band-limited references with no noise floor, as synthesized stems are "
    "(museval's own figures swing by tens of dB there)."
)


def ideal_ratio_mask(mixture: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Oracle estimates: each stem's power share ``|S_j|^2 / (sum_k |S_k|^2 + |R|^2)`` of every STFT
    bin, applied to the mixture and inverted. ``R`` is what of the mixture no stem holds (the
    instruments a stem set leaves unnamed, like seed4's guitars): its power counts against every
    stem, so the oracle is a ceiling for stem sets without ``other`` too. One stem at a time, in
    complex64, so memory stays a few STFTs of one channel set whatever the number of stems.

    Shape:
        mixture (channels, time), references (stems, channels, time) -> (stems, channels, time).
    """
    length = mixture.shape[-1]
    window = torch.hann_window(IRM_FFT)

    def stft(x: np.ndarray) -> torch.Tensor:  # (channels, time) -> (channels, bins, frames)
        return torch.stft(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), IRM_FFT, IRM_HOP,
                          window=window, return_complex=True)

    mix = stft(mixture)
    residual = stft(mixture - references.sum(axis=0)).abs().square()
    total = (sum(stft(reference).abs().square() for reference in references) + residual).clamp_min(1e-20)
    out = np.empty(references.shape, np.float32)
    for index, reference in enumerate(references):
        masked = mix * (stft(reference).abs().square() / total)
        out[index] = torch.istft(masked, IRM_FFT, IRM_HOP, window=window, length=length).numpy()
    return out


@dataclass
class SongResult:
    name: str
    duration_s: float
    scores: dict[str, dict[str, dict[str, float]]]  # system -> stem -> metric -> dB (NaN: no score)


def song_audio(song: SongInfo, stem_set: StemSet) -> tuple[np.ndarray, np.ndarray]:
    """The whole song: mixture (channels, time) and stems (stems, channels, time)."""
    chunk = read_chunk(song, 0, song.num_frames, stem_set)
    return chunk.mixture(), chunk.stems


def score_song(references: np.ndarray, estimates: np.ndarray, mixture: np.ndarray, sample_rate: int,
               stems: list[str], bss: bool) -> dict[str, dict[str, float]]:
    """Scores of one system on one song: stem -> metric -> dB (NaN for an absent stem)."""
    present = [i for i in range(len(stems)) if np.any(references[i])]
    scores = {stem: dict.fromkeys(METRICS if bss else METRICS[:2], math.nan) for stem in stems}
    for i in present:
        value = si_sdr(estimates[i], references[i])
        scores[stems[i]]["SI-SDR"] = value
        scores[stems[i]]["SI-SDRi"] = value - si_sdr(mixture, references[i])
    if bss and present:
        # The singular-filter caveat (and its overflows) is stated in SILENCE_NOTE, once, not per song.
        with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
            warnings.filterwarnings("ignore", message="BSS Eval: the references' Gram matrix", category=RuntimeWarning)
            medians = median_over_frames(bss_eval_v4(references[present], estimates[present], sample_rate))
        for row, i in enumerate(present):
            for metric in METRICS[2:]:
                # +-inf (an error or a target of zero energy) is clamped like SI-SDR
                scores[stems[i]][metric] = float(np.clip(medians[metric][row], -SI_SDR_LIMIT_DB, SI_SDR_LIMIT_DB))
    return scores


def model_estimates(separator: Separator, mixture: np.ndarray, sample_rate: int, references: np.ndarray,
                    stems: list[str]) -> np.ndarray:
    """The model's estimate of every stem: (stems, channels, time). An informed model is told the
    stems that play in the song (as in training's validation); a stem a blind model judges absent
    is a silent estimate."""
    if separator.model.spec.setting == "informed":
        playing = [s for s, reference in zip(stems, references) if np.any(reference)] or stems
        separator = separator.told(playing)
    separated = separator.separate(mixture, sample_rate)
    return np.stack([separated.get(s, np.zeros_like(mixture)) for s in stems])


def model_stem_set(separator: Separator, stem_set: str | None) -> StemSet:
    """The stem set to score on: the one given, which must be the model's stems, or the built-in
    set whose stems the model has."""
    sources = list(separator.model.sources)
    if stem_set is not None:
        chosen = get_stem_set(stem_set)
        if chosen.names != sources:
            raise ValueError(f"stem set {chosen.name!r} ({', '.join(chosen.names)}) is not this model's "
                             f"stems ({', '.join(sources)})")
        return chosen
    found = stem_set_named(sources)
    if found is not None:
        return found
    raise ValueError(f"the model's stems ({', '.join(sources)}) are no built-in stem set: pass --stems FILE.yaml")


def evaluate(separator: Separator, data: str | Path, stem_set: str | None = None, max_songs: int | None = None,
             bss: bool = True, progress: Callable[[str], None] | None = None) -> dict:
    """Score ``separator`` on the songs in ``data`` (a rendered split folder); the results as
    plain data (see :func:`summarise` and the module docstring)."""
    chosen = model_stem_set(separator, stem_set)
    songs = load_songs(data)
    if not songs:
        raise ValueError(f"{data}: no rendered songs (folders with metadata.json)")
    songs = songs[:max_songs] if max_songs else songs
    stems = chosen.names
    results = []
    started = time.perf_counter()
    for song in songs:
        mixture, references = song_audio(song, chosen)
        estimates = {
            "model": model_estimates(separator, mixture, song.sample_rate, references, stems),
            "mixture": np.broadcast_to(mixture, references.shape),
            "oracle IRM": ideal_ratio_mask(mixture, references),
        }
        scores = {system: score_song(references, estimates[system], mixture, song.sample_rate, stems, bss)
                  for system in SYSTEMS}
        results.append(SongResult(song.song_id, song.num_frames / song.sample_rate, scores))
        if progress is not None:
            progress(song.song_id)
    return {
        "model": separator.model.describe(),
        "data": [str(d) for d in data] if isinstance(data, (list, tuple)) else str(data),
        "stem_set": chosen.name,
        "stems": stems,
        "sample_rate": separator.sample_rate,
        "segment_s": separator.segment_s,
        "overlap": separator.overlap,
        "precision": separator.precision,
        "fit_gains": separator.fit_gains,
        "shifts": separator.shifts,
        "definitions": SILENCE_NOTE,
        "seconds": round(time.perf_counter() - started, 1),
        "songs": [{"name": r.name, "duration_s": round(r.duration_s, 2), "scores": nan_to_none(r.scores)}
                  for r in results],
        "summary": summarise(results, stems),
    }


def nan_to_none(value):
    """NaN (no score) as JSON's null, in nested dicts."""
    if isinstance(value, dict):
        return {key: nan_to_none(item) for key, item in value.items()}
    return None if isinstance(value, float) and math.isnan(value) else value


def summarise(results: list[SongResult], stems: list[str]) -> dict:
    """system -> stem -> metric -> {mean, median, n} over the songs where the stem has a score."""
    summary: dict = {}
    for system in SYSTEMS:
        summary[system] = {}
        for stem in stems + ["mean"]:
            summary[system][stem] = {}
            for metric in METRICS:
                if stem == "mean":  # the mean over stems of each stem's mean
                    values = [summary[system][s][metric]["mean"] for s in stems if metric in summary[system][s]]
                else:
                    values = [r.scores[system][stem].get(metric, math.nan) for r in results]
                values = [v for v in values if v is not None and not math.isnan(v)]
                if values:
                    summary[system][stem][metric] = {"mean": float(np.mean(values)),
                                                     "median": float(np.median(values)), "n": len(values)}
    return summary


def markdown_table(results: dict) -> str:
    """The summary as Markdown: one row per system and stem, mean (median) of each metric."""
    metrics = [m for m in METRICS if any(m in row for rows in results["summary"].values() for row in rows.values())]
    lines = ["| system | stem | n | " + " | ".join(metrics) + " |", "|---|---|---|" + "---|" * len(metrics)]
    for system, rows in results["summary"].items():
        for stem, row in rows.items():
            n = max((cell["n"] for cell in row.values()), default=0)
            cells = [f"{row[m]['mean']:+.2f} ({row[m]['median']:+.2f})" if m in row else "—" for m in metrics]
            label = "mean of stems" if stem == "mean" else stem
            lines.append(f"| {system} | {label} | {n if stem != 'mean' else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_results(results: dict, out: str | Path) -> tuple[Path, Path]:
    """``out`` as JSON and the same name with ``.md`` as Markdown; both written atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    markdown = out.with_suffix(".md")
    describe = results["model"]
    text = (f"# wavesep evaluate\n\nModel `{describe['name']}` ({', '.join(results['stems'])}) on "
            f"`{results['data']}`, {len(results['songs'])} songs. Each cell: mean (median) over songs, dB; "
            f"the *mean of stems* row: the mean (median) of the stems' means.\n\n"
            f"{markdown_table(results)}\n\n{results['definitions']}\n")
    for path, content in ((out, json.dumps(results, indent=1, allow_nan=False) + "\n"), (markdown, text)):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(content)
        tmp.replace(path)
    return out, markdown


def write_samples(separator: Separator, data: str | Path, out: str | Path, stem_set: str | None = None,
                  max_songs: int = 4, excerpt_s: float = 20.0) -> Path:
    """A listening page (:mod:`wavesep.report`) for the first ``max_songs`` songs of ``data``:
    mixture, references and estimates of an excerpt of ``excerpt_s`` from each song's middle, with
    the whole song's SI-SDR and SI-SDRi per stem. Returns the page's index.html."""
    from wavesep.report import SampleSong, write_samples_page

    chosen = model_stem_set(separator, stem_set)
    songs = load_songs(data)[:max_songs]
    if not songs:
        raise ValueError(f"{data}: no rendered songs (folders with metadata.json)")
    stems = chosen.names
    page = []
    for song in songs:
        mixture, references = song_audio(song, chosen)
        estimates = model_estimates(separator, mixture, song.sample_rate, references, stems)
        scores = score_song(references, estimates, mixture, song.sample_rate, stems, bss=False)
        start = max(0.0, (song.duration_s - excerpt_s) / 2)
        page.append(SampleSong(
            name=song.song_id, sample_rate=song.sample_rate, mixture=mixture,
            references={s: references[i] for i, s in enumerate(stems) if np.any(references[i])},
            estimates={s: estimates[i] for i, s in enumerate(stems)}, scores=scores,
            excerpt=(start, min(song.duration_s, start + excerpt_s))))
    describe = separator.model.describe()
    description = (f"{describe['name']} ({separator.model.n_parameters() / 1e6:.2f} M parameters), "
                   f"stems {', '.join(stems)}, {separator.sample_rate} Hz, setting {describe['spec']['setting']}")
    notes = ("Scores are for the whole song (dB): SI-SDR of the estimate, and SI-SDRi, its improvement over "
             "the mixture. " + SILENCE_NOTE.split(". ")[0] + ".")
    where = "" if isinstance(data, (list, tuple)) else f": {Path(data).resolve().parent.name}/{Path(data).name}"
    return write_samples_page(out, page, title=f"wavesep samples{where}",
                              model_description=description, notes=notes)
