"""Index a tree of MIDI files: per file its hash, duration, instruments and split, or why it failed.

The index is JSON Lines: a header line, then one record per file, sorted by path. Splits are
decided by the hash of a file's *notes* (onsets in beats and pitches, not instruments, tempo or
track layout), so copies of a song that differ in orchestration, tempo or file layout land in the
same split, and the split of a song never depends on which other files were scanned.

A scan is resumable: records go to ``INDEX.partial`` as they are made, and a re-run reuses every
record whose file has the same size and modification time.
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from wavesep.midi.song import MidiError, ParseLimits, read_song

SPLITS = ("train", "valid", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
MIDI_SUFFIXES = {".mid", ".midi", ".kar"}
INDEX_FORMAT = "wavesep-midi-index/1"


def split_for(notes_hash: str, fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> str:
    """The split of a song, from the hash of its notes: deterministic, independent of the corpus."""
    position = int(notes_hash[:12], 16) / 16**12  # uniform in [0, 1)
    edge = 0.0
    for split, fraction in zip(SPLITS, fractions):
        edge += fraction
        if position < edge:
            return split
    return SPLITS[-1]


def find_midi_files(root: str | Path) -> list[Path]:
    """MIDI files under ``root`` (or ``root`` itself), sorted; hidden folders are skipped."""
    root = Path(root)
    if root.is_file():
        return [root]
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        found += [Path(folder) / name for name in files if Path(name).suffix.lower() in MIDI_SUFFIXES]
    return sorted(found)


def index_file(path: str | Path, limits: ParseLimits = ParseLimits()) -> dict:
    """One index record: what the file holds, or ``error`` with the reason it cannot be used."""
    path = Path(path)
    record: dict = {"path": str(path)}
    try:
        stat = path.stat()
        record.update(size=stat.st_size, mtime_ns=stat.st_mtime_ns)
        song = read_song(path, limits)
    except MidiError as error:
        record["error"] = str(error)
        return record
    except OSError as error:
        record["error"] = f"cannot read file: {error.strerror or error}"
        return record
    except Exception as error:  # a parser surprise on one file must not stop a corpus scan
        record["error"] = f"unexpected {type(error).__name__}: {error}".splitlines()[0]
        return record
    record.update(
        sha256=song.sha256,
        notes_hash=song.notes_hash,
        split=split_for(song.notes_hash),
        duration_s=round(song.duration_s, 3),
        n_notes=song.n_notes,
        instruments=[
            {"track": inst.track, "channel": inst.channel, "program": inst.program, "name": inst.name,
             "class": inst.family, "notes": notes}
            for inst, notes in zip(song.instruments, song.notes_per_instrument)
        ],
    )
    return record


def _index_file_job(args: tuple[str, ParseLimits]) -> dict:
    return index_file(*args)


def read_index(path: str | Path) -> tuple[dict, list[dict]]:
    """The header and records of an index file.

    Raises:
        ValueError: the file is not a wavesep MIDI index.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
        header = json.loads(lines[0]) if lines else {}
        records = [json.loads(line) for line in lines[1:] if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable index ({error})") from None
    if header.get("format") != INDEX_FORMAT:
        raise ValueError(f"{path}: not a wavesep MIDI index (no '{INDEX_FORMAT}' header)")
    return header, records


def record_path(header: dict, record: dict) -> Path:
    """The file an index record describes: record paths are relative to the index's root."""
    return Path(header["root"]) / record["path"]


def _reusable(records_path: Path) -> dict[str, dict]:
    """Records of an earlier (possibly interrupted) scan, keyed by their relative path."""
    known = {}
    for candidate in (records_path, records_path.with_name(records_path.name + ".partial")):
        if not candidate.exists():
            continue
        for line in candidate.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # the torn last line of a killed scan
                continue
            if "path" in record and "format" not in record:
                known[record["path"]] = record
    return known


def _unchanged(record: dict | None, path: Path) -> bool:
    if record is None:
        return False
    try:
        stat = path.stat()
    except OSError:
        return False
    return record.get("size") == stat.st_size and record.get("mtime_ns") == stat.st_mtime_ns


def build_index(root: str | Path, out: str | Path, workers: int = 1,
                limits: ParseLimits = ParseLimits(), progress: bool = True) -> list[dict]:
    """Scan ``root`` and write the index to ``out``; returns the records.

    Raises:
        ValueError: ``root`` does not exist or holds no MIDI file.
    """
    root, out = Path(root), Path(out)
    if not root.exists():
        raise ValueError(f"{root}: no such file or directory")
    paths = find_midi_files(root)
    if not paths:
        raise ValueError(f"{root}: no MIDI files (.mid, .midi, .kar) found")
    base = root if root.is_dir() else root.parent
    names = [str(p.relative_to(base)) for p in paths]  # records hold paths relative to the root
    out.parent.mkdir(parents=True, exist_ok=True)
    known = _reusable(out)
    records = {name: known[name] for name, p in zip(names, paths) if _unchanged(known.get(name), p)}
    todo = [(name, p) for name, p in zip(names, paths) if name not in records]
    partial = out.with_name(out.name + ".partial")
    with open(partial, "a") as log, tqdm(total=len(paths), initial=len(records), unit="file",
                                         disable=not progress, desc="index") as bar:
        jobs = [(str(p), limits) for _, p in todo]
        if workers > 1:
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
            results = pool.map(_index_file_job, jobs, chunksize=8)
        else:
            pool, results = None, map(_index_file_job, jobs)
        try:
            for (name, _), record in zip(todo, results):
                record["path"] = name
                records[name] = record
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.update()
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    ordered = [records[name] for name in names]
    header = {"format": INDEX_FORMAT, "root": str(base.resolve()), "limits": asdict(limits)}
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("".join(json.dumps(item) + "\n" for item in [header, *ordered]))
    os.replace(tmp, out)
    partial.unlink(missing_ok=True)
    return ordered


def error_kind(reason: str) -> str:
    """A reason with its numbers blanked, to count errors by kind."""
    return re.sub(r"\d+(\.\d+)?", "N", reason)


def summarize(records: list[dict]) -> str:
    """Counts, hours, instruments found and errors by reason, as printable text."""
    good = [r for r in records if "error" not in r]
    bad = [r for r in records if "error" in r]
    hours = sum(r["duration_s"] for r in good) / 3600
    splits = collections.Counter(r["split"] for r in good)
    classes = collections.Counter(i["class"] for r in good for i in r["instruments"])
    programs = collections.Counter((i["program"], i["name"]) for r in good for i in r["instruments"])
    duplicates = len(good) - len({r["notes_hash"] for r in good})
    lines = [
        f"{len(records)} files: {len(good)} usable ({hours:.2f} h of music), {len(bad)} with errors",
        "splits: " + ", ".join(f"{s} {splits.get(s, 0)}" for s in SPLITS)
        + f"; {duplicates} files share their notes with another (kept in one split)",
        "instrument classes: " + ", ".join(f"{name} {n}" for name, n in classes.most_common()),
        "most frequent programs: "
        + ", ".join(f"{name} ({program}) {n}" for (program, name), n in programs.most_common(10)),
    ]
    if bad:
        reasons = collections.Counter(error_kind(r["error"]) for r in bad)
        lines.append("errors by reason:")
        lines += [f"  {n:6d}  {reason}" for reason, n in reasons.most_common()]
    return "\n".join(lines)
