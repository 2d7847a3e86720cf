"""The samples page: files, escaping and scores offline, then the page in a real headless Chromium
(driven by playwright through the apt chromium; scripts/setup.sh installs both, nothing is
downloaded at run time). The browser tests fail, not skip, where either is missing."""

from __future__ import annotations

import html
import math
import os
import re
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile

from wavesep.report import SampleSong, samples, write_samples_page

SAMPLE_RATE = 22050
NASTY = '<b>"Tom & Jerry"</b>'  # a song name that breaks the page unless escaped
NOTES = "SI-SDR: scale-invariant SDR in dB.\n\nSI-SDRi: its gain over the mixture."


def tone(hz: float, seconds: float, channels: int, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return np.repeat(amplitude * np.sin(2 * np.pi * hz * t)[None], channels, axis=0).astype(np.float32)


def noise(seconds: float, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((channels, round(seconds * SAMPLE_RATE)))).astype(np.float32)


def make_songs() -> list[SampleSong]:
    """A stereo song with both references, shown whole (2 s), and a mono one whose drums are absent
    (no reference, NaN scores), shown as a 0.5-1.5 s excerpt."""
    bass, drums = tone(110, 2, 2), noise(2, 2, seed=0)
    stereo = SampleSong(
        name="gen-7-00012", sample_rate=SAMPLE_RATE, mixture=bass + drums,
        references={"bass": bass, "drums": drums},
        estimates={"bass": 0.9 * bass + 0.1 * drums, "drums": drums + 0.05 * bass},
        scores={"bass": {"SI-SDR": 7.25, "SI-SDRi": 9.5}, "drums": {"SI-SDR": 12.0, "SI-SDRi": 3.0}})
    keys = tone(440, 2, 1)
    mono = SampleSong(
        name=NASTY, sample_rate=SAMPLE_RATE, mixture=keys[0],  # (time,): mono given flat
        references={"bass": keys},
        estimates={"bass": keys * 1.5, "drums": noise(2, 1, seed=1) * 0.01},
        scores={"bass": {"SI-SDR": 4.75, "SI-SDRi": 1.0}, "drums": {"SI-SDR": math.nan, "SI-SDRi": None}},
        excerpt=(0.5, 1.5))
    return [stereo, mono]


def write_page(out_dir: Path) -> Path:
    return write_samples_page(out_dir, make_songs(), title="wavesep <samples>",
                              model_description="latent-wavenet, 500 steps & SI-SDR loss", notes=NOTES)


@pytest.fixture(scope="module")
def page_dir(tmp_path_factory) -> Path:
    return write_page(tmp_path_factory.mktemp("report") / "samples").parent


def links(page: str) -> list[str]:
    return [html.unescape(link) for link in re.findall(r'(?:src|href)="([^"]*)"', page)]


# --- files and HTML, no browser -------------------------------------------------------------------


def test_writes_exactly_the_linked_files(page_dir):
    page = (page_dir / "index.html").read_text()
    files = {path.relative_to(page_dir).as_posix() for path in page_dir.rglob("*") if path.is_file()}
    linked = {link for link in links(page) if not link.startswith(("#", "data:"))}
    # per song: mixture + each stem's reference and estimate; the mono song has no drums reference
    assert len([f for f in files if f.endswith(".flac")]) == 9
    assert files == linked | {"index.html"}
    assert not any("://" in link or link.startswith("/") for link in links(page))  # relative only


def test_audio_is_16_bit_flac_of_the_shown_part(page_dir):
    stereo = soundfile.info(page_dir / "00-gen-7-00012" / "mixture.flac")
    assert (stereo.format, stereo.subtype, stereo.channels) == ("FLAC", "PCM_16", 2)
    assert stereo.frames == 2 * SAMPLE_RATE
    estimate, rate = soundfile.read(page_dir / "01-b-tom-jerry-b" / "00-bass-estimate.flac", always_2d=True)
    assert rate == SAMPLE_RATE and estimate.shape == (SAMPLE_RATE, 1)  # the 1 s excerpt, mono
    expected = np.clip(make_songs()[1].estimates["bass"][0, SAMPLE_RATE // 2: 3 * SAMPLE_RATE // 2], -1, 1)
    np.testing.assert_allclose(estimate[:, 0], expected, atol=1 / 2**15)  # clipped, not wrapped


def test_png_is_valid_rgb():
    data = samples.encode_png(np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, color = struct.unpack(">IIBB", data[16:26])
    assert (width, height, depth, color) == (3, 2, 8, 2)
    idat_length = struct.unpack(">I", data[33:37])[0]
    raw = zlib.decompress(data[41:41 + idat_length])
    assert raw == bytes([0, *range(9), 0, *range(9, 18)])  # filter byte 0, then RGB rows


def test_spectrogram_puts_a_tone_in_its_row():
    low, high = (samples.spectrogram_db(tone(hz, 1, 2), SAMPLE_RATE) for hz in (110, 3520))
    assert low.shape == (samples.SPEC_HEIGHT, samples.SPEC_WIDTH)
    low_row, high_row = (int(np.argmax(db.mean(axis=1))) for db in (low, high))
    assert high_row < low_row  # row 0 is the top: high frequencies
    # 5 octaves apart on a log axis of log2(11025 / 40) octaves
    octaves = np.log2(SAMPLE_RATE / 2 / samples.SPEC_MIN_HZ)
    assert abs((low_row - high_row) - 5 / octaves * samples.SPEC_HEIGHT) <= 3
    assert -12 < low.max() < -9  # a 0.3 sine: -10.5 dB re full scale


def test_names_are_escaped(page_dir):
    page = (page_dir / "index.html").read_text()
    assert NASTY not in page and html.escape(NASTY) in page
    assert "<samples>" not in page and "wavesep &lt;samples&gt;" in page
    assert "SI-SDR loss" in page and "&amp; SI-SDR" in page


def test_nan_score_is_a_dash_with_a_tooltip():
    for value in (math.nan, None):
        assert samples.format_score(value) == '<span class="nan" title="silent reference">\u2014</span>'
    assert samples.format_score(-3.14159) == "-3.14"


def test_means_leave_out_silent_references():
    means = samples.score_means(make_songs())
    assert means["bass"]["SI-SDR"] == (6.0, 2)
    assert means["drums"]["SI-SDR"] == (12.0, 1)
    assert math.isnan(samples.score_means([make_songs()[1]])["drums"]["SI-SDRi"][0])


def test_rerun_replaces_the_page(tmp_path):
    out = tmp_path / "samples"
    write_page(out)
    (out / "stale.txt").write_text("from an earlier run")
    song = make_songs()[0]
    song.name = "other"
    write_samples_page(out, [song], "second", "model")
    assert not (out / "stale.txt").exists() and not (out / "00-gen-7-00012").exists()
    assert "second" in (out / "index.html").read_text()
    assert sorted(os.listdir(tmp_path)) == ["samples"]  # no temporary folder left beside it


def test_a_crash_leaves_the_earlier_page(tmp_path, monkeypatch):
    out = tmp_path / "samples"
    write_page(out)
    before = (out / "index.html").read_text()

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(samples, "render_page", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        write_page(out)
    assert (out / "index.html").read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["samples"]


def test_refuses_to_replace_other_files(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        write_page(tmp_path)
    assert (tmp_path / "notes.txt").exists()


# --- the page in a real browser -------------------------------------------------------------------


def chromium_path() -> str:
    """The apt chromium (playwright's own browser download is not reachable); $WAVESEP_CHROMIUM
    overrides. /usr/lib/chromium/chromium is Debian's binary behind the /usr/bin shell wrapper."""
    candidates = [os.environ.get("WAVESEP_CHROMIUM"), "/usr/lib/chromium/chromium",
                  shutil.which("chromium"), shutil.which("chromium-browser"), shutil.which("google-chrome")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail("no chromium found: run scripts/setup.sh (apt chromium) or set WAVESEP_CHROMIUM")


def aborted_media(request) -> bool:
    """With preload="metadata" the media loader reads a file's header and cancels the rest: an
    ERR_ABORTED that is no error (a player that failed shows in its `error`, tested below)."""
    return request.resource_type == "media" and request.failure == "net::ERR_ABORTED"


@pytest.fixture(scope="module")
def browser_page(page_dir):
    """The page opened over file:// in headless Chromium, with its console errors, page errors and
    failed requests collected; yields once every <audio> has loaded its metadata (or failed)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: run scripts/setup.sh (it is in the dev extra)")
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path())
        try:
            page = browser.new_page()
            page.on("console", lambda message: message.type == "error" and problems.append(message.text))
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("requestfailed", lambda request: aborted_media(request) or problems.append(
                f"failed: {request.url} {request.failure}"))
            page.goto((page_dir / "index.html").as_uri(), wait_until="load")
            page.wait_for_function(
                "() => [...document.querySelectorAll('audio')].every(a => a.readyState >= 1 || a.error)",
                timeout=10_000)
            yield page, problems
        finally:
            browser.close()


def test_page_loads_without_errors(browser_page):
    page, problems = browser_page
    assert page.title() == "wavesep <samples>"
    assert problems == []


def test_every_audio_decodes_with_its_duration(browser_page):
    page, _ = browser_page
    players = page.eval_on_selector_all("audio", """all => all.map(a => ({
        src: a.currentSrc, ready: a.readyState, error: a.error && a.error.code, duration: a.duration}))""")
    assert len(players) == 9  # 1 + 2 x 2 stereo, 1 + 2 + 1 mono (no drums reference)
    durations = [2.0] * 5 + [1.0] * 4  # the mono song shows a 1 s excerpt
    for player, expected in zip(players, durations):
        assert player["src"].startswith("file://") and player["error"] is None, player
        assert player["ready"] >= 1 and player["duration"] == pytest.approx(expected, abs=0.01), player


PLAY_ALL = """() => Promise.all([...document.querySelectorAll('audio')].map(a => new Promise(done => {
    a.muted = true; a.playbackRate = 8;  // muted: allowed without a user gesture; x8: 2 s in 0.25 s
    a.onended = () => done({ended: true, time: a.currentTime});
    a.onerror = () => done({ended: false, error: a.error.code});
    a.play().catch(error => done({ended: false, error: String(error)}));
    setTimeout(() => done({ended: false, error: 'timeout', time: a.currentTime}), 5000);
})))"""


def test_every_audio_plays_to_its_end(browser_page):
    """Metadata only proves the header parses: this decodes every file through to its end."""
    page, problems = browser_page
    played = page.evaluate(PLAY_ALL)
    assert played == [{"ended": True, "time": pytest.approx(2.0, abs=0.01)}] * 5 + \
        [{"ended": True, "time": pytest.approx(1.0, abs=0.01)}] * 4
    assert problems == []


def test_every_image_loads(browser_page):
    page, _ = browser_page
    sizes = page.eval_on_selector_all(
        "img", "all => all.map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
    assert sizes == [[True, samples.SPEC_WIDTH, samples.SPEC_HEIGHT]] * 9


def test_scores_are_shown(browser_page):
    page, _ = browser_page
    first, second = page.locator("section").all()
    assert first.locator("tr.stem").first.locator("dd[data-metric='SI-SDR']").inner_text() == "7.25"
    assert second.locator("h2").inner_text() == NASTY
    silent = second.locator("tr.stem").nth(1).locator("dd .nan").all()
    shown = [(cell.inner_text(), cell.get_attribute("title")) for cell in silent]
    assert shown == [("\u2014", "silent reference")] * 2
    summary = page.locator("table.summary tr", has_text="bass").locator("td[data-metric='SI-SDR']")
    assert summary.inner_text() == "6.00"  # (7.25 + 4.75) / 2
