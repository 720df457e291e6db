"""hibari and Kokoro read English with one G2P per accent (~100 MB each, built once)."""

from __future__ import annotations

from voxhost.engines.tts import kokoro_g2p
from voxhost.engines.tts.g2p import shared_g2p


def test_hibari_and_kokoro_share_one_reader_per_accent(server):
    engines = server.app.state.voxhost.services.tts_engines.engines
    assert engines["hibari"].g2p is shared_g2p(british=False)
    american, british = (kokoro_g2p.reader("en", british=b)("tomato").phonemes for b in (False, True))
    assert american != british  # the British reader, built on first use, reads British
    assert shared_g2p(british=True) is shared_g2p(british=True) is not shared_g2p(british=False)
