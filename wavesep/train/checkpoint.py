"""Checkpoints: written atomically, loaded without executing code, models rebuilt by name.

A checkpoint is a ``torch.save`` file of plain data only (tensors, numbers, strings, lists and
dicts), so :func:`read_checkpoint` loads it with ``weights_only=True``:

- ``format``: :data:`CHECKPOINT_FORMAT`;
- ``model``: :meth:`~wavesep.models.SeparationModel.describe` (registry name, spec, config);
- ``state_dict``: the weights;
- ``config``: the resolved training config;
- ``training``: optimiser, scheduler, loss scaler, step, data position, random state, best
  score, elapsed time and hardware: what ``--resume`` needs (absent from exported weights);
- ``versions``: wavesep and torch.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

import wavesep
from wavesep.models import SeparationModel, model_from_description

CHECKPOINT_FORMAT = "wavesep-checkpoint/1"


def versions() -> dict:
    return {"wavesep": wavesep.__version__, "torch": str(torch.__version__)}


def save_atomic(payload: dict, path: str | Path):
    """Write ``payload`` to ``path`` through a temporary file and a rename: a reader (or a crash)
    sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def checkpoint_payload(model: SeparationModel, config: dict, training: dict | None = None) -> dict:
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    payload = {"format": CHECKPOINT_FORMAT, "model": model.describe(), "state_dict": state,
               "config": config, "versions": versions()}
    if training is not None:
        payload["training"] = training
    return payload


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint without running code from it; a clear ValueError when it is not one."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{path}: checkpoint not found") from None
    except Exception as error:  # torch raises many types for truncated or foreign files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a wavesep checkpoint (format {payload.get('format') if isinstance(payload, dict) else None!r})")
    return payload


def model_from_checkpoint(payload: dict, path: str | Path = "checkpoint") -> SeparationModel:
    """The model a checkpoint describes, with its weights, in eval mode."""
    try:
        model = model_from_description(payload["model"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{path}: checkpoint does not match its model description ({error})") from None
    return model.eval()


def load_model(path: str | Path) -> SeparationModel:
    """A trained model from a checkpoint file (``best.pt``, ``last.pt`` or an exported one), with
    how it is meant to be run (:func:`wavesep.pretrained.separator_options`)."""
    from wavesep.pretrained import separator_options

    payload = read_checkpoint(path)
    model = model_from_checkpoint(payload, path)
    model.separator_options = separator_options(payload)
    return model
