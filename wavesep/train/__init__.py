"""Training: config dataclasses, the trainer, checkpoints and the distributed set-up.

- :mod:`~wavesep.train.config`: the strict YAML config and ``--set`` overrides;
- :mod:`~wavesep.train.data`: training batches with a resumable position, the validation set;
- :mod:`~wavesep.train.validation`: running a model in its setting, SI-SDR per stem;
- :mod:`~wavesep.train.checkpoint`: atomic, code-free checkpoints and :func:`load_model`;
- :mod:`~wavesep.train.distributed`: torchrun processes and devices;
- :mod:`~wavesep.train.trainer`: the loop (:func:`train`).
"""

from wavesep.train.checkpoint import load_model
from wavesep.train.config import Config, load_config
from wavesep.train.trainer import RunResult, TrainingStopped, resume_config, train

__all__ = ["Config", "RunResult", "TrainingStopped", "load_config", "load_model", "resume_config", "train"]
