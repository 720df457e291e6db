"""Kokoro's English voices: pinned and verified on assembly; the blend parser
never lets a non-finite or unbounded weight through (property tests)."""

from __future__ import annotations

import io
import math
import tarfile

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from voxhost.engines.assembly import AssemblyError, sha256_of
from voxhost.engines.tts.kokoro import MAX_BLEND_PARTS, MAX_BLEND_WEIGHT, parse_blend
from voxhost.engines.tts.kokoro_voices import (
    ENGLISH_VOICES,
    ROWS,
    WIDTH,
    extract_voices,
    load_english_voices,
    voices_dir,
)
from voxhost.errors import InvalidRequest

KNOWN = {*ENGLISH_VOICES, "jm_kumo", "jf_alpha"}
voice_ids = st.sampled_from(sorted(KNOWN))
weights = st.floats(min_value=0, max_value=MAX_BLEND_WEIGHT, allow_nan=False).map(lambda w: f"{w:.6f}")


def test_assembled_voices_match_their_pins(settings):
    directory = voices_dir(settings.models_dir)
    for vid, info in ENGLISH_VOICES.items():
        assert sha256_of(directory / f"{vid}.bin") == info.sha256, vid
    styles = load_english_voices(settings.models_dir)
    assert len(styles) == 28 and all(s.shape == (ROWS, WIDTH) for s in styles.values())


def test_a_tampered_package_is_refused(tmp_path):
    fake = tmp_path / "kokoro-js-1.2.1.tgz"
    with tarfile.open(fake, "w:gz") as archive:
        data = b"\0" * ROWS * WIDTH * 4
        member = tarfile.TarInfo("package/voices/af_heart.bin")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    with pytest.raises(AssemblyError, match="sha256"):
        extract_voices(fake, tmp_path / "voices")
    assert not (tmp_path / "voices").exists()


@given(st.lists(st.tuples(voice_ids, weights), min_size=1, max_size=MAX_BLEND_PARTS))
def test_a_valid_blend_normalises_to_finite_weights(parts):
    spec = "+".join(f"{vid}({w})" for vid, w in parts)
    if sum(float(w) for _, w in parts) <= 0:
        with pytest.raises(InvalidRequest):
            parse_blend(spec, KNOWN)
        return
    result = parse_blend(spec, KNOWN)
    assert list(result) == sorted(result) and set(result) <= KNOWN
    assert all(math.isfinite(w) and 0 < w <= 1 for w in result.values())
    assert math.isclose(sum(result.values()), 1.0, rel_tol=1e-9)


@hsettings(max_examples=300)
@given(st.text(alphabet=st.sampled_from("am_onyx bf_emma()+.0123456789eE-naif "), max_size=80)
       | st.lists(st.tuples(voice_ids, st.from_regex(r"[0-9]{1,400}(\.[0-9]{1,5})?", fullmatch=True)),
                  min_size=1, max_size=4).map(lambda ps: "+".join(f"{v}({w})" for v, w in ps)))
def test_any_text_is_a_finite_blend_or_a_400(spec):
    try:
        result = parse_blend(spec, KNOWN)
    except InvalidRequest as exc:  # UnknownVoice is one too: a 400 either way
        assert exc.status_code == 400 and exc.param == "voice"
        return
    assert result and all(math.isfinite(w) and 0 < w <= 1 for w in result.values())
    assert math.isclose(sum(result.values()), 1.0, rel_tol=1e-9)
