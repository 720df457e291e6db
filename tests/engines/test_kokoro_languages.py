"""Kokoro's readers for its other languages: built from the installed packages alone (no
network), each phoneme owned by a word of the text, and the voice map's per-language shape."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from voxhost.engines.tts import kokoro_g2p

NO_NETWORK = """
import json, socket, sys

def refuse(*args, **kwargs):
    raise OSError("network blocked by the test")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

from voxhost.engines.tts import kokoro_g2p

out = {}
for code in sys.argv[1:]:
    out[code] = kokoro_g2p.reader(code)(kokoro_g2p.WARM_UP[code]).phonemes
print(json.dumps(out))
"""


def test_every_reader_builds_from_the_install_with_the_network_blocked(tmp_path):
    """A fresh process with every socket refused builds each installed language's reader (its
    dictionaries: unidic-lite's, jieba's, pypinyin's, espeak-ng's data) and reads a line."""
    codes = [c for c in kokoro_g2p.LANGUAGES if c != "en" and kokoro_g2p.installed(c)]
    assert {"ja", "zh"} <= set(codes)  # the default install has these two
    script = tmp_path / "no_network.py"
    script.write_text(NO_NETWORK)
    src = str(Path(__file__).resolve().parents[2] / "src")
    done = subprocess.run([sys.executable, str(script), *codes], capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    spelled = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(spelled) == set(codes) and all(spelled.values()), spelled


@pytest.mark.parametrize("code, text, words", [
    ("ja", "ガレスに会ったか？", ["ガレス", "に", "会った", "か"]),
    ("zh", "你见过Gareth吗？", ["你", "见", "过", "Gareth", "吗"]),
])
def test_each_phoneme_belongs_to_a_word_of_the_text(code, text, words):
    spelled = kokoro_g2p.reader(code)(text)
    assert spelled.words == words
    assert len(spelled.owner) == len(spelled.phonemes)
    for index, word in enumerate(words):  # every word owns phonemes, in order
        owned = [i for i, o in enumerate(spelled.owner) if o == index]
        assert owned, word
    if "Gareth" in words:  # an English name inside the text: read by the English reader
        assert "ɡˈæɹəθ" in spelled.phonemes


def test_the_voice_map_takes_a_voice_per_language_and_keeps_plain_entries(tmp_path):
    from voxhost.engines.tts.registry import TtsRegistry
    from voxhost.ops.settings import Settings
    from voxhost.tts.voices import DEFAULT_LANGUAGE_VOICES, VoiceCatalog

    settings = Settings(tts_voice_map={"kokoro": {"onyx": {"fr": "im_nicola", "en": "bm_george"},
                                                  "alloy": "af_bella"}}, voices_dir=tmp_path)
    catalog = VoiceCatalog(TtsRegistry(settings), settings)
    assert catalog.voice_map["kokoro"]["onyx"] == "bm_george" and catalog.voice_map["kokoro"]["alloy"] == "af_bella"
    assert catalog.language_voices["kokoro"]["fr"]["onyx"] == "im_nicola"
    assert catalog.language_voices["kokoro"]["es"]["alloy"] == DEFAULT_LANGUAGE_VOICES["es"]["alloy"]


def test_every_openai_name_has_a_voice_of_its_gender_in_every_language():
    from voxhost.engines.tts.kokoro_voices import VOICES
    from voxhost.tts.voices import DEFAULT_LANGUAGE_VOICES, FRENCH_MALE, OPENAI_VOICE_GENDER

    for code, table in DEFAULT_LANGUAGE_VOICES.items():
        assert set(table) == set(OPENAI_VOICE_GENDER)
        for name, voice in table.items():
            assert VOICES[voice].gender == OPENAI_VOICE_GENDER[name], (code, name, voice)
            # native where the language has a voice of that gender (French has no male one)
            assert VOICES[voice].code == code or voice == FRENCH_MALE, (code, name, voice)


@pytest.mark.parametrize("code, line", [
    ("es", "Si buscas al herrero, lo encontrarás junto a la fuente de la plaza."),
    ("fr", "Je n'ai pas le temps pour tes questions, les gardes arrivent."),
    ("it", "Portami tre pelli di lupo e ti darò una spada nuova."),
])
def test_gruut_reads_as_espeak_ng_does_where_it_stands_in(code, line):
    """The `gruut` extra (MIT) stands in for espeak-ng (GPL) in es, fr, it: its espeak-style lexicon
    must give Kokoro nearly the phonemes espeak-ng gives (the round trip is in docs/benchmarks.md)."""
    import difflib

    pytest.importorskip("gruut")
    pytest.importorskip("phonemizer")
    ours = kokoro_g2p.gruut(code)(line).phonemes
    reference = kokoro_g2p.espeak(code)(line).phonemes
    assert difflib.SequenceMatcher(a=ours, b=reference).ratio() >= 0.85, (ours, reference)
