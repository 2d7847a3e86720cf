"""Precision benchmark: is bfloat16 autocast on this CPU faster, and does it train correctly, for
each model of ``bench/quality.py``?

``training.cpu_amp`` runs a CPU training step under bfloat16 autocast where the CPU has it natively
(AVX512-BF16, AMX). It is off by default because oneDNN's bfloat16 kernels in torch 2.13 compute
some layers wrongly on such CPUs (convolutions of 32, 48, 64 or 128 taps; LSTMs), and a model that
trains on wrong gradients learns nothing while its loss still looks plausible. This script
measures, for each system as ``bench/quality.py`` trains it (its config, the ``band`` stems,
stereo, 44.1 kHz, ``--batch`` x ``--segment`` s of random audio, one thread):

- *step*: CPU seconds of one training step (forward, SI-SDR loss, backward) in float32 and under
  bfloat16 autocast, median of ``--steps`` after a warm-up, and their ratio;
- *output SNR*: how far the autocast output is from float32's, in dB (10 log10 of the float32
  output's energy over the difference's), in eval mode;
- *gradient SNR*: the same for the gradient of the loss, over all parameters at once and as the
  median over parameter tensors: bfloat16's rounding alone gives about 15-40 dB (measured with
  unrelated random references until 2026-12-07: 19.6 for HDemucs, 37 for wavesep; with the mixture
  their sum, as now: 18-19 for wavesep); a wrong kernel gives 0 dB or less.

Prints a Markdown table and writes it with every figure to ``--out`` (JSON and .md)::

    python bench/precision.py [--systems wavesep conv-tasnet hdemucs open-unmix] [--steps 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from wavesep.losses import LossMix
from wavesep.models import build_model
from wavesep.train import load_config
from wavesep.models.base import native_bf16
from wavesep.train.trainer import model_spec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import SYSTEMS, config_of  # noqa: E402  (bench/ is no package)
from render import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def snr_db(exact: torch.Tensor, other: torch.Tensor) -> float:
    noise = (exact - other).double().square().sum()
    return float("inf") if noise == 0 else float(10 * torch.log10(exact.double().square().sum() / noise))


def measure(system: str, batch: int, segment_s: float, steps: int) -> dict:
    config = load_config(config_of(system), ["data.stem_set=band"])
    torch.manual_seed(0)
    model = build_model(config.model.name, model_spec(config), config.model.args)
    loss_fn = LossMix(config.training.losses)
    length = round(segment_s * config.data.sample_rate)
    references = torch.randn(batch, len(model.sources), config.data.channels, length) * 0.1
    # The mixture is their sum, as in training. With references unrelated to it, a random model's
    # estimates project on them by chance, near 0, and the SI-SDR loss's gradient (which goes as
    # 1 / that projection) swings with any rounding: a measure of that, not of the arithmetic.
    mixture = references.sum(1)

    def step(bf16: bool) -> dict[str, torch.Tensor]:
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            stems = model(mixture).stems
        loss, _ = loss_fn(stems.float(), references)
        loss.backward()
        return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}

    model.train()
    seconds = {}
    for bf16 in (False, True):
        step(bf16)  # warm-up: oneDNN prepares its kernels per shape
        times = []
        for _ in range(steps):
            start = time.process_time()
            step(bf16)
            times.append(time.process_time() - start)
        seconds["bfloat16" if bf16 else "float32"] = statistics.median(times)
    exact, fast = step(False), step(True)
    names = [n for n in exact if exact[n].abs().sum() > 0]
    whole = snr_db(torch.cat([exact[n].flatten() for n in names]), torch.cat([fast[n].flatten() for n in names]))
    per_tensor = statistics.median(snr_db(exact[n], fast[n]) for n in names)
    model.eval()
    with torch.no_grad():
        out32 = model(mixture[:1]).stems
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out16 = model(mixture[:1]).stems.float()
    return {"system": system, "model": config.model.name, "cpu_amp": config.training.cpu_amp,
            "step_s": seconds, "speedup": seconds["float32"] / seconds["bfloat16"],
            "output_snr_db": snr_db(out32, out16), "gradient_snr_db": whole, "gradient_snr_median_db": per_tensor}


def table(rows: list[dict]) -> str:
    lines = ["| system | float32 step, CPU s | bfloat16 step | speed-up | output SNR | gradient SNR (all / median) "
             "| trained in |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['system']} ({r['model']}) | {r['step_s']['float32']:.2f} | {r['step_s']['bfloat16']:.2f} "
                     f"| {r['speedup']:.2f}x | {r['output_snr_db']:.1f} dB | {r['gradient_snr_db']:.1f} / "
                     f"{r['gradient_snr_median_db']:.1f} dB | {'bfloat16' if r['cpu_amp'] else 'float32'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--segment", type=float, default=2.0, help="seconds per example")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-output/precision.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if not native_bf16(torch.device("cpu")):
        print("this CPU has no native bfloat16 (AVX512-BF16 or AMX): training.cpu_amp does nothing here",
              file=sys.stderr)
        return 1
    rows = []
    for system in args.systems:
        rows.append(measure(system, args.batch, args.segment, args.steps))
        print(f"{system}: {rows[-1]['speedup']:.2f}x, gradient SNR {rows[-1]['gradient_snr_db']:.1f} dB", flush=True)
    text = table(rows)
    print(text)
    report = {"date": datetime.date.today().isoformat(), "machine": machine(), "torch": torch.__version__,
              "batch": args.batch, "segment_s": args.segment, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(f"{machine()}, torch {torch.__version__}, one thread, batch "
                                          f"{args.batch} x {args.segment:g} s\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
