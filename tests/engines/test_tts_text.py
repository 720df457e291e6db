"""The TTS text front end: what gets spoken, and how it is split for streaming."""

from __future__ import annotations

import pytest

from voxhost.engines.tts.text import (
    CLAUSE_PAUSE,
    SENTENCE_PAUSE,
    Unpronounceable,
    normalize,
    prepare,
    split,
)
from voxhost.errors import InvalidRequest


@pytest.mark.parametrize(
    "raw, spoken",
    [
        ("You owe the guild 250 gold coins.", "You owe the guild two hundred fifty gold coins."),
        ("It costs $5.", "It costs five dollars."),
        ("Only $1.50, or £3.", "Only one dollar and fifty cents, or three pounds."),
        ("A bounty of $2.5k!", "A bounty of two point five thousand dollars!"),
        ("Meet me at 9 o'clock.", "Meet me at nine o'clock."),
        ("The gates open at 9:30pm and 7:05.", "The gates open at nine thirty P M and seven oh five."),
        ("Ask Dr. Smith and Mrs. Jones.", "Ask Doctor Smith and Missus Jones."),
        ("Go to St. Ives via Baker St. tonight.", "Go to Saint Ives via Baker Street tonight."),
        ("The 3rd wave, 45% of 1,250 men.", "The third wave, forty-five percent of one thousand two hundred fifty men."),
        ("It fell in 1999.", "It fell in nineteen ninety-nine."),
        ("Room #4 holds 2-3 rats at -5 degrees.", "Room number four holds two to three rats at minus five degrees."),
        ("Take 2.75 potions.", "Take two point seven five potions."),
        ("Hi 🙂 there!", "Hi there!"),
    ],
)
def test_normalize_speaks_numbers_currency_and_abbreviations(raw, spoken):
    assert normalize(raw) == spoken


@pytest.mark.parametrize(
    "bad, code",
    [
        ("", "empty_input"),
        ("  \n\t ", "empty_input"),
        ("x" * 4097, "string_above_max_length"),
        ("Halt\x00 thief", "invalid_characters"),
        ("bell\x07", "invalid_characters"),
        ("🙂🎉👍🏽", "unpronounceable_input"),
        ("?!... --- ***", "unpronounceable_input"),
    ],
)
def test_prepare_rejects_bad_input(bad, code):
    with pytest.raises(InvalidRequest) as caught:
        prepare(bad)
    assert caught.value.code == code
    assert caught.value.param == "input"
    if code == "unpronounceable_input":
        assert isinstance(caught.value, Unpronounceable)


def test_max_length_is_inclusive():
    assert prepare("a" * 4096)


def test_split_sentences_with_pauses_and_a_short_first_chunk():
    text = normalize(
        "Welcome back, traveler, the old bridge to the northern village collapsed during last night's storm. "
        "Nobody crosses now! Will you help?"
    )
    chunks = split(text)
    assert [c.text for c in chunks] == [
        "Welcome back,",
        "traveler, the old bridge to the northern village collapsed during last night's storm.",
        "Nobody crosses now!",
        "Will you help?",
    ]
    assert [c.pause for c in chunks] == [0.0, CLAUSE_PAUSE, SENTENCE_PAUSE, SENTENCE_PAUSE]


def test_split_keeps_every_chunk_under_the_limit():
    long_sentence = " ".join(["the caravan moved on"] * 60) + "."
    chunks = split(long_sentence, max_chars=120)
    assert len(chunks) > 5
    assert all(len(c.text) <= 120 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == long_sentence.split()


def test_first_chunk_is_a_few_words_cut_at_a_clause_or_phrase_edge():
    chunks = split(normalize("The old bridge to the northern village collapsed during the storm. Go!"))
    assert [c.text for c in chunks][:2] == ["The old bridge", "to the northern village collapsed during the storm."]
    assert [c.pause for c in chunks] == [0.0, 0.0, SENTENCE_PAUSE]  # a cut inside a clause adds no silence
    listen = split(normalize("Listen well, the old bridge collapsed during the storm."))
    assert [(c.text, c.pause) for c in listen] == [("Listen well,", 0.0),
                                                   ("the old bridge collapsed during the storm.", CLAUSE_PAUSE)]
    # A short line, or one that would leave a lone word behind, is said whole.
    assert [c.text for c in split("Meet me at nine.")] == ["Meet me at nine."]
    assert [c.text for c in split("The old bridge to the village.", first_word_limit=0)] == [
        "The old bridge to the village."]


def test_without_the_early_cut_the_first_sentence_is_said_whole():
    """`early=False` (a busy server): no first clause or first words on their own, every
    sentence still its own chunk with the same pauses."""
    text = normalize("Welcome back, traveler, the old bridge to the northern village collapsed during "
                     "last night's storm. Nobody crosses now!")
    assert [(c.text, c.pause) for c in split(text, early=False)] == [
        ("Welcome back, traveler, the old bridge to the northern village collapsed during last night's storm.", 0.0),
        ("Nobody crosses now!", SENTENCE_PAUSE)]
    assert [c.text for c in split(text)][:2] == ["Welcome back,", "traveler, the old bridge to the northern "
                                                                  "village collapsed during last night's storm."]
    # Mandarin's first clause is cut off only for an early start too.
    zh = "今天早上北方村庄的老桥在暴风雨中倒塌了，商人们只好绕远路穿过森林。"
    assert len(split(zh, language="zh")) == 2
    assert [c.text for c in split(zh, language="zh", early=False)] == [zh]
