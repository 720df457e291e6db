"""REST json/text decodes without timestamp tokens (VOXHOST_STT_REST_TEXT_ONLY; the policy is
stt/service.py's, tests/stt/test_rest_window.py): what the client gets must be that decode, and
responses that show timestamps must keep them."""

from __future__ import annotations

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.base import TranscriptionOptions
from voxhost.stt.service import REST_WINDOW_FLOOR_S


def test_json_decodes_text_only_and_verbose_json_keeps_timestamps(server, openai_client, eval_audio):
    engine = server.app.state.voxhost.services.stt_engines.get("whisper-base")
    path = eval_audio / "lj_LJ001-0004.wav"
    audio = decode_audio(path.read_bytes())
    with_ts = engine.transcribe(audio, TranscriptionOptions(language="en"))
    # A CPU engine: text-only in the clip-sized window (a GPU's keeps the whole window).
    rest = engine.transcribe(audio, TranscriptionOptions(language="en", without_timestamps=True,
                                                         chunk_length=REST_WINDOW_FLOOR_S))
    assert len(rest.segments) == 1 and rest.segments[0].start == 0.0  # one untimed span
    with open(path, "rb") as f:
        got = openai_client.audio.transcriptions.create(model="whisper-base", file=f, language="en")
    assert got.text == rest.text
    with open(path, "rb") as f:
        verbose = openai_client.audio.transcriptions.create(
            model="whisper-base", file=f, language="en", response_format="verbose_json",
            timestamp_granularities=["segment"])
    assert verbose.text == with_ts.text
    assert [round(s.end, 2) for s in verbose.segments] == [round(s.end, 2) for s in with_ts.segments]
