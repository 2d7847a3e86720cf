"""Render a MIDI corpus (a folder, a file or an index) into a stem dataset: checks, shards, workers.

Everything that can be checked before work starts is (SoundFonts, source, output folder), so a
mistake costs one line and no time. Then songs are rendered over worker processes, each loading
the SoundFonts once; a song that fails, even by killing its worker, is reported and the others go
on.
"""

from __future__ import annotations

import collections
import hashlib
import multiprocessing
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from tqdm import tqdm

from wavesep.midi.index import error_kind, find_midi_files, read_index, record_path
from wavesep.midi.song import ParseLimits
from wavesep.synth import writer
from wavesep.synth.fluidsynth import FluidSynthError, soundfont_paths
from wavesep.synth.render import Renderer, RenderSettings, default_soundfont


class RenderSetupError(ValueError):
    """A problem found before any work: bad SoundFont, empty source, unwritable output."""


def parse_shard(text: str) -> tuple[int, int]:
    """'2/8' -> (2, 8); shards are numbered from 1."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise RenderSetupError(f"--shard must look like K/N, e.g. 1/4, got {text!r}") from None
    if not 1 <= k <= n:
        raise RenderSetupError(f"--shard {text}: K must be between 1 and N")
    return k, n


def in_shard(content_hash: str, shard: tuple[int, int]) -> bool:
    """Whether a file belongs to shard K of N, by its content: copies of a file share a shard
    (so they are rendered once), and shards are balanced whatever the file names."""
    k, n = shard
    return int(content_hash[:12], 16) % n == k - 1


def collect_jobs(source: Path, shard: tuple[int, int] = (1, 1)) -> tuple[list[writer.Job], list[writer.Outcome]]:
    """Jobs for a MIDI folder, file or index; files an index marks as bad come back as skipped.

    Raises:
        RenderSetupError: the source does not exist, is not a readable index, or has no MIDI file.
    """
    if not source.exists():
        raise RenderSetupError(f"{source}: no such file or directory")
    skipped = []
    if source.is_file() and source.suffix.lower() in {".jsonl", ".json", ".index"}:
        try:
            header, records = read_index(source)
        except ValueError as error:
            raise RenderSetupError(str(error)) from None
        jobs, hashes = [], []
        for record in records:
            path = record_path(header, record)
            if "error" in record:
                skipped.append(writer.Outcome(path, "skipped", f"index: {record['error']}"))
            else:
                jobs.append(writer.Job(path, record["split"]))
                hashes.append(record["sha256"])
    else:
        jobs = [writer.Job(path) for path in find_midi_files(source)]
        hashes = [_file_hash(job.path) for job in jobs]
    if not jobs and not skipped:
        raise RenderSetupError(f"{source}: no MIDI files to render")
    if shard != (1, 1):
        mine = [in_shard(digest, shard) for digest in hashes]
        jobs, hashes = [j for j, m in zip(jobs, mine) if m], [h for h, m in zip(hashes, mine) if m]
        skipped = [o for o in skipped if in_shard(_text_hash(str(o.path)), shard)]
    jobs, duplicates = _drop_duplicates(jobs, hashes)
    return jobs, skipped + duplicates


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _file_hash(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return _text_hash(str(path))  # unreadable: unique, and the job reports why


def _drop_duplicates(jobs: list[writer.Job], hashes: list[str]) -> tuple[list[writer.Job], list[writer.Outcome]]:
    """Keep the first of byte-identical files; the others are skipped."""
    first: set[str] = set()
    kept, skipped = [], []
    for job, digest in zip(jobs, hashes):
        if digest in first:
            skipped.append(writer.Outcome(job.path, "skipped", "same bytes as another file of the source"))
        else:
            first.add(digest)
            kept.append(job)
    return kept, skipped


def check_output(out: Path):
    """Make ``out`` and prove it is writable, or raise RenderSetupError."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{time.time_ns()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise RenderSetupError(f"{out}: output folder is not writable ({error.strerror or error})") from None


def check_soundfonts(paths: str | Path | Sequence[str | Path] | None, settings: RenderSettings) -> list[Path]:
    """The SoundFonts to use (one path, several, or None for the default), each proven loadable by
    FluidSynth."""
    try:
        paths = soundfont_paths(default_soundfont() if paths is None else paths)
    except (FileNotFoundError, ValueError) as error:
        raise RenderSetupError(str(error)) from None
    paths = [check_soundfont(path, settings) for path in paths]
    seen = set()
    for path in paths:
        if path.resolve() in seen:
            raise RenderSetupError(f"{path}: SoundFont given twice")
        seen.add(path.resolve())
    return paths


def check_soundfont(path: Path, settings: RenderSettings) -> Path:
    """``path``, proven to be a SoundFont that FluidSynth loads."""
    if not path.is_file():
        raise RenderSetupError(f"{path}: SoundFont not found")
    if path.suffix.lower() not in {".sf2", ".sf3"}:
        raise RenderSetupError(f"{path}: not a SoundFont (.sf2 or .sf3 expected)")
    with open(path, "rb") as file:
        head = file.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise RenderSetupError(f"{path}: not a valid SoundFont (no RIFF sfbk header)")
    try:
        Renderer(path, settings).close()
    except FluidSynthError as error:
        raise RenderSetupError(str(error)) from None
    return path


@dataclass
class Summary:
    outcomes: list[writer.Outcome] = field(default_factory=list)
    wall_s: float = 0.0

    def count(self, status: str) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    @property
    def failed(self) -> list[writer.Outcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "failed"]

    def text(self) -> str:
        rendered = [o for o in self.outcomes if o.status == "rendered"]
        audio_s = sum(o.duration_s for o in rendered)
        lines = [
            f"rendered {len(rendered)} songs ({audio_s / 3600:.3f} h of mixture, "
            f"{sum(o.n_stems for o in rendered)} stems) in {self.wall_s:.1f} s: "
            f"{audio_s / max(self.wall_s, 1e-9):.1f} s of song per second",
            f"skipped {self.count('skipped')}, failed {len(self.failed)}",
        ]
        reasons = collections.Counter(error_kind(o.reason) for o in self.outcomes if o.status != "rendered")
        lines += [f"  {n:6d}  {reason}" for reason, n in reasons.most_common()]
        return "\n".join(lines)


WORKER_DIED = "the worker process died while rendering it (out of memory?)"


def _outcomes(jobs: list[writer.Job], workers: int, init_args: tuple, run=writer.run_job,
              init=writer.init_worker) -> Iterator[writer.Outcome]:
    """Outcomes of ``run(job)`` for the jobs, in the order they finish, over ``workers`` processes
    set up by ``init(*init_args)``.

    A worker that dies (the out-of-memory killer, a crash in libfluidsynth) takes no one else
    down: the songs that were in flight are rendered again one at a time, and the one that kills
    its worker again is reported as failed.
    """
    if workers == 1:
        init(*init_args)
        yield from map(run, jobs)
        return
    # Not fork: a process that has used libfluidsynth (as check_soundfont does) can leave its
    # locks held in a forked child, which then hangs. The fork server starts clean and has the
    # rendering modules imported once for all workers.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["wavesep.synth.writer"])

    def pool(size: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(size, mp_context=context, initializer=init, initargs=init_args,
                                   max_tasks_per_child=200)

    queue = list(reversed(jobs))  # popped from the end
    while queue:
        running: dict = {}
        with pool(workers) as executor:
            try:
                while queue or running:
                    while queue and len(running) < 2 * workers:  # a short window: few suspects
                        job = queue.pop()
                        running[executor.submit(run, job)] = job
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        outcome = future.result()  # BrokenProcessPool if a worker died
                        del running[future]
                        yield outcome
            except BrokenProcessPool:
                pass
        for job in running.values():  # what was in flight when a worker died, each alone
            with pool(1) as executor:
                try:
                    yield executor.submit(run, job).result()
                except BrokenProcessPool:
                    yield writer.Outcome(job.path, "failed", WORKER_DIED)


def render_dataset(source: str | Path, out: str | Path, soundfont: str | Path | Sequence[str | Path] | None = None,
                   settings: RenderSettings = RenderSettings(), workers: int = 1,
                   shard: tuple[int, int] = (1, 1), limits: ParseLimits = ParseLimits(),
                   audio_format: str = "flac", progress: bool = True) -> Summary:
    """Render every song of ``source`` into the dataset ``out``; see the module docstring.

    Raises:
        RenderSetupError: before any work, for a bad SoundFont, source or output folder.
    """
    source, out = Path(source), Path(out)
    if audio_format not in writer.AUDIO_FORMATS:
        raise RenderSetupError(f"unknown audio format {audio_format!r}: use one of {', '.join(writer.AUDIO_FORMATS)}")
    soundfonts = check_soundfonts(soundfont, settings)
    jobs, skipped = collect_jobs(source, shard)
    check_output(out)
    try:
        writer.check_dataset_settings(out, soundfonts, settings, audio_format)
    except ValueError as error:
        raise RenderSetupError(str(error)) from None
    writer.remove_stale_temporaries(out)
    summary = Summary(outcomes=list(skipped))
    start = time.perf_counter()
    init_args = (soundfonts, out, settings, limits, audio_format)
    audio_s = 0.0
    results = _outcomes(jobs, workers, init_args)
    bar = tqdm(total=len(jobs), unit="song", disable=not progress, desc="render")
    try:
        for outcome in results:
            summary.outcomes.append(outcome)
            if outcome.status == "failed":
                tqdm.write(f"wavesep: {outcome.path}: {outcome.reason}", file=sys.stderr)
            audio_s += outcome.duration_s
            bar.set_postfix_str(f"{audio_s / 3600:.3f} h audio")
            bar.update()
    finally:
        bar.close()
        results.close()
    summary.wall_s = time.perf_counter() - start
    return summary
