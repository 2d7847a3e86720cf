"""The ``wavesep`` command: a thin layer over the Python API, one function per subcommand."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from wavesep import __version__


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _program_list(text: str) -> list[int]:
    from wavesep.instruments import parse_programs

    try:
        return [min(parse_programs(item)) for item in text.split(",")]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _kit_list(text: str) -> tuple[int, ...]:
    from wavesep.synth.render import parse_drum_kits

    try:
        return parse_drum_kits(text)  # checked at parse time
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wavesep",
        description="Music source separation in the waveform domain, trained on stems rendered from MIDI.",
    )
    parser.add_argument("--version", action="version", version=f"wavesep {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    midi = commands.add_parser("midi", help="make and index MIDI corpora")
    midi_commands = midi.add_subparsers(dest="midi_command", metavar="COMMAND", required=True)
    generate = midi_commands.add_parser("generate", help="write procedural multi-instrument songs as MIDI")
    generate.add_argument("--out", required=True, type=Path, help="folder for the .mid files")
    generate.add_argument("--songs", type=_positive_int, default=10, help="how many songs (default 10)")
    generate.add_argument("--seed", type=int, default=0, help="same seed, same songs (default 0)")
    generate.set_defaults(func=cmd_generate)

    index = midi_commands.add_parser("index", help="scan MIDI files: instruments, durations, splits, errors")
    index.add_argument("source", type=Path, help="a folder of .mid/.midi files (searched recursively) or one file")
    index.add_argument("--out", required=True, type=Path, help="index file to write (JSON Lines)")
    index.add_argument("--workers", type=_positive_int, default=os.cpu_count() or 1)
    index.set_defaults(func=cmd_index)

    music21 = midi_commands.add_parser("music21", help="write scores of music21's bundled corpus as MIDI")
    music21.add_argument("--out", required=True, type=Path, help="folder for the .mid files")
    music21.add_argument("--composer", help="one composer or collection, e.g. bach, palestrina (default: all)")
    music21.add_argument("--limit", type=_positive_int, help="at most this many scores")
    music21.add_argument("--programs", type=_program_list, metavar="P,P,...",
                         help="re-orchestrate: part i gets the i-th program (cycling), e.g. 73,71,42,32")
    music21.set_defaults(func=cmd_music21)

    render = commands.add_parser(
        "render", help="render MIDI songs to per-instrument stems and their mixture",
        description="Render each instrument of each song to its own stem, in one pass, so that the mixture "
                    "is exactly the sum of the stems. Resumable: finished songs are skipped.",
    )
    render.add_argument("source", type=Path, help="a MIDI folder, a MIDI file, or an index from `wavesep midi index`")
    render.add_argument("--out", required=True, type=Path, help="dataset folder")
    render.add_argument("--soundfont", type=Path, action="append",
                        help="an .sf2 or .sf3 file (default: FluidR3_GM); given several times, each instrument "
                             "of each song plays from one of them, drawn per song and instrument")
    render.add_argument("--drum-kits", type=_kit_list, default=(), metavar="K,K,...|gm",
                        help="each drum instrument plays a kit (bank 128 preset) drawn per song and instrument "
                             "from these, whatever kit the MIDI asks for; gm: the 8 General MIDI kits "
                             "(Standard, Room, Power, Electronic, TR-808, Jazz, Brush, Orchestra)")
    render.add_argument("--sample-rate", type=int, default=44100)
    render.add_argument("--workers", type=_positive_int, default=os.cpu_count() or 1)
    render.add_argument("--shard", default="1/1", metavar="K/N", help="render only shard K of N (default 1/1)")
    render.add_argument("--tail", type=float, default=3.0, metavar="SECONDS",
                        help="cap on release tails after the last note (default 3)")
    render.add_argument("--stem-lufs", type=float, default=-13.0, help="loudness of every stem (default -13)")
    render.add_argument("--format", choices=["flac", "wav"], default="flac",
                        help="24-bit FLAC (default) or 24-bit WAV (faster to write, ~3x bigger)")
    render.set_defaults(func=cmd_render)

    instruments = commands.add_parser("instruments", help="list General MIDI programs and stem sets")
    instruments.add_argument("--stem-set", help="show one stem set (a built-in name or a YAML file)")
    instruments.set_defaults(func=cmd_instruments)

    demo = commands.add_parser(
        "demo", help="the whole path: generate songs, render, separate, evaluate, write a listening page")
    demo.add_argument("--out", type=Path, default=Path("demo-output"))
    demo.add_argument("--songs", type=_positive_int, default=4)
    demo.add_argument("-m", "--model", default="default", help="the separator (default: default, the shipped model)")
    demo.add_argument("--seed", type=int, default=2026, help="song seed; the shipped model never trained on 2026's songs")
    demo.add_argument("--workers", type=_positive_int, default=os.cpu_count() or 1)
    demo.set_defaults(func=cmd_demo)

    _add_train(commands)
    _add_separate(commands)
    _add_evaluate(commands)
    export = commands.add_parser("export", help="write a checkpoint's model as .safetensors weights (and ship it)")
    export.add_argument("checkpoint", type=Path, help="a training checkpoint, e.g. runs/NAME/best.pt")
    export.add_argument("--out", type=Path, required=True, help="the .safetensors file to write")
    export.add_argument("--register", metavar="NAME",
                        help="also ship it inside the package as model NAME (copied to wavesep/weights)")
    export.add_argument("--description", default="", help="one line for `wavesep models` (with --register)")
    export.add_argument("--info", action="append", default=[], metavar="KEY=VALUE",
                        help="extra metadata (a YAML value), e.g. --info floor_si_sdri=2.0 (repeatable)")
    export.set_defaults(func=cmd_export)
    models = commands.add_parser("models", help="list the registered models")
    models.set_defaults(func=cmd_models)
    return parser


PRECISION_HELP = ("float32, bfloat16, or auto (default): bfloat16 on a CPU that has it natively (AVX512-BF16, AMX) "
                  "for a latent-wavenet, 1.2x-1.35x faster, its stems ~50 dB from float32's; else float32")
SHIFTS_HELP = ("separate each segment N times, delayed by N fixed offsets within 0.5 s, and average "
               "(Demucs's shift trick, reproducible): N times the work (default 1)")


def _add_evaluate(commands):
    evaluate = commands.add_parser(
        "evaluate", help="score a model on a rendered test set (SI-SDR, SI-SDRi, BSS Eval v4)",
        description="Separate every song of a rendered split and score the stems: SI-SDR and its improvement "
                    "over the mixture, and BSS Eval v4 SDR/SIR/SAR/ISR (median over 1 s frames), per song and "
                    "stem; mean and median per stem. The mixture as estimate (the floor) and the oracle ideal "
                    "ratio mask (the ceiling of masking) are scored in the same table.",
    )
    samples = commands.add_parser(
        "samples", help="write a listening page: mixtures, references and estimates with scores",
    )
    for command in (evaluate, samples):
        command.add_argument("-m", "--model", help="a registered name, .safetensors or checkpoint (default: default)")
        command.add_argument("--data", required=True, type=Path, help="a rendered split, e.g. DATASET/test")
        command.add_argument("--stems", metavar="SET", help="the model's stem set (default: found from its stems)")
        command.add_argument("--songs", type=_positive_int, help="only the first N songs")
        command.add_argument("--device", default="cpu")
        command.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto", help=PRECISION_HELP)
        command.add_argument("--shifts", type=_positive_int, default=1, metavar="N", help=SHIFTS_HELP)
    evaluate.add_argument("--out", type=Path, default=Path("results.json"),
                          help="results as JSON; the same name with .md gets the Markdown table (default results.json)")
    evaluate.add_argument("--no-bss", action="store_true", help="SI-SDR only (BSS Eval takes ~1 s per song-minute)")
    evaluate.set_defaults(func=cmd_evaluate)
    samples.add_argument("--out", type=Path, required=True, help="folder of the page (index.html inside)")
    samples.add_argument("--excerpt", type=float, default=20.0, metavar="SECONDS",
                         help="seconds of each song on the page, from its middle (default 20)")
    samples.set_defaults(func=cmd_samples)


def _csv(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one name")
    return items


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def _add_separate(commands):
    separate = commands.add_parser(
        "separate", help="separate audio files into stems",
        description="Separate audio files (WAV, FLAC, OGG, MP3; any sample rate; mono or stereo) into one "
                    "file per stem, of the input's length, sample rate and channels. Long files are "
                    "separated in overlapping segments with cross-fades, in bounded memory. Files already "
                    "separated are skipped unless --force. A file that fails is reported and the others "
                    "still go through; the exit status is then 1.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="clipping (--clip):\n"
               "  rescale  if any stem peaks above full scale, every stem of the track gets one common\n"
               "           gain that brings the loudest peak to 0.999 (stems keep their balance; with\n"
               "           --consistent they still sum to the scaled input). The default.\n"
               "  clamp    samples beyond full scale are cut at +-1.\n"
               "  none     samples are written as computed: with --consistent and a model that has an\n"
               "           `other` stem, the stems then sum to the input within float error. Use --bits\n"
               "           float to keep samples beyond full scale; integer formats cannot hold them (they\n"
               "           are cut).",
    )
    separate.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="audio files or folders of them")
    separate.add_argument("-m", "--model", help="a registered model name, a .safetensors file or a training "
                                                "checkpoint (default: default)")
    separate.add_argument("-o", "--out", type=Path, default=Path("separated"), help="output folder (default separated)")
    separate.add_argument("--stems", type=_csv, metavar="S,S,...", help="write only these stems, e.g. drums,bass")
    separate.add_argument("--instruments", type=_csv, metavar="I,I,...",
                          help="informed models: what plays (stem, GM instrument or family names), e.g. flute,trumpet")
    separate.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    separate.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto", help=PRECISION_HELP)
    separate.add_argument("--segment", type=float, metavar="SECONDS", help="segment length (default 10 s)")
    separate.add_argument("--overlap", type=_fraction, default=0.25, metavar="FRACTION",
                          help="fraction of a segment shared with the next, cross-faded (default 0.25)")
    separate.add_argument("--shifts", type=_positive_int, default=1, metavar="N", help=SHIFTS_HELP)
    separate.add_argument("--batch", type=_positive_int, metavar="N",
                          help="segments per model call (default 1 on the CPU, 8 on a GPU)")
    separate.add_argument("--format", choices=["wav", "flac"], default="wav", help="output format (default wav)")
    separate.add_argument("--bits", choices=["16", "24", "32", "float"], default="float",
                          help="integer bits or 32-bit float (default float; FLAC: 16 or 24)")
    separate.add_argument("--clip", choices=["rescale", "clamp", "none"], default="rescale",
                          help="what to do with samples beyond full scale (see below; default rescale)")
    separate.add_argument("--filename", default="{track}/{stem}.{ext}", metavar="TEMPLATE",
                          help="output path under --out, from {track}, {stem}, {ext} (default {track}/{stem}.{ext})")
    separate.add_argument("--threshold", type=_fraction, default=0.5,
                          help="blind models: presence probability to keep a stem (default 0.5)")
    separate.add_argument("--consistent", action="store_true",
                          help="add what the stems miss of the input to `other`, so that they sum to the input "
                               "(costs `other` quality: the shipped model's loses 5 dB SI-SDR)")
    separate.add_argument("--force", action="store_true", help="separate again files already separated")
    separate.add_argument("--no-progress", action="store_true", help="no progress bar")
    separate.set_defaults(func=cmd_separate)


def _add_train(commands):
    train = commands.add_parser(
        "train", help="train a separator from a YAML config (see configs/)",
        description="Train a separator. Under torchrun (torchrun --nproc-per-node N -m wavesep train ...) "
                    "each process trains on its share with DistributedDataParallel.",
    )
    train.add_argument("config", nargs="?", type=Path, help="YAML config; omit with --resume")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override one config value, e.g. --set training.steps=200 (repeatable)")
    train.add_argument("--run-dir", type=Path, help="where checkpoints and logs go (default: runs/<config name>)")
    train.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run saved in RUN_DIR exactly")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as error:  # bad input or a file system refusal: one line
        print(f"wavesep: error: {error}", file=sys.stderr)
        return 1
    except RuntimeError as error:
        from wavesep.train import TrainingStopped

        if not isinstance(error, TrainingStopped):
            raise
        print(f"wavesep: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        print(f"wavesep: {interrupt or 'interrupted; re-run the same command to resume'}", file=sys.stderr)
        return 130


def cmd_generate(args) -> int:
    from wavesep.midi.generate import generate_songs

    paths = generate_songs(args.out, args.songs, args.seed)
    print(f"wrote {len(paths)} songs to {args.out}")
    return 0


def cmd_music21(args) -> int:
    from wavesep.midi.music21_corpus import export_corpus

    written, failed = export_corpus(args.out, args.composer, args.limit, args.programs)
    for path, reason in failed:
        print(f"wavesep: {path}: {reason}", file=sys.stderr)
    print(f"wrote {len(written)} MIDI files to {args.out}" + (f", {len(failed)} scores failed" if failed else ""))
    return 1 if failed else 0


def cmd_index(args) -> int:
    from wavesep.midi.index import build_index, summarize

    records = build_index(args.source, args.out, workers=args.workers)
    print(summarize(records))
    print(f"index written to {args.out}")
    return 0


def _render_settings(args):
    from wavesep.synth.render import RenderSettings

    return RenderSettings(sample_rate=args.sample_rate, tail_s=args.tail, stem_lufs=args.stem_lufs,
                          drum_kits=args.drum_kits)


def cmd_render(args) -> int:
    from wavesep.synth.batch import parse_shard, render_dataset

    summary = render_dataset(args.source, args.out, args.soundfont, _render_settings(args),
                             workers=args.workers, shard=parse_shard(args.shard), audio_format=args.format)
    print(summary.text())
    return 1 if summary.failed else 0


def cmd_instruments(args) -> int:
    from wavesep import instruments as gm

    if args.stem_set:
        sets = [gm.get_stem_set(args.stem_set)]
    else:
        for program in range(gm.DRUMS + 1):
            print(f"{program:4d}  {gm.program_name(program):28s} {gm.family_name(program)}")
        sets = list(gm.STEM_SETS.values())
    for stem_set in sets:
        print(f"\nstem set {stem_set.name}:")
        for stem in stem_set.stems:
            print(f"  {stem.name:14s} {_ranges(sorted(stem.programs))}")
        if stem_set.other:
            print(f"  {gm.OTHER:14s} every other instrument")
    return 0


def _ranges(programs: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    runs: list[list[int]] = []
    for program in programs:
        if runs and program == runs[-1][1] + 1:
            runs[-1][1] = program
        else:
            runs.append([program, program])
    return ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in runs)


def cmd_demo(args) -> int:
    """The whole path on embedded defaults: songs, stems, separation, scores, a listening page."""
    from wavesep.midi.generate import generate_songs
    from wavesep.synth.batch import render_dataset
    from wavesep.synth.render import RenderSettings

    midi_dir, dataset = args.out / "midi", args.out / "dataset"
    paths = generate_songs(midi_dir, args.songs, args.seed)
    print(f"1/5 generated {len(paths)} songs in {midi_dir}")
    summary = render_dataset(midi_dir, dataset, None, RenderSettings(), workers=args.workers)
    print(f"2/5 rendered into {dataset}\n{summary.text()}")
    # torch is imported only now, after the render workers are started.
    from wavesep.evaluate import evaluate, markdown_table, write_results, write_samples
    from wavesep.separate import Separator

    separator = Separator(args.model)
    splits = sorted(p for p in dataset.iterdir() if p.is_dir())  # songs the model never trained on, all splits
    mixtures = sorted(dataset.glob("*/*/mix.flac"))
    if not mixtures:
        raise ValueError(f"{dataset}: no song rendered")
    separated = args.out / "separated"
    for mix in mixtures[:2]:
        separator.separate_file(mix, separated, template=f"{mix.parent.name}/{{stem}}.{{ext}}", force=True)
    print(f"3/5 separated {min(2, len(mixtures))} mixtures with model {args.model!r} into {separated} "
          f"(stems: {', '.join(separator.stems)})")
    results = evaluate(separator, splits, bss=True)
    json_path, markdown_path = write_results(results, args.out / "results.json")
    print(f"4/5 scored {len(results['songs'])} songs (mean (median) over songs, dB):\n{markdown_table(results)}\n"
          f"{results['definitions']}\nwrote {json_path} and {markdown_path}")
    index = write_samples(separator, splits, args.out / "samples", max_songs=len(mixtures))
    print(f"5/5 wrote the listening page: open {index.resolve().as_uri()}")
    return 1 if summary.failed else 0


def cmd_separate(args) -> int:
    from tqdm import tqdm

    from wavesep.audio import BadAudio, all_audio_files, open_audio, subtype
    from wavesep.separate import Separator, stem_path

    subtype(args.format, args.bits)
    stem_path(args.out, args.filename, "track", "stem", args.format)  # a bad template fails before any work
    separator = Separator(args.model, device=args.device, segment_s=args.segment, overlap=args.overlap,
                          stems=args.stems, instruments=args.instruments, threshold=args.threshold,
                          consistency=args.consistent, batch=args.batch, precision=args.precision,
                          shifts=args.shifts)
    out = args.out.resolve()
    files = [f for f in all_audio_files(args.paths) if out not in f.resolve().parents]  # not our own stems
    if not files:
        raise ValueError(f"no audio files in {', '.join(map(str, args.paths))}")
    total_s = 0.0
    for path in files:  # for the progress bar only; unreadable files fail properly below
        try:
            total_s += open_audio(path).duration_s
        except BadAudio:
            pass
    failed = separated = skipped = 0
    destinations: dict[Path, Path] = {}  # the first stem's path -> the input that writes it
    with tqdm(total=round(total_s, 1), unit="s", unit_scale=True, desc="separate", disable=args.no_progress,
              bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s audio [{elapsed}<{remaining}, {rate_fmt}]") as bar:
        for path in files:
            try:
                first = stem_path(args.out, args.filename, path.stem, separator.stems[0], args.format)
                if destinations.setdefault(first, path) != path:
                    raise ValueError(f"its stems would overwrite those of {destinations[first]} (same name); "
                                     "separate them in two calls, or put {track} in --filename differently")
                result = separator.separate_file(path, args.out, args.filename, args.format, args.bits, args.clip,
                                                 args.force, progress=lambda seconds: bar.update(seconds))
            except (ValueError, OSError, RuntimeError, soundfile_error()) as error:  # this file only
                failed += 1
                message = str(error) if str(path) in str(error) else f"{path}: {error}"
                tqdm.write(f"wavesep: error: {message}", file=sys.stderr)
                continue
            if result.status == "skipped":
                skipped += 1
                continue
            separated += 1
            if result.detections is not None:
                found = ", ".join(f"{stem} {p:.2f}" for stem, p in result.detections.items())
                tqdm.write(f"{path}: detected {found}")
    print(f"separated {separated} file(s) into {args.out}" + (f", skipped {skipped} already done" if skipped else "")
          + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0


def _scoring_separator(args):
    """The separator of `evaluate` and `samples`, from the options they share (_add_evaluate)."""
    from wavesep.separate import Separator

    return Separator(args.model, device=args.device, precision=args.precision, shifts=args.shifts)


def cmd_evaluate(args) -> int:
    from tqdm import tqdm

    from wavesep.evaluate import evaluate, markdown_table, write_results

    separator = _scoring_separator(args)
    with tqdm(desc="evaluate", unit="song") as bar:
        results = evaluate(separator, args.data, args.stems, args.songs, bss=not args.no_bss,
                           progress=lambda name: bar.update(1))
    json_path, markdown_path = write_results(results, args.out)
    print(markdown_table(results))
    print(f"\n{results['definitions']}\nEach cell: mean (median) over songs, dB; the mean-of-stems row: "
          "the mean (median) of the stems' means.")
    print(f"wrote {json_path} and {markdown_path}")
    return 0


def cmd_samples(args) -> int:
    from wavesep.evaluate import write_samples

    separator = _scoring_separator(args)
    index = write_samples(separator, args.data, args.out, args.stems, args.songs or 4, args.excerpt)
    print(f"wrote the listening page: open {index.resolve().as_uri()}")
    return 0


def cmd_export(args) -> int:
    from wavesep.pretrained import export_checkpoint, register
    from wavesep.typed import load_yaml

    extra = {}
    for item in args.info:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--info {item!r}: use KEY=VALUE")
        extra[key] = load_yaml(value)
    digest, info = export_checkpoint(args.checkpoint, args.out, extra)
    size_mb = args.out.stat().st_size / 1e6
    print(f"wrote {args.out} ({size_mb:.1f} MB, sha256 {digest[:16]}…, step {info.get('step')})")
    if args.register:
        print(f"registered as {args.register!r}: {register(args.register, args.out, args.description)}")
    return 0


def cmd_models(args) -> int:
    from wavesep.pretrained import registered_models

    for name, description in registered_models().items():
        print(f"{name:16} {description}")
    return 0


def soundfile_error() -> type:
    import soundfile

    return soundfile.LibsndfileError


def cmd_train(args) -> int:
    from wavesep.train import load_config, resume_config, train

    if args.resume is not None:
        if args.config is not None or args.run_dir is not None:
            raise ValueError("--resume RUN_DIR takes the config and run directory from RUN_DIR; give neither")
        config = resume_config(args.resume, args.overrides)
        result = train(config, args.resume, resume=True, progress=not args.no_progress)
    elif args.config is None:
        raise ValueError("train needs a CONFIG file (see configs/), or --resume RUN_DIR")
    else:
        config = load_config(args.config, args.overrides)
        run_dir = args.run_dir or Path("runs") / args.config.stem
        result = train(config, run_dir, progress=not args.no_progress)
    if not result.main:  # under torchrun, rank 0 reports
        return 0
    best = f"{result.best_score:.2f} dB at step {result.best_step}" if result.best_step is not None else "none yet"
    print(f"trained {result.step} steps in {result.run_dir}: best validation SI-SDR {best}; "
          f"weights in {result.run_dir / 'best.pt'}")
    return 0
