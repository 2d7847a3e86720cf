"""Models by name or path: the weights wavesep ships, checkpoints, and exported weight files.

Shipped weights live inside the package (``wavesep/weights/NAME.safetensors``), listed in
``wavesep/weights/manifest.json`` with their SHA-256: a file that does not match is refused with
a clear error, never loaded half-way or replaced by the input. Nothing is downloaded.

A ``.safetensors`` file holds the weights; its metadata holds the model's description (registry
name, spec, config) and what it was trained on, so :func:`load_weights` rebuilds it with no code
from the file. ``tiny-untrained`` is a small model with seeded random weights, for tests and for
trying the pipeline offline in seconds: its output is not a separation.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from wavesep.models import (
    ModelSpec,
    SeparationModel,
    build_model,
    model_from_description,
)

WEIGHTS_DIR = Path(__file__).parent / "weights"
MANIFEST = WEIGHTS_DIR / "manifest.json"
WEIGHTS_FORMAT = "wavesep-weights/1"
TINY = "tiny-untrained"


def _manifest() -> dict[str, dict]:
    return json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}


def registered_models() -> dict[str, str]:
    """Registered model names and a one-line description of each."""
    names = {name: entry.get("description", "") for name, entry in _manifest().items()}
    names[TINY] = "random weights, 4 stems (seed4): for tests, not a separation"
    return names


def tiny_model() -> SeparationModel:
    """A small latent-wavenet with weights drawn from a fixed seed (the same on every machine)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model("latent-wavenet", ModelSpec(sources=("drums", "bass", "piano", "strings")),
                            {"stride": 16, "window": 32, "basis": 32, "channels": 16, "skip_channels": 16,
                             "stacks": 1, "blocks": 4})
    return model.eval()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(model: SeparationModel, path: str | Path, info: dict | None = None) -> str:
    """Write ``model`` as safetensors with its description (and ``info``: training data, scores) in
    the metadata; return the file's SHA-256."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    metadata = {"format": WEIGHTS_FORMAT, "model": json.dumps(model.describe()),
                "info": json.dumps(info or {})}
    save_file(state, str(tmp), metadata=metadata)
    tmp.replace(path)
    return sha256(path)


def read_weights_info(path: str | Path) -> dict:
    """The ``info`` a weights file was saved with."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return json.loads((handle.metadata() or {}).get("info", "{}"))


def training_info(name_or_path: str | Path) -> dict:
    """What a registered model, weights file or checkpoint says of its training (steps, time,
    hardware, ...): a weights file's ``info``, a checkpoint's ``training`` state."""
    text = str(name_or_path)
    if text == TINY:
        return {}  # built in, never trained
    if text.endswith(".pt"):
        from wavesep.train.checkpoint import read_checkpoint

        return read_checkpoint(text).get("training", {})
    entry = _manifest().get(text)
    return read_weights_info(WEIGHTS_DIR / entry["file"] if entry else text)


def load_weights(path: str | Path, expected_sha256: str | None = None) -> SeparationModel:
    """The model in a safetensors file written by :func:`save_weights`, in eval mode."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: weights file not found")
    if expected_sha256 is not None and (actual := sha256(path)) != expected_sha256:
        raise ValueError(f"{path}: SHA-256 {actual[:12]}… does not match the registered "
                         f"{expected_sha256[:12]}… (a corrupt or replaced file): reinstall wavesep")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(path))
        if metadata.get("format") != WEIGHTS_FORMAT:
            raise ValueError(f"format {metadata.get('format')!r}, not {WEIGHTS_FORMAT!r}")
        model = model_from_description(json.loads(metadata["model"]))
        model.load_state_dict(state)
        model.separator_options = separator_options(json.loads(metadata.get("info", "{}")))
    except (SafetensorError, OSError, KeyError, ValueError, RuntimeError, json.JSONDecodeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path}: not a wavesep weights file ({reason})") from None
    return model.eval()


def separator_options(info: dict) -> dict:
    """How a model is meant to be run (:class:`~wavesep.separate.Separator` reads it), from a
    weights file's ``info`` or a checkpoint: its own ``separator`` entry if it has one, else fitted
    gains (``fit_gains``) when its training loss was scale-invariant. Such a loss (SI-SDR) leaves
    each output's level and sign to chance: the shipped ``default`` put its stems 20 to 50 dB below
    their level in the mixture, its drums with their sign flipped; fitted to the mixture, the stems
    sum to it again."""
    from wavesep.losses import LossMix

    if "separator" in info:
        return dict(info["separator"])
    losses = ((info.get("config") or {}).get("training") or {}).get("losses")
    try:
        return {"fit_gains": True} if losses and not LossMix(losses).learns_level else {}
    except (ValueError, TypeError, AttributeError):  # a loss this version does not know: run it as it is
        return {}


def load_any(name_or_path: str | Path) -> SeparationModel:
    """A model from a registered name, a ``.safetensors`` weights file or a training checkpoint
    (``.pt``); a ValueError of one line for anything else."""
    from wavesep.train.checkpoint import load_model

    text = str(name_or_path)
    if text == TINY:
        return tiny_model()
    manifest = _manifest()
    if text in manifest:
        entry = manifest[text]
        return load_weights(WEIGHTS_DIR / entry["file"], entry["sha256"])
    path = Path(text)
    if path.is_file():
        return load_weights(path) if path.suffix == ".safetensors" else load_model(path)
    if path.suffix in (".pt", ".safetensors") or "/" in text:
        raise ValueError(f"{path}: model file not found")
    raise ValueError(f"unknown model {text!r}: not a file, and not one of the registered models "
                     f"({', '.join(registered_models())})")


def export_checkpoint(checkpoint: str | Path, out: str | Path, extra: dict | None = None) -> tuple[str, dict]:
    """Write a training checkpoint's model as a ``.safetensors`` weights file, with what it was
    trained on (config, steps, time, hardware, best validation scores) and ``extra`` in its
    metadata; returns the file's SHA-256 and that information."""
    from wavesep.train.checkpoint import model_from_checkpoint, read_checkpoint

    payload = read_checkpoint(checkpoint)
    model = model_from_checkpoint(payload, checkpoint)
    training = payload.get("training", {})
    info = {"config": payload.get("config"), "versions": payload.get("versions")}
    for key in ("step", "valid", "elapsed_s", "budget_used_s", "budget_unit", "hardware", "world_size", "precision",
                "training_data", "examples", "best_score", "best_step"):
        if key in training:
            info[key] = training[key]
    info.update(extra or {})
    return save_weights(model, out, info), info


def register(name: str, weights: str | Path, description: str) -> Path:
    """Ship ``weights`` inside the package as model ``name``: copied to ``wavesep/weights`` and
    listed in the manifest with its SHA-256."""
    import shutil

    if name == TINY:
        raise ValueError(f"{TINY!r} is built in; choose another name")
    WEIGHTS_DIR.mkdir(exist_ok=True)
    target = WEIGHTS_DIR / f"{name}.safetensors"
    load_weights(weights)  # refuse a file that does not load
    if Path(weights).resolve() != target.resolve():
        shutil.copyfile(weights, target)
    manifest = _manifest()
    manifest[name] = {"file": target.name, "sha256": sha256(target), "bytes": target.stat().st_size,
                      "description": description}
    tmp = MANIFEST.with_name(".manifest.json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    tmp.replace(MANIFEST)
    return target
