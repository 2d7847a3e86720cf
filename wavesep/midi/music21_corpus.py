"""MIDI from the corpus that ships inside the music21 package: no download needed.

music21 carries about 3,000 scores (Bach chorales, Palestrina, Monteverdi, string quartets,
thousands of folk tunes). They are written here as MIDI files. music21 puts every part on channel 0
with piano, so ``programs`` can re-orchestrate: part ``i`` gets ``programs[i % len(programs)]`` on
its own channel (never channel 10).
"""

from __future__ import annotations

import os
from pathlib import Path

import mido

from wavesep.instruments import DRUM_CHANNEL, DRUMS, slug


def corpus_paths(composer: str | None = None) -> list[Path]:
    """Scores of music21's corpus, optionally of one composer or collection ('bach', 'palestrina')."""
    try:
        from music21 import corpus
    except ImportError:
        raise ValueError("music21 is not installed: pip install 'wavesep[corpus]'") from None
    paths = corpus.getComposer(composer) if composer else corpus.getPaths()
    if not paths:
        raise ValueError(f"music21's corpus has no scores for {composer!r}")
    return sorted(Path(p) for p in paths)


def orchestrate(midi: mido.MidiFile, programs: list[int]) -> mido.MidiFile:
    """Give part ``i`` (the i-th track with notes) program ``programs[i % n]`` on a channel of its own."""
    channels = [c for c in range(16) if c != DRUM_CHANNEL]
    part = 0
    for track in midi.tracks:
        if not any(m.type == "note_on" for m in track):
            continue
        program = programs[part % len(programs)]
        channel = DRUM_CHANNEL if program == DRUMS else channels[part % len(channels)]
        kept = []
        carry = 0  # delta time of removed program changes moves to the next message
        for message in track:
            if message.type == "program_change":
                carry += message.time
                continue
            if hasattr(message, "channel"):
                message = message.copy(channel=channel)
            kept.append(message.copy(time=message.time + carry))
            carry = 0
        track[:] = kept
        if program != DRUMS:
            track.insert(0, mido.Message("program_change", channel=channel, program=program, time=0))
        part += 1
    return midi


def export_corpus(out: str | Path, composer: str | None = None, limit: int | None = None,
                  programs: list[int] | None = None) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Write scores of music21's corpus as MIDI files into ``out``, one file per score (a
    collection such as a folk-song book gives several); files already there are kept.

    Returns:
        The files written, at most ``limit``, and (source, reason) for what music21 could not
        convert.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written, failed = [], []
    for path in corpus_paths(composer):
        if limit is not None and len(written) >= limit:
            break
        base = f"{slug(path.parent.name)}-{slug(path.stem)}"
        if (out / f"{base}.mid").exists():  # a single score, done before
            written.append(out / f"{base}.mid")
            continue
        try:
            scores = _scores(path)
        except Exception as error:  # music21 raises many kinds on the odd score
            failed.append((path, _reason(error)))
            continue
        for number, score in enumerate(scores, start=1):
            if limit is not None and len(written) >= limit:
                break
            target = out / (f"{base}-{number:03d}.mid" if len(scores) > 1 else f"{base}.mid")
            try:
                if not target.exists():
                    _write_midi(score, target, programs)
                written.append(target)
            except Exception as error:
                failed.append((path, f"score {number}: {_reason(error)}"))
    return written, failed


def _scores(path: Path) -> list:
    from music21 import converter, stream

    parsed = converter.parse(path)
    return list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]


def _write_midi(score, target: Path, programs: list[int] | None):
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        score.write("midi", fp=str(tmp))
        if programs:
            orchestrate(mido.MidiFile(tmp), programs).save(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _reason(error: Exception) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0]
