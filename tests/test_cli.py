"""The command line: subcommands listed, both entry points, errors as one line."""

import subprocess
import sys

import pytest

from wavesep.cli import main


@pytest.mark.parametrize("command", [["wavesep"], [sys.executable, "-m", "wavesep"]])
def test_help_lists_subcommands(command):
    if command == ["wavesep"]:
        command = [str(__import__("pathlib").Path(sys.executable).with_name("wavesep"))]
    result = subprocess.run(command + ["--help"], capture_output=True, text=True, check=True)
    for name in ("midi", "render", "instruments", "demo"):
        assert name in result.stdout


def test_instruments_lists_programs_and_stem_sets(capsys):
    assert main(["instruments"]) == 0
    out = capsys.readouterr().out
    assert "  33  Electric Bass (finger)" in out and " 128  Drums" in out
    assert "stem set band:" in out and "bass           32-39" in out


def test_unknown_stem_set_is_one_line_error(capsys):
    assert main(["instruments", "--stem-set", "nope"]) == 1
    assert capsys.readouterr().err.strip() == (
        "wavesep: error: unknown stem set 'nope': use one of seed4, seed10, band or a YAML file")


def test_missing_argument_exits_2(capsys):
    with pytest.raises(SystemExit) as error:
        main(["render"])
    assert error.value.code == 2


def test_file_system_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "midi").mkdir()
    blocker = tmp_path / "afile"
    blocker.write_text("")
    from midi_factory import band_song

    band_song(tmp_path / "midi" / "a.mid")
    assert main(["midi", "index", str(tmp_path / "midi"), "--out", str(blocker / "x.jsonl"), "--workers", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("wavesep: error:") and "afile" in err[0]
