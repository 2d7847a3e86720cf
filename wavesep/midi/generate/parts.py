"""The part writers: drums, bass, comping, melody, pad, counter-melody, percussion, effects.

Each writer takes the song's generator, its :class:`~wavesep.midi.generate.plan.Noise`, the
:class:`~wavesep.midi.generate.plan.Plan` and a :class:`Part`, and adds notes and controller
events to the part; :data:`WRITERS` maps each role to its writer. The pattern tables they play
from (drum grooves, bass patterns, comping rhythms, strums, arpeggios, melody cells) are here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wavesep.midi.generate.plan import KIND_LEVELS, M68, Meter, Noise, Plan, _pick, _pick_index
from wavesep.midi.generate.theory import (
    EIGHTH, STEP, TICKS_PER_BEAT, Chord, _chord_scale, _nearest, _scale_step, _voice,
)

# Drum grooves: (grid_ticks, {GM drum key: one character per grid step}); "x" hit, "X" accent,
# "g" ghost note. 36 kick, 38 snare, 42 closed hat, 44 pedal hat, 46 open hat, 51 ride.
DRUM_PATTERNS = {
    "rock": (STEP, {36: "x.......x.x.....", 38: "....X.......X...", 42: "x.x.x.x.x.x.x.x."}),
    "pop": (STEP, {36: "x.....x.x.......", 38: "....X.......X...", 42: "xxxxxxxxxxxxxxxx"}),
    "funk": (STEP, {36: "x..x......x..x..", 38: "....X..g.g..X..g", 42: "xxxxxxxxxxxxxxxx"}),
    "disco": (STEP, {36: "x...x...x...x...", 38: "....X.......X...", 42: "x...x...x...x...",
                     46: "..x...x...x...x."}),
    "ballad": (STEP, {36: "x.........x.....", 38: "........X.......", 42: "x.x.x.x.x.x.x.x."}),
    "shuffle": (160, {36: "x.....x.....", 38: "...X.....X..", 42: "x.xx.xx.xx.x"}),
    "jazz": (160, {36: "g.....g.....", 51: "x..x.xx..x.x", 44: "...x.....x..", 38: "........g..."}),
    "waltz": (STEP, {36: "x...........", 38: "....x...x...", 42: "x.x.x.x.x.x."}),
    "waltz2": (STEP, {36: "x.......x...", 38: "....X.......", 42: "x...x...x..."}),
    "sixeight": (STEP, {36: "x.........x.", 38: "......X.....", 42: "x.x.x.x.x.x."}),
    "sixeight2": (STEP, {36: "x...x.......", 38: "......X.....", 42: "x.xxx.x.xxx."}),
}
DRUM_VELOCITIES = {"x": 92, "X": 108, "g": 42}
FILLS = ((38,), (50, 48, 45, 41), (38, 38, 48, 45), (38, 45, 41), (48, 47, 45, 43))
HAT, RIDE, CRASH, KICK = 42, 51, 49, 36

# Bass patterns: (sixteenth step, length in steps, tone); tones R root, 3 third, 5 fifth, 6 sixth,
# 8 octave. A note on a chord change always plays the root.
BASS_PATTERNS = {
    "half": ((0, 8, "R"), (8, 8, "5")),
    "root5": ((0, 6, "R"), (6, 2, "R"), (8, 6, "5"), (14, 2, "R")),
    "eighths": tuple((s, 2, "R") for s in range(0, 16, 2)),
    "rock": ((0, 3, "R"), (4, 2, "R"), (6, 2, "R"), (8, 3, "5"), (12, 2, "R"), (14, 2, "8")),
    "pop": ((0, 6, "R"), (6, 2, "R"), (8, 4, "5"), (12, 2, "8"), (14, 2, "5")),
    "octave": tuple((s, 2, "R8"[s // 2 % 2]) for s in range(0, 16, 2)),
    "funk": ((0, 2, "R"), (3, 1, "R"), (6, 1, "8"), (7, 1, "R"), (10, 2, "5"), (12, 1, "R"), (14, 1, "8")),
    "boogie": ((0, 4, "R"), (4, 4, "3"), (8, 4, "5"), (12, 4, "6")),
    "waltz": ((0, 8, "R"), (8, 4, "5")),
    "three": ((0, 4, "R"), (4, 4, "5"), (8, 4, "8")),
    "sixeight": ((0, 6, "R"), (6, 6, "5")),
    "sixeight2": ((0, 4, "R"), (4, 2, "5"), (6, 4, "8"), (10, 2, "5")),
}
BASS_LOW, BASS_HIGH = 28, 55  # E1 to G3

# Comping rhythms: (sixteenth step, length in steps), by meter numerator (or "jazz").
BLOCK_RHYTHMS = {
    4: (((0, 16),), ((0, 8), (8, 8)), ((0, 4), (4, 4), (8, 4), (12, 4)),
        ((0, 3), (3, 5), (8, 3), (11, 5)), ((0, 6), (6, 2), (8, 6), (14, 2))),
    3: (((0, 12),), ((0, 4), (4, 4), (8, 4)), ((4, 4), (8, 4)), ((0, 4), (4, 2), (8, 4))),
    6: (((0, 12),), ((0, 6), (6, 6)), ((0, 2), (2, 2), (4, 2), (6, 2), (8, 2), (10, 2))),
    "jazz": (((0, 5), (6, 4)), ((4, 2), (10, 4)), ((0, 4), (12, 2))),
}
STRUMS = {4: ("D.DU.UDU", "D.D.D.D.", "D..D..DU"), 3: ("D.DUDU", "D.D.D."), 6: ("D.UD.U", "D..D..")}
ARPEGGIOS = ((0, 1, 2, 3), (0, 1, 2, 3, 2, 1), (0, 2, 1, 2), (3, 2, 1, 0))
PERC_PATTERNS = {16: ("h.l.h.l.hhl.h.l.", "h..h..h.l.h.l...", "l...h...l...h..h"),
                 12: ("h.l.l.h.l.l.", "h..h..l..l..", "l.h.h.l.h.h.")}

# Melody rhythm cells for one pulse: ((onset, length) in ticks, busyness).
BEAT_CELLS = (((), 0.0), (((0, 480),), 1.0), (((0, 960),), 0.5), (((0, 240), (240, 240)), 2.0),
              (((240, 240),), 1.2), (((0, 360), (360, 120)), 2.2),
              (((0, 120), (120, 120), (240, 240)), 3.0))
DOTTED_CELLS = (((), 0.0), (((0, 720),), 1.0), (((0, 480), (480, 240)), 2.0),
                (((0, 240), (240, 480)), 2.0), (((0, 240), (240, 240), (480, 240)), 3.0))
MELODY_STEPS = ((-4, 0.03), (-3, 0.07), (-2, 0.15), (-1, 0.22), (0, 0.08), (1, 0.22), (2, 0.15),
                (3, 0.05), (4, 0.03))  # scale steps: mostly stepwise, some leaps
MELODY_REGISTERS = {9: (72, 96), 10: (72, 96), 40: (62, 88), 41: (55, 79), 42: (48, 72),
                    57: (50, 74), 65: (55, 79), 66: (50, 74), 72: (74, 98), 73: (67, 91),
                    74: (67, 91), 78: (72, 96)}


@dataclass
class Part:
    """One instrument: its notes and controller events, on its own channel and track."""

    role: str
    program: int  # GM program 0-127, or DRUMS
    channel: int
    swing: bool = False
    # (start_tick, length_ticks, pitch, velocity)
    notes: list[tuple[int, int, int, int]] = field(default_factory=list)
    # (tick, "cc" or "bend", controller number (0 for bends), value)
    controls: list[tuple[int, str, int, int]] = field(default_factory=list)

    def add(self, start_tick: int, length_ticks: int, pitch: int, velocity: int, jitter_ticks: int = 0):
        """Add a note; swing delays offbeat eighths to the last triplet, then jitter humanises."""
        if self.swing and EIGHTH <= start_tick % TICKS_PER_BEAT < EIGHTH + 80:  # strummed strings too
            start_tick += 80
            length_ticks -= 80
        start_tick = max(0, start_tick + jitter_ticks)
        while pitch > 127:
            pitch -= 12
        while pitch < 0:
            pitch += 12
        self.notes.append((start_tick, max(1, length_ticks), pitch, min(127, max(1, velocity))))



def _velocity(noise: Noise, plan: Plan, tick: int, level: int) -> int:
    return level + plan.meter.accent(tick) + noise(4)



def _voicings(plan: Plan, low: int, high: int) -> list[list[int]]:
    """Voice-led voicing of every chord slot, in slot order."""
    voicings, previous = [], None
    for _, _, chord in plan.slots:
        previous = _voice(chord.pcs, previous, low, high)
        voicings.append(previous)
    return voicings


# Part writers ----------------------------------------------------------------------------------


def _drums(rng, noise: Noise, plan: Plan, part: Part):
    """Groove per section, a fill into every section change, a crash on every new section."""
    verse_groove, chorus_groove = _pick(rng, plan.style.drums), _pick(rng, plan.style.drums)
    chorus_ride = rng.random() < 0.4  # choruses often keep time on the ride instead of the hat
    fill_ticks = plan.meter.pulse_ticks * (1 if plan.meter is M68 else int(rng.integers(1, 3)))
    fill = _pick(rng, FILLS)
    bar = plan.meter.bar_ticks
    for section in plan.sections:
        offset = section.level - 85
        if section.kind != "intro":
            part.add(section.start_tick, 60, CRASH, 112 + offset)
        if section.kind == "ending":
            part.add(section.start_tick, 60, KICK, 110 + offset)
            continue
        grid, lines = DRUM_PATTERNS[chorus_groove if section.kind == "chorus" else verse_groove]
        for bar_index in range(section.n_bars):
            bar_start = section.start_tick + bar_index * bar
            groove_end = bar - fill_ticks if bar_index == section.n_bars - 1 else bar
            for key, steps in lines.items():
                if section.kind == "intro" and key != HAT and key != RIDE:
                    continue  # intros keep time without kick and backbeat
                key = RIDE if key == HAT and chorus_ride and section.kind == "chorus" else key
                for step, hit in enumerate(steps):
                    if hit != "." and step * grid < groove_end:
                        quiet = 14 if key in (42, 44, 46) else 0
                        velocity = DRUM_VELOCITIES[hit] - quiet + offset + noise(5)
                        velocity += plan.meter.accent(step * grid)
                        part.add(bar_start + step * grid, grid // 2, key, velocity, noise(3))
            if groove_end < bar:
                _drum_fill(noise, part, bar_start + groove_end, fill_ticks, grid, fill, offset)


def _drum_fill(noise: Noise, part: Part, start_tick: int, length_ticks: int, grid: int, keys, offset: int):
    """Snare and toms on the grid, descending and getting louder, into the next section."""
    n_hits = length_ticks // grid
    for i in range(n_hits):
        key = keys[i * len(keys) // n_hits]
        part.add(start_tick + i * grid, grid // 2, key, 80 + 30 * i // n_hits + offset + noise(4), noise(3))


def _bass(rng, noise: Noise, plan: Plan, part: Part):
    """Root-based patterns (or a walking line) following the chords, E1-G3."""
    pattern_name = _pick(rng, plan.style.bass)
    low = BASS_LOW + int(rng.integers(0, 5))  # the lowest root: E1 up to G#1
    if pattern_name == "walking":
        return _walking_bass(rng, noise, plan, part, low)
    pattern, bar = BASS_PATTERNS[pattern_name], plan.meter.bar_ticks
    intro_tacet = rng.random() < 0.5
    for section in plan.sections:
        if section.kind == "intro" and intro_tacet:
            continue
        for bar_index in range(section.n_bars):
            bar_start = section.start_tick + bar_index * bar
            steps = ((0, bar // STEP, "R"),) if section.kind == "ending" else pattern
            for step, length, tone in steps:
                tick = bar_start + step * STEP
                slot = plan.slots[plan.slot_index(tick)]
                chord = slot[2]
                tone = "R" if slot[0] == tick else tone
                offset = {"R": 0, "8": 12, "3": chord.intervals[1], "5": chord.intervals[2], "6": 9}[tone]
                pitch = low + (chord.root - low) % 12 + offset
                pitch -= 12 if pitch > BASS_HIGH else 0
                velocity = _velocity(noise, plan, tick, section.level - 2)
                part.add(tick, length * STEP - 20, pitch, velocity, noise(4))


def _walking_bass(rng, noise: Noise, plan: Plan, part: Part, low: int):
    """Quarter notes: the root on each chord, chord tones between, an approach into the next root."""
    previous = low + 7
    for i, (start, end, chord) in enumerate(plan.slots):
        section = plan.section_at(start)
        root = _nearest((chord.root,), previous, low, BASS_HIGH - 5)
        if section.kind == "ending":
            part.add(start, end - start - 60, root, section.level)
            continue
        next_root = plan.slots[i + 1][2].root if i + 1 < len(plan.slots) else chord.root
        target = _nearest((next_root,), root, low, BASS_HIGH)
        line = [root]
        n_beats = (end - start) // TICKS_PER_BEAT
        for beat in range(1, n_beats):
            direction = 1 if target >= line[-1] else -1
            if beat == n_beats - 1:  # approach the next root by a half or whole step
                line.append(target - direction * int(_pick(rng, (1, 1, 2))))
            else:
                line.append(_nearest(chord.pcs, line[-1] + 3 * direction, low, BASS_HIGH))
        for beat, pitch in enumerate(line):
            tick = start + beat * TICKS_PER_BEAT
            velocity = _velocity(noise, plan, tick, section.level - 4)
            part.add(tick, TICKS_PER_BEAT - 40, pitch, velocity, noise(4))
        previous = line[-1]


def _comp_block(noise, plan, part, bar_start, level, voicing_at, rhythm):
    """Whole chords on a rhythm of (sixteenth, length) hits."""
    for step, length in rhythm:
        tick = bar_start + step * STEP
        for pitch in voicing_at(tick):
            part.add(tick, length * STEP - 30, pitch, _velocity(noise, plan, tick, level), noise(5))


def _comp_arpeggio(noise, plan, part, bar_start, level, voicing_at, pattern):
    """Broken chords: one voicing tone per step, in a fixed order, left to ring for two steps."""
    step_ticks, order = pattern
    for k, tick in enumerate(range(bar_start, bar_start + plan.meter.bar_ticks, step_ticks)):
        voicing = voicing_at(tick)
        tones = voicing + [voicing[0] + 12]
        pitch = tones[order[k % len(order)] % len(tones)]
        part.add(tick, 2 * step_ticks, pitch, _velocity(noise, plan, tick, level - 4), noise(5))


def _comp_strum(noise, plan, part, bar_start, level, voicing_at, pattern):
    """Guitar strums on eighths ("D" down, "U" up), strings 12 ticks apart, ringing to the next."""
    hits = [i for i, stroke in enumerate(pattern) if stroke != "."] + [len(pattern)]
    for i, after in zip(hits, hits[1:]):
        tick, down = bar_start + i * EIGHTH, pattern[i] == "D"
        strings = voicing_at(tick) if down else voicing_at(tick)[::-1][:4]  # upstrokes: top strings
        velocity = _velocity(noise, plan, tick, level) - (0 if down else 12)
        for k, pitch in enumerate(strings):
            part.add(tick + 12 * k, (after - i) * EIGHTH - 12 * k - 20, pitch, velocity - k, noise(3))


def _comp_skank(noise, plan, part, bar_start, level, voicing_at, pattern):
    """Short offbeat stabs of the top three chord tones (reggae, ska, funk)."""
    for offbeat in range(EIGHTH, plan.meter.bar_ticks, EIGHTH):
        if offbeat % plan.meter.pulse_ticks:
            tick = bar_start + offbeat
            for pitch in voicing_at(tick)[-3:]:
                part.add(tick, 100, pitch, _velocity(noise, plan, tick, level), noise(3))


COMP_BARS = {"block": _comp_block, "arpeggio": _comp_arpeggio, "strum": _comp_strum, "skank": _comp_skank}


def _guitar_voicing(chord: Chord, low: int = 40) -> list[int]:
    """Five or six strings: root, fifth, octave (or seventh), third, fifth, maybe the top root."""
    root = low + (chord.root - low) % 12
    third, fifth = chord.intervals[1], chord.intervals[2]
    top = chord.intervals[3] + 12 if len(chord.intervals) > 3 else 12
    strings = [root, root + fifth, root + top, root + third + 12, root + fifth + 12]
    return sorted(strings + ([root + 24] if root < 46 else []))


def _comp_pattern(rng, plan: Plan, style: str):
    """The per-bar pattern a comping style needs: a rhythm, strum string or arpeggio."""
    meter, swing = plan.meter, plan.style.swing
    if style == "arpeggio":
        step = STEP if plan.tempo_bpm < 100 and not swing else EIGHTH  # slow songs: sixteenths
        return step, _pick(rng, ARPEGGIOS)
    if style == "strum":
        return _pick(rng, STRUMS[meter.numerator])
    rhythms = BLOCK_RHYTHMS["jazz" if plan.style.jazz else meter.numerator]
    return _pick(rng, [r for r in rhythms if not swing or all(s % 2 == 0 for s, _ in r)] or rhythms)


def _comp(rng, noise: Noise, plan: Plan, part: Part):
    """Chords: block hits, arpeggios, strums or offbeat stabs, voice-led, one style per section kind."""
    guitar = part.program // 8 == 3
    choices = ("strum", "strum", "arpeggio", "skank") if guitar else ("block", "block", "arpeggio")
    voicings = [_guitar_voicing(chord) for _, _, chord in plan.slots] if guitar else _voicings(plan, 53, 77)
    styles = {kind: _pick(rng, choices) for kind in KIND_LEVELS}
    patterns = {kind: _comp_pattern(rng, plan, styles[kind]) for kind in KIND_LEVELS}
    bar = plan.meter.bar_ticks
    for section in plan.sections:
        style, pattern = styles[section.kind], patterns[section.kind]
        if section.kind == "ending":
            style, pattern = "block", ((0, bar // STEP),)
        if style == "block" and guitar:  # a guitar "block" is a single strum
            style, pattern = "strum", "D" + "." * (bar // EIGHTH - 1)
        write_bar = COMP_BARS[style]
        for bar_index in range(section.n_bars):
            write_bar(noise, plan, part, section.start_tick + bar_index * bar, section.level - 10,
                      lambda tick: voicings[plan.slot_index(tick)], pattern)
    if part.program < 8 and rng.random() < 0.6:
        _sustain_pedal(plan, part)


def _sustain_pedal(plan: Plan, part: Part):
    """Legato pedalling: lift at each chord change, press again just after."""
    for start, _, _ in plan.slots:
        if start > 0:
            part.controls.append((start, "cc", 64, 0))
        part.controls.append((start + 40, "cc", 64, 127))
    part.controls.append((plan.end_tick, "cc", 64, 0))


def _pad(rng, noise: Noise, plan: Plan, part: Part, level_offset: int = -20, low: int = 52, high: int = 76):
    """Sustained voice-led chords, common tones tied across chord changes; some sections tacet."""
    plays = {kind: rng.random() < p for kind, p in (("intro", 0.7), ("verse", 0.5), ("bridge", 0.8))}
    plays.update(chorus=True, ending=True)
    voicings, held = _voicings(plan, low, high), {}
    for (start, end, _), voicing in zip(plan.slots, voicings):
        section = plan.section_at(start)
        if not plays[section.kind]:
            held = {}
            continue
        now_held = {}
        for pitch in voicing:
            if pitch in held:  # tie the common tone instead of re-striking it
                index = held[pitch]
                first, _, _, velocity = part.notes[index]
                part.notes[index] = (first, end - 10 - first, pitch, velocity)
            else:
                index = len(part.notes)
                part.add(start, end - start - 10, pitch, section.level + level_offset + noise(4))
            now_held[pitch] = index
        held = now_held


def _rhythm_bar(rng, meter: Meter, density: float, swing: bool) -> list[tuple[int, int]]:
    """One bar of melody rhythm from pulse-long cells, busier as ``density`` rises."""
    cells = DOTTED_CELLS if meter is M68 else BEAT_CELLS
    if swing:  # no sixteenths in a swing feel
        cells = [cell for cell in cells if all(on % EIGHTH == 0 and n % EIGHTH == 0 for on, n in cell[0])]
    target, notes, tick = 0.5 + 2.5 * density, [], 0
    while tick < meter.bar_ticks:
        spans = [max([meter.pulse_ticks] + [on + n for on, n in cell]) for cell, _ in cells]
        options = [i for i, span in enumerate(spans) if tick + span <= meter.bar_ticks]
        choice = options[_pick_index(rng, [1 / (0.3 + abs(cells[i][1] - target)) for i in options])]
        notes += [(tick + on, n) for on, n in cells[choice][0]]
        tick += spans[choice]
    return notes or [(0, meter.pulse_ticks)]


def _motif(rng, meter: Meter, density: float, swing: bool) -> tuple[list, list[int]]:
    """A bar of rhythm and a contour (scale steps per note) that leaps are followed by steps back."""
    rhythm = _rhythm_bar(rng, meter, density, swing)
    steps, previous = [], 0
    for _ in rhythm:
        if abs(previous) >= 3:
            step = -1 if previous > 0 else 1
        else:
            step = MELODY_STEPS[_pick_index(rng, [w for _, w in MELODY_STEPS])][0]
        steps.append(step)
        previous = step
    return rhythm, steps


def _melody(rng, noise: Noise, plan: Plan, part: Part, level_offset: int = 4):
    """Phrases built from motifs: chord tones on beats, scale steps between, a cadence and a rest."""
    low, high = MELODY_REGISTERS.get(part.program, (55, 79) if part.program // 8 == 3 else (60, 84))
    meter, bar = plan.meter, plan.meter.bar_ticks
    bar_s = bar / TICKS_PER_BEAT * 60 / plan.tempo_bpm
    roles = ("a", "cadence") if bar_s >= 2.8 else ("a", "b", "a", "cadence")  # phrases of ~5-10 s
    motifs, pitch = {}, (low + high) // 2
    for section in plan.sections:
        if section.kind == "intro":
            continue
        if section.kind == "ending":
            final = _nearest((plan.tonic,), pitch, low, high)
            part.add(section.start_tick, bar - 60, final, section.level + level_offset)
            continue
        if section.kind not in motifs or rng.random() < 0.4:  # repeats keep "a", often vary "b"
            new = {role: _motif(rng, meter, section.density, plan.style.swing) for role in ("a", "b")}
            motifs[section.kind] = {"a": motifs.get(section.kind, new)["a"], "b": new["b"]}
        for bar_index in range(section.n_bars):
            bar_start, role = section.start_tick + bar_index * bar, roles[bar_index % len(roles)]
            if role == "cadence" or bar_index == section.n_bars - 1:
                level = section.level + level_offset
                pitch = _cadence(rng, noise, plan, part, bar_start, pitch, (low, high), level)
                continue
            rhythm, steps = motifs[section.kind][role]
            for (onset, length), step in zip(rhythm, steps):
                tick = bar_start + onset
                chord = plan.chord_at(tick)
                scale = _chord_scale(plan.scale, chord)
                target = _scale_step(pitch, step, scale)
                if not low <= target <= high:  # turn back at the edges of the register
                    target = _scale_step(pitch, -step, scale)
                if onset % meter.pulse_ticks == 0:
                    target = _nearest(chord.pcs, target, low, high)
                velocity = _velocity(noise, plan, tick, section.level + level_offset)
                part.add(tick, length - 30, target, velocity, noise(5))
                pitch = target


def _cadence(rng, noise, plan: Plan, part: Part, bar_start: int, pitch: int, register, level: int) -> int:
    """A phrase ending: a long root or third on the downbeat, then a rest."""
    chord, pulse = plan.chord_at(bar_start), plan.meter.pulse_ticks
    pitch = _nearest(chord.pcs[:2], pitch, *register)
    n_pulses = int(rng.integers(1, max(2, plan.meter.bar_ticks // pulse)))
    part.add(bar_start, n_pulses * pulse - 40, pitch, _velocity(noise, plan, bar_start, level), noise(4))
    return pitch


def _counter(rng, noise: Noise, plan: Plan, part: Part):
    """A slow guide-tone line under the melody: one chord tone per chord, moving by the smallest step."""
    low, high = 55, 74
    plays = {"intro": False, "verse": rng.random() < 0.4, "chorus": True, "bridge": True, "ending": True}
    pitch = (low + high) // 2
    for start, end, chord in plan.slots:
        section = plan.section_at(start)
        if not plays[section.kind]:
            continue
        pitch = _nearest(chord.pcs[1:], pitch, low, high)  # thirds, fifths, sevenths: no roots
        part.add(start, end - start - 40, pitch, section.level - 12 + noise(4), noise(4))


def _perc(rng, noise: Noise, plan: Plan, part: Part):
    """Percussive family: reverse-cymbal swells, steel-drum arpeggios or a two-pitch ostinato."""
    bar, pulse = plan.meter.bar_ticks, plan.meter.pulse_ticks
    if part.program == 119:  # a reverse cymbal swells into each new section
        for section in plan.sections[1:]:
            part.add(section.start_tick - 2 * pulse, 2 * pulse - 10, 60, section.level - 10)
        return
    voicings = _voicings(plan, 60, 84)
    pattern = _pick(rng, PERC_PATTERNS[bar // STEP])
    high = 60 + int(rng.integers(0, 13))
    plays = {kind: rng.random() < 0.7 for kind in KIND_LEVELS}
    plays["chorus"] = True
    if not any(plays[section.kind] for section in plan.sections[:-1]):  # a form without a chorus
        plays = dict.fromkeys(KIND_LEVELS, True)
    for section in plan.sections:
        if not plays[section.kind] or section.kind == "ending":
            continue
        for bar_index in range(section.n_bars):
            bar_start = section.start_tick + bar_index * bar
            if part.program == 114:  # steel drums play the chords
                _comp_arpeggio(noise, plan, part, bar_start, section.level - 6,
                               lambda tick: voicings[plan.slot_index(tick)], (EIGHTH, (0, 1, 2, 1)))
                continue
            for step, hit in enumerate(pattern):
                if hit != ".":
                    tick = bar_start + step * STEP
                    pitch = high if hit == "h" else high - 5
                    velocity = _velocity(noise, plan, tick, section.level - 12)
                    part.add(tick, STEP - 20, pitch, velocity, noise(3))


def _fx(rng, noise: Noise, plan: Plan, part: Part):
    """Synth effects as a quiet, high texture over the chords."""
    _pad(rng, noise, plan, part, level_offset=-26, low=60, high=79)


def _sfx(rng, noise: Noise, plan: Plan, part: Part):
    """Sound effects now and then: at the start, the end and some section changes."""
    short = part.program in (120, 121, 124, 127)  # fret noise, breath, telephone, gunshot are brief
    bar = plan.meter.bar_ticks
    for index, section in enumerate(plan.sections):
        if index == 0 or section.kind == "ending" or rng.random() < 0.3:
            length = EIGHTH if short else min(section.n_bars, 2) * bar - 60
            pitch = 60 + int(rng.integers(-5, 6))
            part.add(section.start_tick, length, pitch, section.level - 10 + noise(6))


WRITERS = {"drums": _drums, "bass": _bass, "comp": _comp, "melody": _melody, "pad": _pad,
           "counter": _counter, "perc": _perc, "fx": _fx, "sfx": _sfx}
