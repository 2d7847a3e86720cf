"""Separation benchmark: wavesep against HT-Demucs and Open-Unmix on the CPU (or ``--device cuda``),
in the same run.

What is measured, for one music-like 44.1 kHz stereo WAV (pink noise plus decaying tones, seeded;
the same file for every system), each system in its own fresh interpreter with ``--threads``
threads so that its peak memory is its own:

- *wavesep*: what ``wavesep separate`` does: :meth:`Separator.separate_file`, streaming the file in
  blocks and writing one float WAV per stem. The model is ``latent-wavenet`` at its default config
  with the six ``band`` stems and random weights, or ``--model`` (a registered name or a weights
  file), e.g. the shipped ``default``;
- *wavesep --precision float32*: the same in float32, where ``auto`` (the default, as ``wavesep
  separate``'s) takes bfloat16 (a CPU that has it natively: :func:`wavesep.separate.separation_precision`);
- *wavesep, in memory*: :meth:`Separator.separate` on the decoded track (no files written);
- *HT-Demucs* (``demucs`` package, the released ``htdemucs`` configuration, random weights):
  ``demucs.apply.apply_model`` with 7.8 s segments, 25 % overlap, no shifts, as its CLI runs it;
- *Open-Unmix* (``openunmix`` package, the ``umxhq`` layout, random weights): its ``Separator`` on
  the whole track, one Wiener iteration, as its CLI runs it.

The peers read the file into memory and return their stems as tensors: they write no files, which
favours them slightly. Speed does not depend on the weights, so random weights are enough.

Reported per row: parameters; *load*, the seconds to build (or load) the model; *wall*, the seconds
of the separation alone (after one warm-up on a short input; the median of ``--repeats``), without
interpreter start or model construction; the real-time factor (RTF = wall s per audio s) and its
inverse; *peak RSS*, the child process's high-water mark (``VmHWM``: model, audio, everything);
the RTF relative to wavesep's; on CUDA also *peak GPU*, the most GPU memory torch held
(``max_memory_allocated``), with the device synchronised before each clock reading. ``--hour``
adds wavesep on a one-hour file (16-bit, ~0.6 GB; its stems need ~16 GB of disk while they are
written): its peak RSS, next to the 60 s one, shows that memory does not grow with the track's
length.

    python bench/separate.py [--seconds 60] [--hour] [--long-seconds 3600] [--threads 2]
                             [--model NAME_OR_PATH] [--repeats 1] [--systems ...] [--device cuda]
                             [--json OUT]

The peers' packages are installed by ``make setup`` (``--no-deps``; see pyproject's ``peers`` extra).
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _peers import PEERS, PeerMissing  # bench/ is no package: its sibling helpers
from render import machine

SAMPLE_RATE = 44100
WARMUP_S = 3.0  # warm-up input length
BAND = ("drums", "bass", "piano", "guitar", "strings", "other")
SYSTEMS = ("wavesep", "wavesep-float32", "wavesep-memory", "htdemucs", "openunmix")
LABELS = {"wavesep": "wavesep separate (file)", "wavesep-float32": "wavesep separate --precision float32 (file)",
          "wavesep-memory": "wavesep, in memory",
          "htdemucs": "HT-Demucs (demucs)", "openunmix": "Open-Unmix (umxhq)", "wavesep-long": "wavesep separate (file)"}
MISSING = 3  # a child's exit status when its peer cannot be imported
PINK = ([0.049922035, -0.095993537, 0.050612699, -0.004408786], [1.0, -2.494956002, 2.017265875, -0.522189400])
SCALE = (0, 3, 5, 7, 10, 12, 15, 17)  # semitones above A2 (minor pentatonic-ish)


def write_music(path: Path, seconds: float, subtype: str = "FLOAT", seed: int = 0):
    """A stereo 44.1 kHz WAV: pink noise, a tone every 0.25 s and a bass note every 2 s, each
    decaying; written in 10 s blocks, so an hour costs no more memory than a minute."""
    rng = np.random.default_rng(seed)
    n_samples, block = round(seconds * SAMPLE_RATE), 10 * SAMPLE_RATE
    state = np.zeros((2, len(PINK[1]) - 1))
    with soundfile.SoundFile(str(path), "w", SAMPLE_RATE, 2, subtype) as handle:
        for start in range(0, n_samples, block):
            t = (start + np.arange(min(block, n_samples - start))) / SAMPLE_RATE  # (time,)
            noise, state = scipy.signal.lfilter(*PINK, rng.standard_normal((2, len(t))), axis=-1, zi=state)
            notes = np.take(SCALE, (t // 0.25).astype(int) * 5 % len(SCALE))
            tone = np.sin(2 * np.pi * 220 * 2 ** (notes / 12) * t) * np.exp(-6 * (t % 0.25))
            bass = np.sin(2 * np.pi * 55 * 2 ** (np.take(SCALE, (t // 2).astype(int) % 4) / 12) * t) * np.exp(-(t % 2))
            mix = 0.1 * noise + np.array([[0.3], [0.2]]) * tone + 0.3 * bass  # (2, time)
            handle.write(mix.T.astype(np.float32))


# -- in the child: one system, measured ------------------------------------------------------------
def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def read_tensor(path: Path) -> torch.Tensor:
    audio, _ = soundfile.read(str(path), dtype="float32", always_2d=True)  # (time, channels)
    return torch.from_numpy(np.ascontiguousarray(audio.T))  # (channels, time)


def prepare(system: str, args) -> tuple[torch.nn.Module, Callable[[Path], object], str]:
    """The model, ``run(path)`` (one separation of the file at ``path``) and its arithmetic."""
    device = torch.device(args.device)
    if system in PEERS:
        build, apply = PEERS[system]
        model = build().to(device)
        return model, lambda path: apply(model, read_tensor(path).to(device)), "float32"
    from wavesep.models import ModelSpec, build_model
    from wavesep.pretrained import load_any
    from wavesep.separate import Separator

    model = (build_model("latent-wavenet", ModelSpec(sources=BAND)) if args.model is None
             else load_any(args.model))
    separator = Separator(model, device=args.device, precision="float32" if system == "wavesep-float32" else "auto")
    if system == "wavesep-memory":
        return model, lambda path: separator.separate(read_tensor(path).numpy(), SAMPLE_RATE), separator.precision
    outputs = (Path(args.work) / f"stems-{system}-{i}" for i in itertools.count())
    return (model, lambda path: separator.separate_file(path, next(outputs), format="wav", bits="float", force=True),
            separator.precision)


def child(args):
    """Measure ``args.child`` and print one ``RESULT {json}`` line."""
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    try:
        model, run, precision = prepare(args.child, args)
    except PeerMissing as error:
        print(f"MISSING {error}", flush=True)
        sys.exit(MISSING)
    load_s = time.perf_counter() - start
    cuda = torch.device(args.device).type == "cuda"
    synchronize = torch.cuda.synchronize if cuda else (lambda: None)
    walls = []
    with torch.inference_mode():
        run(Path(args.warmup))
        for _ in range(args.repeats):
            synchronize()
            start = time.perf_counter()
            run(Path(args.input))
            synchronize()
            walls.append(time.perf_counter() - start)
    result = {"system": args.child, "precision": precision, "parameters": sum(p.numel() for p in model.parameters()),
              "audio_s": soundfile.info(args.input).duration, "load_s": load_s,
              "wall_s": statistics.median(walls), "walls_s": walls, "peak_rss_mb": peak_rss_mb()}
    if cuda:
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print("RESULT " + json.dumps(result), flush=True)


# -- in the parent: the children, the table ------------------------------------------------------
def measure(system: str, audio: Path, warmup: Path, work: Path, args, repeats: int) -> dict | None:
    """Run ``system`` in a fresh interpreter; its result, or None (the reason is printed)."""
    command = [sys.executable, __file__, "--child", system, "--input", str(audio), "--warmup", str(warmup),
               "--work", str(work), "--threads", str(args.threads), "--repeats", str(repeats),
               "--device", args.device]
    command += ["--model", args.model] if args.model else []
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    done = subprocess.run(command, check=False, stdout=subprocess.PIPE, text=True, env=env)
    lines = done.stdout.splitlines()
    result = next((json.loads(line[7:]) for line in lines if line.startswith("RESULT ")), None)
    if done.returncode == MISSING:
        print(f"{LABELS[system]}: skipped: {lines[-1].removeprefix('MISSING ')}", file=sys.stderr)
    elif result is None or done.returncode != 0:
        print(f"{LABELS[system]}: failed (exit status {done.returncode}; its error is above)", file=sys.stderr)
    else:
        return result
    return None


def table(rows: list[dict], reference: dict | None) -> str:
    gpu = any("peak_gpu_mb" in row for row in rows)
    lines = ["| system | precision | parameters | audio (s) | load (s) | wall (s) | RTF | x real time | peak RSS (MB) | "
             + ("peak GPU (MB) | " if gpu else "") + "RTF vs wavesep |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if gpu else "") + "---:|"]
    for row in rows:
        rtf = row["wall_s"] / row["audio_s"]
        ratio = f"{rtf / (reference['wall_s'] / reference['audio_s']):.2f}" if reference else "-"
        gpu_cell = f"{row.get('peak_gpu_mb', float('nan')):.0f} | " if gpu else ""
        lines.append(f"| {LABELS[row['system']]} | {row.get('precision', 'float32')} | {row['parameters'] / 1e6:.3g}M | "
                     f"{row['audio_s']:.0f} | "
                     f"{row['load_s']:.2f} | {row['wall_s']:.2f} | {rtf:.4f} | {1 / rtf:.1f} | "
                     f"{row['peak_rss_mb']:.0f} | {gpu_cell}{ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the common test file (default 60)")
    parser.add_argument("--hour", action="store_true", help="add wavesep on a --long-seconds file")
    parser.add_argument("--long-seconds", type=float, default=3600.0, help="length of the --hour file (default 3600)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", help="wavesep's model: a registered name or a weights file "
                                        "(default: latent-wavenet, band stems, random weights)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per system, the median is reported")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--device", default="cpu", help="torch device every system runs on (default cpu)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    for hidden in ("--child", "--input", "--warmup", "--work"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    cuda = torch.device(args.device).type == "cuda"
    if cuda and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: torch {torch.__version__} sees no CUDA device here")

    gpu = f"{torch.cuda.get_device_name(args.device)}; " if cuda else ""
    header = (f"wavesep separate vs peers: {machine()}; {gpu}{args.threads} threads; torch {torch.__version__}; "
              f"{datetime.datetime.now().isoformat(timespec='minutes')}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="wavesep-bench-") as tmp:
        work = Path(tmp)
        audio, warmup = work / f"music-{args.seconds:g}s.wav", work / "warmup.wav"
        write_music(audio, args.seconds)
        write_music(warmup, WARMUP_S, seed=1)
        for system in args.systems:
            print(f"measuring {LABELS[system]} on {args.seconds:g} s ...", file=sys.stderr, flush=True)
            if (row := measure(system, audio, warmup, work, args, args.repeats)) is not None:
                rows.append(row)
        if args.hour:
            long_audio = work / f"music-{args.long_seconds:g}s.wav"
            need_gb = args.long_seconds * SAMPLE_RATE * 2 * 4 * (2 * len(BAND) + 1) / 1e9  # stems written twice
            if shutil.disk_usage(work).free / 1e9 < need_gb:
                print(f"--hour: skipped: needs ~{need_gb:.0f} GB free in {work}", file=sys.stderr)
            else:
                print(f"measuring wavesep on {args.long_seconds:g} s ...", file=sys.stderr, flush=True)
                write_music(long_audio, args.long_seconds, subtype="PCM_16")
                if (row := measure("wavesep", long_audio, warmup, work, args, repeats=1)) is not None:
                    rows.append(dict(row, system="wavesep-long"))
    reference = next((r for r in rows if r["system"] == "wavesep"), None)
    print(f"\n{header}\n\n{table(rows, reference)}")
    long = next((r for r in rows if r["system"] == "wavesep-long"), None)
    if long and reference:
        print(f"\nwavesep's peak RSS on {long['audio_s']:.0f} s / on {reference['audio_s']:.0f} s: "
              f"{long['peak_rss_mb']:.0f} / {reference['peak_rss_mb']:.0f} MB = "
              f"{long['peak_rss_mb'] / reference['peak_rss_mb']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"header": header, "threads": args.threads, "torch": torch.__version__,
                                         "device": args.device, "model": args.model, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
