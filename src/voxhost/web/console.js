// voxhost console: live transcription over WS /v1/realtime (OpenAI Realtime
// transcription protocol) and, when the server has it, text-to-speech.
// Plain ES module, no build step.

const $ = (id) => document.getElementById(id);
const live = { ws: null, ctx: null, node: null, stream: null, talking: false, items: new Map() };

const apiKey = () => $("api-key").value.trim();
const authHeaders = () => (apiKey() ? { Authorization: `Bearer ${apiKey()}` } : {});
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
    const r = await fetch("/v1/models", { headers: authHeaders() });
    if (!r.ok) return;
    const { data } = await r.json();
    const select = $("stt-model");
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

    const url = new URL("/v1/realtime", location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("intent", "transcription");
    if (apiKey()) url.searchParams.set("api_key", apiKey());
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    live.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify(sessionUpdate(rate)));
    ws.onmessage = (message) => onEvent(JSON.parse(message.data));
    ws.onclose = (close) => {
      if (live.ws === ws) {
        stop();
        setStatus($("stt-status"), `disconnected (${close.code}${close.reason ? ": " + close.reason : ""})`,
          close.code !== 1000);
      }
    };
    live.node.port.onmessage = ({ data }) => {
      $("level").value = data.peak;
      // Binary frames are raw PCM16 (voxhost extension: no base64).
      if (ws.readyState === WebSocket.OPEN && (mode() === "open" || live.talking)) ws.send(data.pcm);
    };
    button.textContent = "Stop microphone";
    button.classList.add("live");
    $("ptt").disabled = mode() !== "ptt";
    setStatus($("stt-status"), "connecting…");
  } catch (err) {
    stop();
    setStatus($("stt-status"), `microphone unavailable: ${err.message}`, true);
  } finally {
    button.disabled = false;
  }
}

function stop() {
  const ws = live.ws;
  live.ws = null;
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  live.stream?.getTracks().forEach((t) => t.stop());
  live.ctx?.close();
  Object.assign(live, { stream: null, ctx: null, node: null, talking: false });
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
  if (!down && live.ws.readyState === WebSocket.OPEN) {
    live.ws.send(JSON.stringify({ type: "input_audio_buffer.commit" }));
  }
}

// ---------------------------------------------------------------- text-to-speech
async function initTts() {
  // Shown only when the server has the speech endpoints.
  let voices = [];
  try {
    const r = await fetch("/v1/audio/voices", { headers: authHeaders() });
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
    const r = await fetch("/v1/audio/voices", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...authHeaders() },
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

async function speak(audition = false) {
  const status = $("tts-status");
  const option = $("tts-voice").selectedOptions[0];
  if (!option) return;
  $("tts-speak").disabled = true;
  setStatus(status, "synthesising…");
  try {
    const r = await fetch("/v1/audio/speech", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify({
        // An audition sends the unsaved design inline (a voxhost extension).
        model: option.dataset.model || "tts-1-hd", voice: audition ? design() : option.value,
        input: $("tts-text").value, response_format: "wav",
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
$("design-audition").addEventListener("click", () => speak(true));
$("design-save").addEventListener("click", saveDesign);

loadModels();
initTts();
