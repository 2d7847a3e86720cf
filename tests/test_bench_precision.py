"""bench/precision.py on a short input: what it measures per model, and that it tells wavesep's
checked bfloat16 path (gradients near float32's) from a bad one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import precision  # noqa: E402  (bench/ is no package)


def test_wavesep_under_bfloat16_stays_near_float32():
    row = precision.measure("wavesep", batch=1, segment_s=0.2, steps=1)
    assert row["model"] == "latent-wavenet" and row["cpu_amp"] is True
    assert set(row["step_s"]) == {"float32", "bfloat16"} and all(s > 0 for s in row["step_s"].values())
    assert row["speedup"] == pytest.approx(row["step_s"]["float32"] / row["step_s"]["bfloat16"])
    assert row["output_snr_db"] > 30 and row["gradient_snr_db"] > 20 and row["gradient_snr_median_db"] > 15
    assert "| wavesep (latent-wavenet) |" in precision.table([row])


def test_snr_of_a_wrong_result_is_near_zero_and_of_an_exact_one_infinite():
    exact = torch.randn(1000)
    assert precision.snr_db(exact, exact) == float("inf")
    assert abs(precision.snr_db(exact, torch.zeros(1000))) < 1e-6  # nothing right: 0 dB
    assert precision.snr_db(exact, exact * 1.01) == pytest.approx(40, abs=0.01)
