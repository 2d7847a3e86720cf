"""Training data: read a rendered stem dataset, cut and filter chunks, augment them, or stream
chunks rendered on the fly from MIDI.

- :mod:`~wavesep.data.dataset`: song metadata, chunk reading, mixture rules, :class:`StemDataset`
  (fixed chunks, for validation and test), :func:`describe_dataset`;
- :mod:`~wavesep.data.filters`: :class:`ChunkFilter`, the original study's silence and
  "nothing to separate" filters;
- :mod:`~wavesep.data.augment`: per-stem gain, sign, channel swap, time shift and remixing;
- :mod:`~wavesep.data.train_chunks`: :class:`TrainChunks`, the endless, resumable training stream;
- :mod:`~wavesep.data.stream`: :class:`StreamingChunks`, render-while-training through a pool;
- :mod:`~wavesep.data.sharding`: which share of a stream a worker on a rank yields.

All datasets yield ``(mixture, stems)``, shaped (channels, time) and (n_stems, channels, time).
"""

from wavesep.data.augment import Augmentation
from wavesep.data.dataset import SongInfo, StemDataset, describe_dataset, load_songs, read_chunk
from wavesep.data.filters import ChunkFilter
from wavesep.data.stream import StreamingChunks
from wavesep.data.train_chunks import TrainChunks

__all__ = [
    "Augmentation", "ChunkFilter", "SongInfo", "StemDataset", "StreamingChunks", "TrainChunks",
    "describe_dataset", "load_songs", "read_chunk",
]
