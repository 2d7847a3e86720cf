"""The samples page: a static listening page of separated songs (see samples.py)."""

from wavesep.report.samples import SampleSong, write_samples_page

__all__ = ["SampleSong", "write_samples_page"]
