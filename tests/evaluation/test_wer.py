from voxhost.evaluation.dataset import load_manifest, representative_subset
from voxhost.evaluation.wer import normalize, wer, wer_by


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
