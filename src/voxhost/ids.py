"""The one generator of wire IDs (requests, realtime sessions, items, events).

OpenAI's shape: a type prefix and random hex (`req_…`, `sess_…`, `item_…`,
`event_…`). Random, not sequential, so an ID tells a client nothing about
other players' traffic.
"""

from __future__ import annotations

import secrets

ID_HEX_CHARS = 22


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(ID_HEX_CHARS // 2)}"
