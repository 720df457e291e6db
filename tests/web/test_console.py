"""The browser console in a real headless Chromium, microphone fed from real speech.

Chromium's fake capture device plays a WAV file (looped) as the microphone;
the page captures it with its AudioWorklet, streams PCM16 to /v1/realtime,
and the test waits for the final transcript on the page.
"""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from voxhost.audio.decode import decode_audio
from voxhost.stt.wer import wer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
REFERENCE = "it is of the first importance that the letter used should be fine in form"


@pytest.fixture(scope="module")
def mic_wav(tmp_path_factory, eval_audio) -> Path:
    """1 s of silence, the utterance, 3 s of silence: one clean turn per loop."""
    speech = decode_audio((eval_audio / "lj_LJ001-0011.wav").read_bytes())
    audio = np.concatenate([np.zeros(16_000), speech, np.zeros(48_000)]).astype(np.float32)
    path = tmp_path_factory.mktemp("mic") / "mic.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def pw():
    """One Playwright per module: its sync API cannot be started twice at once."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(pw, mic_wav, tmp_path_factory):
    context = pw.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("chromium-profile")),
        executable_path=CHROMIUM,
        headless=True,
        args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={mic_wav}",
            "--autoplay-policy=no-user-gesture-required",
        ],
        viewport={"width": 1200, "height": 720},
    )
    yield context
    context.close()


def test_console_transcribes_the_microphone(browser, base_url, tmp_path):
    page = browser.new_page()
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.goto(base_url + "/")
    # The models list is filled from GET /v1/models.
    page.wait_for_function("document.querySelectorAll('#stt-model option').length > 1")
    # No TTS endpoints on this server build: the panel must stay hidden.
    tts_available = page.evaluate("fetch('/v1/audio/voices').then(r => r.ok)")
    assert page.locator("#tts").is_hidden() != tts_available

    page.click("#mic-toggle")
    page.wait_for_selector("#transcript li.final", timeout=60_000)
    final = page.locator("#transcript li.final .text").first.inner_text()
    assert wer([REFERENCE], [final]) <= 0.25, final
    # Partial text shows while the player speaks. The mic loops every ~8.7 s,
    # so wait for a turn caught mid-speech with partial text (also what the
    # screenshot should show); partials yield to finals, so allow a few loops.
    page.wait_for_selector("#transcript li.partial[data-deltas]", timeout=45_000)
    # To a temp path: a test run must not rewrite the tracked docs/console.png.
    page.screenshot(path=str(tmp_path / "console.png"))
    page.click("#mic-toggle")  # stop
    assert page.locator("#stt-status").inner_text() == "idle"
    # The only failed load allowed is the TTS probe on a server without TTS.
    assert len([e for e in console_errors if "404" not in e or tts_available]) == 0, console_errors
    page.close()


def test_console_designs_auditions_and_saves_a_voice(browser, base_url):
    import httpx

    page = browser.new_page()
    page.goto(base_url + "/")
    page.wait_for_selector("#tts", state="visible")
    page.select_option("#tts-voice", "am_onyx")
    page.click("#tts-design summary")
    page.fill("#design-pitch", "-3")
    page.select_option("#design-effect", "cave")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    with page.expect_response("**/v1/audio/speech", timeout=180_000) as audition:
        page.click("#design-audition")
    response = audition.value
    assert response.status == 200 and response.headers["x-voxhost-voice"] == "audition=am_onyx"
    # The page holds real audio (over a second of it, with the cave's tail) in its player.
    page.wait_for_function("(a => a.src.startsWith('blob:') && a.duration > 1)(document.querySelector('#tts-audio'))",
                           timeout=60_000)

    page.fill("#design-name", "console_knight")
    page.click("#design-save")
    page.wait_for_function("document.querySelector('#tts-status').textContent === 'saved console_knight'",
                           timeout=60_000)
    try:
        saved = httpx.get(base_url + "/v1/audio/voices/console_knight").json()
        assert (saved["base"], saved["pitch_semitones"], saved["effect"]) == ("am_onyx", -3, "cave")
        with page.expect_response("**/v1/audio/speech", timeout=180_000) as spoken:
            page.click("#tts-speak")
        assert spoken.value.headers["x-voxhost-voice"] == "console_knight=am_onyx"
        page.wait_for_function("!document.querySelector('#tts-speak').disabled", timeout=120_000)
        assert not errors, errors
        # Saving the same name again is refused, and the page says why.
        page.select_option("#tts-voice", "am_onyx")
        page.click("#design-save")
        page.wait_for_function("document.querySelector('#tts-status').textContent.includes('already exists')")
    finally:
        httpx.delete(base_url + "/v1/audio/voices/console_knight")
        page.close()


def test_console_speaks_a_picked_language(browser, base_url):
    page = browser.new_page()
    page.goto(base_url + "/")
    page.wait_for_selector("#tts", state="visible")
    page.select_option("#tts-voice", "ef_dora")
    page.select_option("#tts-language", "es")
    assert page.input_value("#tts-text").startswith("La puerta del norte")  # the language's own line
    with page.expect_response("**/v1/audio/speech", timeout=180_000) as spoken:
        page.click("#tts-speak")
    response = spoken.value
    assert response.status == 200 and response.request.post_data_json["language"] == "es"
    assert response.headers["x-voxhost-voice"] == "ef_dora"
    page.wait_for_function("(a => a.src.startsWith('blob:') && a.duration > 1)(document.querySelector('#tts-audio'))",
                           timeout=60_000)
    page.close()


@pytest.fixture(scope="module")
def keyed_console(server, settings):
    """A server with an API key, sharing the session's loaded models (STT and TTS)."""
    from voxhost.api.app import create_app
    from voxhost.ops.auth import new_entry
    from voxhost_testing import LiveServer

    key, entry = new_entry("console-user")
    app = create_app(settings.model_copy(update={"api_keys": [f"console-user:{entry['sha256']}"]}),
                     load_models=False)
    mine, shared = app.state.voxhost.services, server.app.state.voxhost.services
    mine.stt_engines.engines, mine.tts_engines.engines = shared.stt_engines.engines, shared.tts_engines.engines
    app.state.voxhost.ready.set()
    with LiveServer(app) as live:
        yield live.base_url, key


def test_console_works_against_a_keyed_server(browser, keyed_console):
    import httpx

    base_url, key = keyed_console
    # The page and its files load without a key (nothing secret in them); the API does not.
    for path in ("/", "/web/console.js", "/web/console.css", "/web/pcm-worklet.js"):
        assert httpx.get(base_url + path).status_code == 200, path
    assert httpx.get(base_url + "/v1/models").status_code == 401
    page = browser.new_page()
    sent_keys: list[str | None] = []
    page.on("request", lambda r: sent_keys.append(r.headers.get("authorization"))
            if "/v1/" in r.url and r.resource_type in ("fetch", "xhr") else None)
    page.goto(base_url + "/")
    # No key yet: the page says what is missing instead of failing silently.
    page.wait_for_function("document.querySelector('#key-status').textContent.includes('needs an API key')")
    assert page.locator("#tts").is_hidden()
    page.click("#mic-toggle")
    page.wait_for_function("document.querySelector('#stt-status').textContent.includes('needs an API key')")
    assert page.locator("#stt-status").get_attribute("class") == "status error"

    page.fill("#api-key", "vxh_wrong")
    page.dispatch_event("#api-key", "change")
    page.wait_for_function("document.querySelector('#key-status').textContent.includes('API key was refused')")

    page.fill("#api-key", key)
    page.dispatch_event("#api-key", "change")
    page.wait_for_function("document.querySelector('#key-status').textContent === 'key accepted'")
    page.wait_for_function("document.querySelectorAll('#stt-model option').length > 1")
    page.wait_for_selector("#tts", state="visible")  # the voices came with the key

    # Live transcription with the key (sent as OpenAI's browser subprotocol, not in the URL).
    with page.expect_websocket() as ws_info:
        page.click("#mic-toggle")
    assert "api_key" not in ws_info.value.url
    page.wait_for_selector("#transcript li.final", timeout=90_000)
    final = page.locator("#transcript li.final .text").first.inner_text()
    assert wer([REFERENCE], [final]) <= 0.25, final
    page.click("#mic-toggle")

    # A write with the key: save a designed voice.
    page.select_option("#tts-voice", "am_onyx")
    page.click("#tts-design summary")
    page.fill("#design-name", "keyed_guard")
    page.click("#design-save")
    try:
        page.wait_for_function("document.querySelector('#tts-status').textContent === 'saved keyed_guard'",
                               timeout=60_000)
    finally:
        httpx.delete(base_url + "/v1/audio/voices/keyed_guard", headers={"Authorization": f"Bearer {key}"})
    page.close()
    # Every API call after the key was typed carried it.
    after = sent_keys[sent_keys.index(f"Bearer {key}"):]
    assert after and all(k == f"Bearer {key}" for k in after), sent_keys


@pytest.fixture(scope="module")
def four_sentences(tmp_path_factory, english) -> tuple[Path, list[str]]:
    """Four sentences of one speaker with pauses, played once (not looped)."""
    by_name = {u.audio.name: u for u in english}
    names = ("cathy_arctic_a0004.wav", "cathy_arctic_a0012.wav", "cathy_arctic_a0008.wav", "cathy_arctic_a0003.wav")
    parts = [np.zeros(16_000)]
    for name in names:
        parts += [decode_audio(by_name[name].audio.read_bytes()), np.zeros(32_000)]
    parts.append(np.zeros(32_000))
    audio = np.concatenate(parts).astype(np.float32)
    path = tmp_path_factory.mktemp("mic-once") / "four.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return path, [by_name[n].text for n in names]


@pytest.fixture
def drainable(server, settings):
    """A server sharing the session's models whose drain the test starts and ends over HTTP:
    its live sessions get their finals, `error` and 1013, and it refuses new ones until undrained."""
    import asyncio
    import contextlib

    from voxhost.api.app import create_app
    from voxhost.api.lifecycle import drain
    from voxhost_testing import LiveServer

    app = create_app(settings, load_models=False)
    state = app.state.voxhost
    loaded = server.app.state.voxhost.services
    state.services.stt_engines.engines = loaded.stt_engines.engines
    state.services.tts_engines.engines = loaded.tts_engines.engines
    state.services.tts_engines.unavailable = loaded.tts_engines.unavailable
    state.ready.set()

    async def start_drain():
        asyncio.get_running_loop().create_task(drain(state, 60))
        return {}

    app.add_api_route("/test/drain", start_drain, methods=["POST"])
    with contextlib.ExitStack() as stack:
        yield stack.enter_context(LiveServer(app))


def _end_drain(live) -> None:
    """The drained server takes sessions again (as a fresh task behind the same address would).
    From the test's thread: while draining, the server refuses every request, a route too."""
    state = live.app.state.voxhost
    state.draining.clear()
    state.leaving.clear()
    state.sessions.draining = False  # an asyncio.Event's clear(): nothing waits on it by now


def test_console_reconnects_when_its_server_drains_and_loses_no_words(pw, four_sentences, drainable,
                                                                      tmp_path_factory):
    """Drained in the middle of the second sentence: the page reconnects, replays the audio
    no final answered, and the four sentences come back once each."""
    import time

    import httpx

    from voxhost.loadtest.conversation import _alignment
    from voxhost.stt.wer import normalize

    wav, references = four_sentences
    context = pw.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("chromium-once")), executable_path=CHROMIUM, headless=True,
        args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--use-fake-device-for-media-stream",
              "--use-fake-ui-for-media-stream", f"--use-file-for-fake-audio-capture={wav}%noloop"])
    try:
        page = context.new_page()
        page.goto(drainable.base_url + "/")
        page.wait_for_function("document.querySelectorAll('#stt-model option').length > 1")
        page.click("#mic-toggle")
        # The second sentence is under way (its row appeared): drain now. The drain hears the
        # sentence out; the outage after it lasts 3 s (reconnects refused meanwhile), long enough
        # to hold the next sentence's first words: only the replay brings them.
        page.wait_for_function("document.querySelectorAll('#transcript li').length >= 2", timeout=60_000)
        httpx.post(drainable.base_url + "/test/drain")
        page.wait_for_function("document.querySelector('#stt-status').textContent.startsWith('reconnecting')",
                               timeout=30_000)
        time.sleep(3.0)
        _end_drain(drainable)
        page.wait_for_function("document.querySelector('#stt-status').textContent.startsWith('listening')",
                               timeout=30_000)
        # Until every row is final and none has come for 3 s (the last sentence's final included).
        rows = "[...document.querySelectorAll('#transcript li')].map(li => [li.className, li.textContent])"
        seen, since, deadline = None, time.monotonic(), time.monotonic() + 120
        while time.monotonic() < deadline:
            now = page.evaluate(rows)
            if now != seen:
                seen, since = now, time.monotonic()
            elif len(now) >= 4 and all(c == "final" for c, _ in now) and time.monotonic() - since > 3:
                break
            time.sleep(0.2)
        finals = page.eval_on_selector_all("#transcript li.final .text", "els => els.map(e => e.textContent)")
        page.click("#mic-toggle")
    finally:
        context.close()
    heard = " ".join(reversed(finals))  # newest first on the page
    wer, missing, added = _alignment(normalize(" ".join(references)), normalize(heard))
    assert missing <= 2 and added <= 2 and wer <= 0.3, (wer, missing, added, finals)
