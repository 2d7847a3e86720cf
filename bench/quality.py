"""Quality benchmark: wavesep's separator against the field's reference designs trained on the
same data with the same budget, on held-out songs, with the mixture and the oracle mask as bounds.

What it does:

1. **Test sets.** ``--songs`` procedural songs from ``--seed`` (4242; the training data of
   ``make default-model`` is seed 7, so no test song was trained on), plus every MIDI file under
   ``--midi`` if given, each rendered with ``--soundfont`` (FluidR3_GM, the training SoundFont) and
   with ``--unseen-soundfont`` (TimGM6mb, timbres no model heard in training). Rendered once into
   ``--work`` and reused.
2. **Models.** For each stem set of ``--stem-sets`` (``band`` and ``seed4``) and each system of
   ``--systems`` (wavesep, conv-tasnet, hdemucs, open-unmix), the checkpoint
   ``RUNS/{stem_set}-{system}/best.pt``, and with ``--seeds N`` also the runs of training seeds 1 to
   N-1, ``RUNS/{stem_set}-{system}-seed{k}/`` (``training.seed=k``): at these budgets two seeds of
   one recipe differ by up to 1 dB, as much as the systems do. With ``--train DATASET``, the
   missing ones are trained first by ``wavesep train`` from ``configs/default.yaml`` (wavesep) or
   ``configs/peers/{system}.yaml`` on the rendered dataset DATASET, each with the same ``--budget``
   of CPU seconds on one thread (``training.budget_s``; ``--budget-seed4`` for seed4), ``--jobs``
   runs at once.
   ``--model NAME=WEIGHTS`` adds any other model (e.g. ``--model shipped=default``).
3. **Scores.** ``wavesep evaluate``'s SI-SDRi per stem over whole songs (mean and median over the
   songs where the stem plays), for each model and for the mixture and the oracle ideal ratio
   mask; the CPU real-time factor of each model on ``--rtf-seconds`` of a test mixture with
   ``--threads`` threads (separation in memory, after a warm-up; the median of three timings); the
   parameters; and the training budget read back from the checkpoint (steps, CPU seconds,
   hardware). Every model separates in ``--precision`` (``auto``: as ``wavesep separate`` does, so
   a latent-wavenet in bfloat16 on a CPU that has it natively, the peers in float32; the RTF cell
   says bfloat16 where it was). Scores already in ``--out`` for the same weights (SHA-256),
   precision, fitted gains (``fit_gains``) and test set are reused
   unless ``--fresh``, so adding a model scores only that one; the real-time factors are measured
   anew every run. The rows of systems left out of ``--systems`` stay as the earlier report has
   them, real-time factors too.

Prints a summary (each system's mean SI-SDRi over its seeds, with the lowest and highest), then
one Markdown table per stem set and test set with a row per run, and writes them with every figure
to ``--out`` (JSON and .md)::

    python bench/quality.py --runs runs/compare [--train DATA] [--budget 720] [--seeds 3] [--songs 8]
                            [--midi DIR] [--soundfont SF2] [--unseen-soundfont SF2] [--out FILE]

The peers need their packages, which ``make setup`` installs.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render import machine  # noqa: E402  (bench/ is no package: its sibling script's helper)

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = ("wavesep", "conv-tasnet", "hdemucs", "open-unmix")
# Bumped when a score's meaning changes, so that --out's older scores are not reused (2: the oracle
# charges the instruments a stem set leaves unnamed to no stem; 3: the models' raw stems, without
# adding what they miss to `other`).
SCORING = 3
SEEN_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
UNSEEN_SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"


def reusable(report: dict) -> dict:
    """The stem sets of an earlier report whose scores mean what this version's do: all of them
    from the same ``SCORING``; from version 2, those without an ``other`` stem (version 3 changed
    only what ``other`` holds)."""
    from wavesep.instruments import get_stem_set

    sets = report.get("stem_sets", {})
    if report.get("scoring") == SCORING:
        return sets
    if report.get("scoring") == 2:
        return {name: rows for name, rows in sets.items() if "other" not in get_stem_set(name).names}
    return {}


def config_of(system: str) -> Path:
    return ROOT / ("configs/default.yaml" if system == "wavesep" else f"configs/peers/{system}.yaml")


def run_name(stem_set: str, system: str, seed: int) -> str:
    """A run's folder under --runs: seed 0's has no suffix (runs made before --seeds keep their names)."""
    return f"{stem_set}-{system}" + (f"-seed{seed}" if seed else "")


def train_missing(runs: Path, data: Path, stem_sets: list[str], systems: list[str], budgets: dict[str, float],
                  seeds: int = 1, jobs: int = 1):
    """Train every run of ``seeds`` training seeds that has not spent its budget, one thread each,
    ``jobs`` at a time. An interrupted run resumes where its last checkpoint left it; a finished run
    given a larger budget continues (a smaller one is an error: its weights have had more). A run
    that fails does not stop the others; the failures are named at the end."""
    commands = {}
    for stem_set, system, seed in itertools.product(stem_sets, systems, range(seeds)):
        run, budget = runs / run_name(stem_set, system, seed), budgets[stem_set]
        used = _budget_used(run)
        if used is not None and used >= budget:
            if used > budget * 1.05:
                raise SystemExit(f"{run}: trained with {used:.0f} CPU s, more than --budget {budget:g}; "
                                 "move it away to train it again")
            continue
        command = [sys.executable, "-m", "wavesep", "train", "--no-progress"]
        if (run / "last.pt").exists():
            command += ["--resume", str(run)]
        else:
            command += [str(config_of(system)), "--run-dir", str(run), "--set", f"data.source={data}",
                        "--set", f"data.stem_set={stem_set}", "--set", f"training.seed={seed}"]
        commands[run] = (command + ["--set", f"training.budget_s={budget}"], budget)

    def train(run: Path) -> int:
        command, budget = commands[run]
        print(f"training {run.name} ({budget:g} CPU s)", flush=True)
        return subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}).returncode

    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
        failed = [run.name for run, code in zip(commands, pool.map(train, commands)) if code]
    busy = [f"{run.name} ({share:.0%})" for run in commands if (done := _done(run))
            and (share := cpu_share(done)) is not None and share < BUSY]
    if busy:
        print(f"warning: these runs had less than {BUSY:.0%} of their CPU while training (another process ran "
              f"beside them), so their budgets bought fewer steps than on an idle machine: {', '.join(busy)}",
              flush=True)
    if failed:
        raise SystemExit(f"training failed: {', '.join(failed)} (see the errors above)")


def _done(run: Path) -> dict | None:
    """A finished run's last "done" record in its log (its steps and the budget it used), or None."""
    log = run / "log.jsonl"
    if not (run / "best.pt").exists() or not log.exists():
        return None
    done = None
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a crash
            continue
        if record.get("done"):
            done = record
    return done


def _budget_used(run: Path) -> float | None:
    """The budget a finished run used, or None."""
    done = _done(run)
    return None if done is None else done.get("budget_used_s", 0.0)


def test_sets(work: Path, songs: int, seed: int, midi: Path | None, soundfonts: dict[str, str]) -> dict:
    """label -> list of rendered split folders; renders what is missing (a resumed render skips
    finished songs)."""
    from wavesep.midi.generate import generate_songs
    from wavesep.synth.batch import render_dataset
    from wavesep.synth.render import RenderSettings

    generated = work / f"generated-seed{seed}-{songs}"  # its own folder: no song of another seed or count
    sources = {f"{songs} generated songs (seed {seed})": generated}
    generate_songs(generated, songs, seed)
    if midi is not None:
        sources[f"MIDI files of {midi}"] = midi
    sets = {}
    for (source_label, source), (font_label, soundfont) in ((s, f) for s in sources.items() for f in soundfonts.items()):
        out = work / f"{source.name}-{Path(soundfont).stem}"
        summary = render_dataset(source, out, soundfont, RenderSettings(), workers=os.cpu_count() or 1, progress=False)
        if summary.failed:
            print(f"{out}: {summary.failed} songs failed to render; scoring the others", flush=True)
        sets[f"{source_label}, {font_label}"] = sorted(p for p in out.iterdir() if p.is_dir())
    return sets


def training_budget(path: str) -> dict:
    """Steps, CPU seconds, hardware, arithmetic and data (None where the file predates its record) a
    checkpoint or weights file says it was trained with; for a run's best checkpoint, also the whole
    run's steps and budget (``run_step``, ``run_budget_used_s``): the best one may come early."""
    from wavesep.pretrained import training_info

    info = training_info(path)
    budget = {key: info.get(key) for key in ("step", "budget_used_s", "budget_unit", "hardware",
                                             "precision", "training_data")}
    if Path(path).is_file() and (done := _done(Path(path).parent)) and done.get("step") is not None:
        budget |= {"run_step": done["step"], "run_budget_used_s": done.get("budget_used_s"),
                   "budget_unit": budget["budget_unit"] or done.get("budget_unit"), "cpu_share": cpu_share(done)}
    return budget


def cpu_share(done: dict) -> float | None:
    """The share of its threads' CPU time a run's training steps had: CPU seconds over wall-clock
    seconds times threads, from its "done" record (None for runs older than that record, or timed in
    wall-clock seconds). Below ``BUSY`` another process ran beside it and its budget bought fewer steps."""
    if done.get("budget_unit") != "CPU seconds" or not done.get("steps_wall_s") or not done.get("threads"):
        return None
    return done["budget_used_s"] / (done["steps_wall_s"] * done["threads"])


# A training run alone on its cores gets ~100 % of their CPU time (what data loading waits for aside);
# one that had less shared them, and even at a budget of CPU seconds a process beside it costs steps
# (measured: a test suite at the lowest priority cost two runs 10 and 12 % of their steps).
BUSY = 0.9


def real_time_factor(separator, mixture: np.ndarray, sample_rate: int, seconds: float, repeats: int = 3) -> float:
    """Seconds of separation per second of audio, in memory, after a warm-up on the segment's
    shape (torch's CPU kernels are prepared per input shape on first use): the median of
    ``repeats`` timings, since one timing of the same model varied by up to 1.5x on this machine."""
    excerpt = mixture[:, : int(seconds * sample_rate)]
    separator.separate(excerpt[:, : int(1.5 * separator.segment_s * sample_rate)])
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        separator.separate(excerpt)
        timings.append((time.perf_counter() - started) / (excerpt.shape[-1] / sample_rate))
    return float(np.median(timings))


def weights_hash(path: str) -> str:
    """SHA-256 of a checkpoint or weights file; a registered name's from the manifest ("" for
    the built-in untrained model)."""
    from wavesep.pretrained import MANIFEST, sha256

    if not Path(path).is_file():
        return json.loads(MANIFEST.read_text()).get(path, {}).get("sha256", "") if MANIFEST.exists() else ""
    return sha256(path)


def score(models: dict[str, str], sets: dict, stem_set: str, rtf_seconds: float, previous: dict,
          precision: str = "auto") -> dict:
    """Every model on every test set: the summaries of :func:`wavesep.evaluate.evaluate`, separated
    in ``precision`` (what it means for each model: :func:`wavesep.separate.separation_precision`).
    Scores in ``previous`` (an earlier report's rows) for the same weights, precision, fitted gains
    and test set are reused (rows older than the precision's record were float32, those older than
    the fitted gains' had none); the real-time factor is always measured anew."""
    from wavesep.data.dataset import load_songs
    from wavesep.evaluate import evaluate, song_audio
    from wavesep.instruments import get_stem_set
    from wavesep.separate import Separator

    first = load_songs(next(iter(sets.values())))[0]
    mixture, _ = song_audio(first, get_stem_set(stem_set))
    rows = {}
    for name, path in models.items():
        separator = Separator(path, precision=precision)
        rows[name] = {"weights": path, "sha256": weights_hash(path), "parameters": separator.model.n_parameters(),
                      "model": separator.model.describe()["name"], "training": training_budget(path),
                      "precision": separator.precision, "fit_gains": separator.fit_gains,
                      "rtf": real_time_factor(separator, mixture, first.sample_rate, rtf_seconds), "sets": {}}
        before = previous.get(name, {})
        same = ((before.get("sha256"), before.get("precision", "float32"), before.get("fit_gains", False))
                == (rows[name]["sha256"], separator.precision, separator.fit_gains))
        for label, splits in sets.items():
            if same and label in before.get("sets", {}):
                rows[name]["sets"][label] = before["sets"][label]
                print(f"  {stem_set} {name} on {label}: scores of the previous report (same weights, precision and gains)",
                      flush=True)
                continue
            started = time.perf_counter()
            results = evaluate(separator, splits, stem_set, bss=False)
            rows[name]["sets"][label] = results["summary"]
            print(f"  {stem_set} {name} on {label}: {time.perf_counter() - started:.0f} s, mean SI-SDRi "
                  f"{results['summary']['model']['mean']['SI-SDRi']['mean']:+.2f} dB", flush=True)
    return rows


def table(rows: dict, label: str, stems: list[str]) -> str:
    """Markdown: one row per model and bound, mean (median) SI-SDRi per stem."""
    head = ["system", *stems, "mean", "params", "CPU RTF", "training"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]

    def cells(summary: dict) -> list[str]:
        out = []
        for stem in [*stems, "mean"]:
            cell = summary.get(stem, {}).get("SI-SDRi")
            out.append("—" if cell is None else f"{cell['mean']:+.2f} ({cell['median']:+.2f})")
        return out

    bounds = None
    for name, row in rows.items():
        summary = row["sets"][label]
        bounds = bounds or summary
        t = row["training"]
        separated_in = ", bfloat16" if row.get("precision") == "bfloat16" else ""
        unit = "CPU min" if t.get("budget_unit", "CPU seconds") == "CPU seconds" else "min"
        steps, used = t.get("run_step", t.get("step")), t.get("run_budget_used_s", t.get("budget_used_s"))
        budget = f"{steps} steps, {used / 60:.1f} {unit}" if used else f"{steps} steps" if steps else "—"
        budget += f" (best at step {t['step']})" if steps != t.get("step") else ""
        budget += f", {t['precision']}" if t.get("precision") else ""
        budget += f", {t['hardware']}" if t.get("hardware") else ""
        if (share := t.get("cpu_share")) is not None and share < BUSY:
            budget += f", **{share:.0%} of its CPU: trained on a busy machine**"
        if data := t.get("training_data"):  # what it learned from (runs older than this record have none)
            fonts = " + ".join(Path(font).stem for font in data.get("soundfonts", []))
            budget += f"; {data['songs']} songs, {data['hours']:.1f} h, {fonts}" if "songs" in data else ""
            budget += f", {len(data['drum_kits'])} drum kits" if data.get("drum_kits") else ""
        lines.append(f"| {name} ({row['model']}) | " + " | ".join(cells(summary["model"])) +
                     f" | {row['parameters'] / 1e6:.2f} M | {row['rtf']:.3f}{separated_in} | {budget} |")
    for bound in ("mixture", "oracle IRM"):
        lines.append(f"| {bound} | " + " | ".join(cells(bounds[bound])) + " | | | |")
    return "\n".join(lines)


def system_of(row: str) -> str:
    """The system of a report row: "wavesep seed 2" -> "wavesep" (a --model row is its own)."""
    return row.split(" seed ")[0]


def _rank(name: str) -> int:
    """Rows in the order of SYSTEMS, then any other model."""
    system = system_of(name)
    return SYSTEMS.index(system) if system in SYSTEMS else len(SYSTEMS)


def summary(stem_sets: dict) -> str:
    """Markdown: one row per stem set and test set, one column per system, each cell the mean
    SI-SDRi over the system's runs (its seeds) with the lowest and highest in brackets."""
    runs = {}  # system -> (stem set, test set) -> each run's mean SI-SDRi
    for stem_set, rows in stem_sets.items():
        for name, row in rows.items():
            for label, result in row["sets"].items():
                runs.setdefault(system_of(name), {}).setdefault((stem_set, label), []).append(
                    result["model"]["mean"]["SI-SDRi"]["mean"])
    lines = ["| stem set | test set | " + " | ".join(runs) + " |", "|---" * (2 + len(runs)) + "|"]
    for stem_set, rows in stem_sets.items():
        for label in next(iter(rows.values()))["sets"]:
            cells = []
            for scores in (by_set.get((stem_set, label), []) for by_set in runs.values()):
                cells.append("—" if not scores else f"{np.mean(scores):+.2f}" if len(scores) == 1 else
                             f"{np.mean(scores):+.2f} [{min(scores):+.2f}, {max(scores):+.2f}] ({len(scores)} runs)")
            lines.append(f"| {stem_set} | {label} | " + " | ".join(cells) + " |")
    cpus = sorted({row["training"]["hardware"] for rows in stem_sets.values() for row in rows.values()
                   if row["training"].get("budget_unit") == "CPU seconds" and row["training"].get("hardware")})
    if len(cpus) > 1:  # a CPU second buys another number of steps on another CPU
        lines.append(f"\nNot one equal budget: the runs were trained on {len(cpus)} kinds of CPU ({'; '.join(cpus)}), "
                     "and a CPU second buys each system another number of steps on each.")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs/compare", help="the runs {stem_set}-{system}/")
    parser.add_argument("--train", type=Path, metavar="DATASET", help="train missing runs on this rendered dataset")
    parser.add_argument("--budget", type=float, default=720.0, help="CPU seconds of training per band model")
    parser.add_argument("--budget-seed4", type=float, default=480.0, help="CPU seconds of training per seed4 model")
    parser.add_argument("--seeds", type=int, default=1, help="training seeds per system (default 1)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs trained at once, one thread each (at most the CPU cores; default 1)")
    parser.add_argument("--stem-sets", nargs="+", default=["band", "seed4"])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--model", action="append", default=[], metavar="NAME=WEIGHTS",
                        help="another model to score (its own stem set must be one of --stem-sets)")
    parser.add_argument("--songs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=4242)
    parser.add_argument("--midi", type=Path, help="also score on these MIDI files")
    parser.add_argument("--soundfont", default=SEEN_SOUNDFONT)
    parser.add_argument("--unseen-soundfont", default=UNSEEN_SOUNDFONT, help="'' to skip")
    parser.add_argument("--work", type=Path, default=ROOT / "bench-output/quality")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rtf-seconds", type=float, default=30.0)
    parser.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto",
                        help="separation arithmetic, as `wavesep separate --precision` (default auto)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-output/quality.json")
    parser.add_argument("--fresh", action="store_true", help="score every model again, even those --out has scores for")
    args = parser.parse_args(argv)

    fonts = {"seen SoundFont " + Path(args.soundfont).stem: args.soundfont}
    if args.unseen_soundfont:
        fonts["unseen SoundFont " + Path(args.unseen_soundfont).stem] = args.unseen_soundfont
    if args.train:
        budgets = {s: args.budget_seed4 if s == "seed4" else args.budget for s in args.stem_sets}
        train_missing(args.runs, args.train, args.stem_sets, args.systems, budgets, args.seeds, args.jobs)
    sets = test_sets(args.work, args.songs, args.seed, args.midi, fonts)

    import torch

    from wavesep.evaluate import nan_to_none
    from wavesep.instruments import get_stem_set
    from wavesep.pretrained import load_any

    torch.set_num_threads(args.threads)
    extra = dict(item.split("=", 1) for item in args.model)
    extra_sources = {name: load_any(path).sources for name, path in extra.items()}
    for name, sources in extra_sources.items():
        if not any(sources == get_stem_set(s).names for s in args.stem_sets):
            parser.error(f"--model {name}: its stems ({', '.join(sources)}) are none of --stem-sets")
    report = {"scoring": SCORING, "date": datetime.date.today().isoformat(), "machine": machine(),
              "threads": args.threads, "torch": torch.__version__,
              "sets": {label: [str(s) for s in splits] for label, splits in sets.items()}, "stem_sets": {}}
    previous = reusable(json.loads(args.out.read_text())) if args.out.exists() else {}
    text = []
    for stem_set in [*args.stem_sets, *(s for s in previous if s not in args.stem_sets)]:
        stems = get_stem_set(stem_set).names
        if stem_set not in args.stem_sets:  # not asked for this time: the earlier report's rows stay
            rows = report["stem_sets"][stem_set] = previous[stem_set]
            for label in next(iter(rows.values()))["sets"]:
                text.append(f"### {stem_set} stems, {label}\n\nSI-SDRi, dB: mean (median) over songs.\n\n"
                            f"{table(rows, label, stems)}\n")
            continue
        models = {system + (f" seed {seed}" if seed else ""): str(args.runs / run_name(stem_set, system, seed) / "best.pt")
                  for system, seed in itertools.product(args.systems, range(args.seeds))
                  if (args.runs / run_name(stem_set, system, seed) / "best.pt").exists()}
        models |= {name: extra[name] for name, sources in extra_sources.items()
                   if sources == get_stem_set(stem_set).names}
        before = {} if args.fresh else previous.get(stem_set, {})
        # systems not asked for this time keep their rows (and their real-time factors) of the earlier report
        kept = {name: row for name, row in before.items() if name not in models and set(sets) <= set(row["sets"])
                and system_of(name) not in args.systems and name not in extra}
        if not models and not kept:
            print(f"{stem_set}: no trained runs in {args.runs} (use --train)", flush=True)
            continue
        rows = score(models, sets, stem_set, args.rtf_seconds, before, args.precision) | kept
        rows = dict(sorted(rows.items(), key=lambda item: (_rank(item[0]), item[0])))
        report["stem_sets"][stem_set] = rows
        for label in sets:
            text.append(f"### {stem_set} stems, {label}\n\nSI-SDRi, dB: mean (median) over songs.\n\n"
                        f"{table(rows, label, stems)}\n")
    if report["stem_sets"]:
        text.insert(0, "### Summary\n\nMean SI-SDRi over the songs, dB; with several runs of a system (--seeds), "
                       f"their mean [lowest, highest].\n\n{summary(report['stem_sets'])}\n")
    print("\n".join(text))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(nan_to_none(report), indent=1, allow_nan=False) + "\n")
    args.out.with_suffix(".md").write_text("\n".join(text))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
