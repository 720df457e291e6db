from voxhost.evaluation.dataset import load_manifest, representative_subset
from voxhost.stt.wer import cer, error_rate, normalize, uses_cer, wer, wer_by


def test_normalisation_is_fair_to_style_differences():
    assert normalize("Meet me at 9 o'clock, and bring the map!") == normalize("meet me at nine oclock and bring the map")
    assert normalize("6 × 10 = 60, that's 12%") == "six times ten equals sixty thats twelve percent"
    assert normalize("In 1813") == normalize("in eighteen thirteen")
    assert normalize("Uh, um, yes") == "yes"
    assert normalize("well-known 1,000 coins") == "well known one thousand coins"


def test_wer_counts_real_errors():
    assert wer(["the birch canoe slid"], ["The birch canoe slid."]) == 0.0
    assert wer(["the birch canoe slid"], ["the canoe slid"]) == 0.25
    by = wer_by([("a", "one two", "one two"), ("b", "three four", "three")])
    assert by == {"a": 0.0, "b": 0.5, "pooled": 0.25}


def test_representative_subset_covers_every_category_within_budget():
    english = load_manifest("en")
    subset = representative_subset(english, max_seconds=300)
    assert sum(u.duration for u in subset) <= 300
    assert {u.category for u in subset} == {u.category for u in english}


def test_other_languages_get_their_own_numbers_and_no_english_spelling():
    assert normalize("Valdemoro, 20 de Septiembre de 1881.", "es") == \
        "valdemoro veinte de septiembre de mil ochocientos ochenta y uno"
    assert normalize("im Jahr 1881, 12%", "de") == "im jahr achtzehnhunderteinundachtzig zwölf prozent"
    assert normalize("1.000 Leute", "de") == normalize("1,000 Leute", "de") == "eintausend leute"
    # Elisions split at the apostrophe, typed or typographic, however the quotes around them fall.
    assert normalize("il a ajouté qu’« on ne devrait »", "fr") == normalize("Il a ajouté qu'on ne devrait", "fr")
    assert "percent" not in normalize("12%", "it") and "one" not in normalize("1 uomo", "it")


def test_japanese_korean_and_chinese_are_scored_by_characters():
    assert uses_cer("ja") and uses_cer("ko") and uses_cer("zh") and not uses_cer("de")
    assert wer(["그는 이리저리 피하면서"], ["그는 이리저리피하면서."], "ko") == 0.0  # spacing is not an error
    assert wer(["客観的実在"], ["客観的実在。"], "ja") == 0.0
    # Japanese on its kana reading: a word in kana for the kanji is no error, another word is
    # ("きゃっかんてきじつざい" against "...じつぞん": two kana in eleven).
    assert error_rate(["客観的実在"], ["きゃっかんてき実在"], "ja") == 0.0
    assert error_rate(["客観的実在"], ["客観的実存"], "ja") == 2 / 11
    # Whisper writes Mandarin in either script: the same characters in Traditional are no error.
    assert error_rate(["广州市房地产中介协会分析"], ["廣州市房地產中介協會分析"], "zh") == 0.0
    assert error_rate is wer  # one figure per language, whichever name a caller uses


def test_combining_marks_stay_and_cer_counts_characters_in_any_language():
    # Devanagari's vowel signs are combining marks: stripped, "नमस्ते" fell apart into pieces.
    assert normalize("नमस्ते, दुनिया!", "hi") == "नमस्ते दुनिया"
    assert wer(["नमस्ते दुनिया"], ["नमस्ते दुनिया।"], "hi") == 0.0
    assert cer(["la mer jaune"], ["la mer zone"], "fr") == 3 / 10  # "jaune" -> "zone", spaces out
