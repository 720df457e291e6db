"""One English G2P per accent for the whole process.

hibari and Kokoro both read English with hibari's G2P (misaki's lexicons, a
tagger and an OOV net). Each engine built its own: the American one is ~100 MB
resident (bench/server_memory.py), so the default server held it twice. The
British one (~70 MB) is built on first use: only Kokoro's British voices need it.
Once built, a G2P is read-only and used from several synthesis threads at once,
as each engine already did with its own.
"""

from __future__ import annotations

import threading

from voxhost.ops.memory import loading

_lock = threading.Lock()
_built: dict[bool, object] = {}


def shared_g2p(british: bool = False):
    """The process's `hibari.g2p.G2P` for the accent, built (with its OOV net) on first call."""
    with _lock:  # building is not thread-safe (the OOV net is created lazily)
        if british not in _built:
            from hibari.g2p import G2P

            with loading():  # long-lived lexicon tables out of the serving heap (ops/memory.py)
                g2p = G2P(british=british)
                g2p.oov  # noqa: B018 - build the OOV net now, under the lock
            _built[british] = g2p
        return _built[british]
