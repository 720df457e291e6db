// voxhost console: live transcription over WS /v1/realtime (OpenAI Realtime
// transcription protocol) and, when the server has it, text-to-speech.
// Plain ES module, no build step.

import { ResumeLedger, RECONNECT_CODES, backoffMs } from "/web/resume.js";

const $ = (id) => document.getElementById(id);
const live = {
  ws: null, ctx: null, node: null, stream: null, talking: false, items: new Map(),
  ledger: null, configured: false, outageSince: null, attempt: 0, retry: null,
};
const GIVE_UP_MS = 60000; // an outage this long ends the session

const apiKey = () => $("api-key").value.trim();
const authHeaders = () => (apiKey() ? { Authorization: `Bearer ${apiKey()}` } : {});

// Every API call goes through here: it carries the key typed in the box, and a refused key
// (401) becomes a clear message next to the box and in the caller's own status.
async function api(path, options = {}) {
  const r = await fetch(path, { ...options, headers: { ...(options.headers || {}), ...authHeaders() } });
  if (r.status === 401) {
    const message = apiKey()
      ? `The API key was refused (401): ${await errorMessage(r)}`
      : "This server needs an API key: type it in the box above.";
    setStatus($("key-status"), message, true);
    throw new Error(message);
  }
  setStatus($("key-status"), apiKey() ? "key accepted" : "");
  return r;
}
const mode = () => document.querySelector("input[name=mode]:checked").value;

function setStatus(el, text, isError = false) {
  el.textContent = text;
  el.classList.toggle("error", isError);
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return body.error?.message || response.statusText;
  } catch {
    return response.statusText;
  }
}

// ---------------------------------------------------------------- models
async function loadModels() {
  try {
    const r = await api("/v1/models");
    if (!r.ok) return;
    const { data } = await r.json();
    const select = $("stt-model");
    for (const option of [...select.options].slice(1)) option.remove(); // keep whisper-1 (default)
    for (const row of data) {
      if (row.task && row.task !== "transcription") continue;
      if (row.loaded === false || row.id === "whisper-1") continue;
      select.add(new Option(row.id, row.id));
    }
  } catch { /* the default model still works */ }
}

// ---------------------------------------------------------------- transcript
function item(id) {
  let entry = live.items.get(id);
  if (!entry) {
    const li = document.createElement("li");
    li.className = "partial";
    li.dataset.itemId = id;
    li.innerHTML = '<span class="meta"></span><span class="text"></span>';
    $("transcript").prepend(li);
    entry = { li, meta: li.querySelector(".meta"), text: li.querySelector(".text"), partial: "" };
    live.items.set(id, entry);
  }
  return entry;
}

function onEvent(event) {
  switch (event.type) {
    case "input_audio_buffer.speech_started":
      item(event.item_id).meta.textContent = "speaking…";
      break;
    case "input_audio_buffer.speech_stopped":
    case "input_audio_buffer.committed":
      item(event.item_id).meta.textContent = "transcribing…";
      break;
    case "conversation.item.input_audio_transcription.delta": {
      const entry = item(event.item_id);
      if (!entry.li.classList.contains("partial")) break;
      entry.partial += event.delta;
      entry.text.textContent = entry.partial;
      entry.li.dataset.deltas = String(Number(entry.li.dataset.deltas || 0) + 1);
      break;
    }
    case "conversation.item.input_audio_transcription.completed": {
      const entry = item(event.item_id);
      entry.li.className = "final";
      entry.text.textContent = event.transcript || "(no speech)";
      entry.meta.textContent = `${new Date().toLocaleTimeString()} · ${event.usage?.seconds ?? "?"} s of audio`;
      break;
    }
    case "conversation.item.input_audio_transcription.failed": {
      const entry = item(event.item_id);
      entry.li.className = "failed";
      entry.text.textContent = event.error?.message || "transcription failed";
      break;
    }
    case "input_audio_buffer.cleared":
      break;
    case "error":
      setStatus($("stt-status"), event.error?.message || "error", true);
      break;
    case "session.created":
    case "session.updated":
      setStatus($("stt-status"), mode() === "open" ? "listening (open mic)" : "ready: hold to talk");
      break;
    case "reconnecting":
      setStatus($("stt-status"), `reconnecting (${event.code})…`);
      break;
  }
}

// ---------------------------------------------------------------- session
function sessionUpdate(rate) {
  const language = $("stt-language").value.trim() || null;
  return {
    type: "session.update",
    session: {
      type: "transcription",
      audio: {
        input: {
          format: { type: "audio/pcm", rate },
          transcription: { model: $("stt-model").value, language },
          turn_detection: mode() === "open"
            ? { type: "server_vad", threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500 }
            : null,
        },
      },
    },
  };
}

async function start() {
  const button = $("mic-toggle");
  button.disabled = true;
  try {
    live.stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: true },
    });
    // 24 kHz is OpenAI's pcm16 rate; the browser resamples the microphone.
    live.ctx = new AudioContext({ sampleRate: 24000 });
    const rate = live.ctx.sampleRate;
    await live.ctx.audioWorklet.addModule("/web/pcm-worklet.js");
    const source = live.ctx.createMediaStreamSource(live.stream);
    live.node = new AudioWorkletNode(live.ctx, "pcm-capture");
    const mute = live.ctx.createGain();
    mute.gain.value = 0; // keep the graph pulled without echoing the mic
    source.connect(live.node).connect(mute).connect(live.ctx.destination);

    // A refused WebSocket handshake tells a page nothing, so the key is checked over HTTP first.
    await api("/v1/models");
    // Audio goes through the ledger: if the server goes, a new connection replays
    // what no final answered (resume.js).
    live.ledger = new ResumeLedger(rate, { manual: mode() === "ptt" });
    live.node.port.onmessage = ({ data }) => {
      $("level").value = data.peak;
      if (live.ledger && (mode() === "open" || live.talking)) {
        live.ledger.append(new Int16Array(data.pcm));
        pump();
      }
    };
    connect(rate);
    button.textContent = "Stop microphone";
    button.classList.add("live");
    $("ptt").disabled = mode() !== "ptt";
    setStatus($("stt-status"), "connecting…");
  } catch (err) {
    stop();
    const refused = err.message.includes("API key");
    setStatus($("stt-status"), refused ? err.message : `microphone unavailable: ${err.message}`, true);
  } finally {
    button.disabled = false;
  }
}

// One connection of the live session. A close that says the server went (1013 try
// again, 1006 gone, 1011, 1001/1012 going away) reconnects with jittered, capped
// backoff; the browser has no WebSocket ping, so a dead link shows as 1006 when
// its TCP connection gives up.
function connect(rate) {
  const url = new URL("/v1/realtime", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("intent", "transcription");
  // The key as OpenAI's browser subprotocol, not in the URL (which proxies log).
  const ws = new WebSocket(url, apiKey() ? ["realtime", `openai-insecure-api-key.${apiKey()}`] : undefined);
  ws.binaryType = "arraybuffer";
  live.ws = ws;
  live.configured = false;
  ws.onopen = () => ws.send(JSON.stringify(sessionUpdate(rate)));
  ws.onmessage = (message) => {
    if (live.ws !== ws) return; // an earlier connection's late event
    const event = live.ledger.onEvent(JSON.parse(message.data));
    if (!event) return; // stale or already answered
    if (!live.configured && event.type === "session.updated") {
      live.configured = true;
      live.ledger.startConnection();
      live.outageSince = null;
      live.attempt = 0;
      pump();
    }
    onEvent(event);
  };
  ws.onclose = (close) => {
    if (live.ws !== ws) return;
    live.ledger.lost();
    const now = Date.now();
    live.outageSince ??= now;
    if (RECONNECT_CODES.has(close.code) && now - live.outageSince < GIVE_UP_MS) {
      // Turns the lost server never answered are replayed under new items: drop their rows.
      for (const [id, entry] of live.items) {
        if (!entry.li.classList.contains("final") && !entry.li.classList.contains("failed")) {
          entry.li.remove();
          live.items.delete(id);
        }
      }
      onEvent({ type: "reconnecting", code: close.code });
      live.retry = setTimeout(() => connect(rate), backoffMs(live.attempt++));
      return;
    }
    stop();
    setStatus($("stt-status"), `disconnected (${close.code}${close.reason ? ": " + close.reason : ""})`,
      close.code !== 1000);
  };
}

// Send what the current connection has not had yet: the replay, then live audio.
function pump() {
  const ws = live.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || !live.configured) return;
  for (;;) {
    const [pcm, commit] = live.ledger.nextChunk(Math.round(live.ledger.rate / 10));
    // Binary frames are raw PCM16 (voxhost extension: no base64).
    if (pcm.length) ws.send(pcm.buffer);
    if (commit) ws.send(JSON.stringify({ type: "input_audio_buffer.commit" }));
    if (!pcm.length && !commit) return;
  }
}

function stop() {
  clearTimeout(live.retry);
  const ws = live.ws;
  live.ws = null;
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  live.stream?.getTracks().forEach((t) => t.stop());
  live.ctx?.close();
  Object.assign(live, { stream: null, ctx: null, node: null, talking: false, ledger: null, configured: false,
    outageSince: null, attempt: 0 });
  const button = $("mic-toggle");
  button.textContent = "Start microphone";
  button.classList.remove("live");
  $("ptt").disabled = true;
  $("level").value = 0;
  setStatus($("stt-status"), "idle");
}

function talk(down) {
  if (mode() !== "ptt" || !live.ws || live.talking === down) return;
  live.talking = down;
  $("ptt").classList.toggle("held", down);
  if (!down) {
    live.ledger.commit(); // sent after the audio before it, now or on the next connection
    pump();
  }
}

// ---------------------------------------------------------------- text-to-speech
async function initTts() {
  // Shown only when the server has the speech endpoints.
  let voices = [];
  try {
    const r = await api("/v1/audio/voices");
    if (!r.ok) return;
    const body = await r.json();
    const list = Array.isArray(body) ? body : body.voices || body.data || [];
    voices = list.map((v) => (typeof v === "string" ? { id: v, label: v } : {
      id: v.id || v.voice_id || v.name, label: v.name || v.id, model: v.model,
      language: v.language || v.lang,
    })).filter((v) => v.id);
  } catch {
    return;
  }
  if (!voices.length) return;
  const select = $("tts-voice");
  select.replaceChildren(); // a new key: the list again
  for (const v of voices) {
    const option = new Option(v.language ? `${v.label} (${v.language})` : v.label, v.id);
    option.dataset.model = v.model || "";
    select.add(option);
  }
  $("tts").hidden = false;
}

function design() {
  // The panel's fields as a voice design on the selected voice (POST /v1/audio/voices).
  const effect = $("design-effect").value;
  return {
    base: $("tts-voice").value, pitch_semitones: Number($("design-pitch").value),
    formant_shift: Number($("design-formant").value), speed: Number($("design-speed").value),
    effect: effect || null,
  };
}

async function saveDesign() {
  const status = $("tts-status");
  try {
    const r = await api("/v1/audio/voices", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: $("design-name").value.trim(), ...design() }),
    });
    if (!r.ok) throw new Error(await errorMessage(r));
    const saved = await r.json();
    const option = new Option(`${saved.id} (designed)`, saved.id);
    $("tts-voice").add(option);
    option.selected = true;
    setStatus(status, `saved ${saved.id}`);
  } catch (err) {
    setStatus(status, err.message, true);
  }
}

// A line to hear in each language; picking a language puts its line in the box (unless the user
// wrote their own) and sends it as `language` (a voxhost extension; unset, the server detects it).
const LANGUAGE_SAMPLES = {
  en: "The north gate opens at dawn. Bring 3 torches and 12 arrows.",
  es: "La puerta del norte se abre al amanecer. Trae tres antorchas.",
  fr: "La porte du nord s'ouvre à l'aube. Apporte trois torches.",
  hi: "उत्तर का द्वार सुबह खुलता है। तीन मशालें लाओ।",
  it: "La porta nord si apre all'alba. Porta tre torce.",
  ja: "北の門は夜明けに開く。松明を三本持ってこい。",
  pt: "O portão norte abre ao amanhecer. Traga três tochas.",
  zh: "北门在黎明时打开。带三支火把来。",
};

function pickLanguage() {
  const text = $("tts-text");
  const language = $("tts-language").value;
  if (language && (!text.value.trim() || Object.values(LANGUAGE_SAMPLES).includes(text.value))) {
    text.value = LANGUAGE_SAMPLES[language];
  }
}

async function speak(audition = false) {
  const status = $("tts-status");
  const option = $("tts-voice").selectedOptions[0];
  if (!option) return;
  $("tts-speak").disabled = true;
  setStatus(status, "synthesising…");
  try {
    const r = await api("/v1/audio/speech", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        // An audition sends the unsaved design inline (a voxhost extension).
        model: option.dataset.model || "tts-1-hd", voice: audition ? design() : option.value,
        input: $("tts-text").value, response_format: "wav",
        ...($("tts-language").value ? { language: $("tts-language").value } : {}),
      }),
    });
    if (!r.ok) throw new Error(await errorMessage(r));
    const audio = $("tts-audio");
    if (audio.src) URL.revokeObjectURL(audio.src);
    audio.src = URL.createObjectURL(await r.blob());
    await audio.play().catch(() => {});
    setStatus(status, "");
  } catch (err) {
    setStatus(status, err.message, true);
  } finally {
    $("tts-speak").disabled = false;
  }
}

// ---------------------------------------------------------------- wiring
$("mic-toggle").addEventListener("click", () => (live.ws ? stop() : start()));
for (const radio of document.querySelectorAll("input[name=mode]")) {
  radio.addEventListener("change", () => {
    $("ptt").disabled = !live.ws || mode() !== "ptt";
    if (live.ledger) live.ledger.manual = mode() === "ptt";
    if (live.ws?.readyState === WebSocket.OPEN) live.ws.send(JSON.stringify(sessionUpdate(live.ctx.sampleRate)));
  });
}
const ptt = $("ptt");
ptt.addEventListener("pointerdown", () => talk(true));
for (const name of ["pointerup", "pointerleave", "pointercancel"]) ptt.addEventListener(name, () => talk(false));
document.addEventListener("keydown", (e) => {
  if (e.code === "Space" && !e.repeat && e.target.tagName !== "TEXTAREA" && e.target.tagName !== "INPUT") {
    e.preventDefault();
    talk(true);
  }
});
document.addEventListener("keyup", (e) => e.code === "Space" && talk(false));
$("tts-speak").addEventListener("click", () => speak(false));
$("tts-language").addEventListener("change", pickLanguage);
$("design-audition").addEventListener("click", () => speak(true));
$("design-save").addEventListener("click", saveDesign);

// A key typed (or changed) loads what the server offers with it.
$("api-key").addEventListener("change", () => {
  loadModels();
  initTts();
});
loadModels();
initTts();
