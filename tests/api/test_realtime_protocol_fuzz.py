"""Property tests for the realtime event parser: whatever a client sends, the
parser answers with a config or an InvalidRequest (an `error` event), never
another exception (which would end the session), and what it accepts
renders back to valid JSON."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voxhost.api.protocol.realtime import (
    Generation,
    SessionUpdateEvent,
    apply_session_update,
    decode_client_event,
    parse_client_event,
    session_event,
)
from voxhost.errors import VoxhostError
from voxhost.realtime.config import SessionConfig

# The parser's own vocabulary, so generated objects reach deep branches.
KEYS = ["type", "session", "audio", "input", "format", "rate", "transcription", "model", "language", "prompt",
        "keywords", "hotwords", "turn_detection", "threshold", "prefix_padding_ms", "silence_duration_ms",
        "eagerness", "input_audio_format", "input_audio_transcription", "include", "event_id"]
VALUES = ["transcription", "server_vad", "semantic_vad", "audio/pcm", "pcm16", "whisper-1", "en", "en-US", "xx",
          "high", "realtime", 16_000, 24_000]

scalars = (st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=True)
           | st.text(max_size=20) | st.sampled_from(VALUES))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8),
                                                                inner, max_size=6),
    max_leaves=30,
)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text(max_size=200) | json_values.map(lambda v: json.dumps(v, allow_nan=True)))
def test_any_text_is_an_event_or_invalid_request(text):
    try:
        event = parse_client_event(decode_client_event(text))
    except VoxhostError as exc:
        assert exc.status_code == 400
        return
    assert isinstance(event.type, str)


@FUZZ
@given(json_values, st.sampled_from(list(Generation)))
def test_any_session_update_is_a_config_or_invalid_request(session, generation):
    kind = "session.update" if generation is Generation.GA else "transcription_session.update"
    try:
        event = parse_client_event({"type": kind, "session": session})
        config = apply_session_update(event.session, SessionConfig())
    except VoxhostError as exc:
        assert exc.status_code == 400 and (exc.param is None or exc.param.startswith("session"))
        return
    assert isinstance(config, SessionConfig)
    assert isinstance(event, SessionUpdateEvent) == (generation is Generation.GA)
    json.dumps(session_event("updated", config, generation, "sess_1", 0), allow_nan=False)
