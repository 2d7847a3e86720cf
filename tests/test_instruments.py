import pytest

from wavesep import instruments as gm


def test_general_midi_tables():
    assert len(gm.PROGRAM_NAMES) == 128 and len(set(gm.PROGRAM_NAMES)) == 128
    assert len(gm.FAMILY_NAMES) == 16
    assert gm.program_name(0) == "Acoustic Grand Piano"
    assert gm.program_name(33) == "Electric Bass (finger)"
    assert gm.program_name(127) == "Gunshot"
    assert gm.program_name(gm.DRUMS) == "Drums"
    assert gm.family_name(40) == "Strings" and gm.family_name(48) == "Ensemble"
    assert gm.family_name(127) == "Sound Effects" and gm.family_name(128) == "Drums"
    assert [gm.family_name(p) for p in range(0, 128, 8)] == list(gm.FAMILY_NAMES)
    with pytest.raises(ValueError, match="0-128"):
        gm.program_name(129)


@pytest.mark.parametrize("spec, expected", [
    (33, {33}),
    ("32-39", set(range(32, 40))),
    ("bass", set(range(32, 40))),
    ("Synth Pad", set(range(88, 96))),
    ("flute", {73}),
    ("Acoustic Guitar (nylon)", {24}),
    ("drums", {128}),
    (["piano", 128, "40-41"], set(range(8)) | {128, 40, 41}),
])
def test_parse_programs(spec, expected):
    assert gm.parse_programs(spec) == expected


@pytest.mark.parametrize("spec", ["kazoo", "39-32", 130, True])
def test_parse_programs_rejects(spec):
    with pytest.raises(ValueError):
        gm.parse_programs(spec)


def test_builtin_stem_sets():
    seed4 = gm.STEM_SETS["seed4"]
    assert seed4.names == ["drums", "bass", "piano", "strings"]
    assert seed4.stem_index(128) == 0 and seed4.stem_index(35) == 1 and seed4.stem_index(55) == 3
    assert seed4.stem_index(73) is None  # no other stem: a flute belongs to no stem
    seed10 = gm.STEM_SETS["seed10"]
    assert len(seed10) == 10
    assert [next(iter(s.programs)) for s in seed10.stems] == [128, 0, 48, 33, 25, 24, 52, 73, 4, 56]
    band = gm.STEM_SETS["band"]
    assert band.names == ["drums", "bass", "piano", "guitar", "strings", "other"]
    assert band.stem_index(73) == 5 and band.stem_index(26) == 3
    # Every program has exactly one stem in a set with other.
    assert all(band.stem_index(p) is not None for p in range(129))


def test_stem_set_from_yaml(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("stems:\n  drums: [drums]\n  keys: [piano, organ]\n  low: '32-39'\nother: true\n")
    stem_set = gm.get_stem_set(str(path))
    assert stem_set.name == "mine"
    assert stem_set.names == ["drums", "keys", "low", "other"]
    assert stem_set.stem_index(20) == 1 and stem_set.stem_index(100) == 3


@pytest.mark.parametrize("text, message", [
    ("stems:\n  a: [1]\nothers: true\n", "unknown key.*others"),
    ("stems:\n  a: [piano]\n  b: [0]\n", "program 0 .*both stems"),
    ("stems:\n  a: [kazoo]\n", "kazoo"),
    ("stems: []\n", "needs 'stems'"),
])
def test_stem_set_yaml_errors_name_the_file(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as error:
        gm.get_stem_set(str(path))
    assert str(path) in str(error.value)


def test_unknown_stem_set():
    with pytest.raises(ValueError, match="unknown stem set 'nope'"):
        gm.get_stem_set("nope")
