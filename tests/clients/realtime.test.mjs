// The official openai Node SDK's realtime client against voxhost over wss, unchanged: only
// baseURL points at the server, and the server's CA is trusted through NODE_EXTRA_CA_CERTS.
// Run by tests/clients/test_node_sdk.py (node --test), which starts the server and writes
// the speech: a real recording from shared/eval as 24 kHz PCM16, streamed at real time.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { test } from "node:test";

import OpenAI from "openai";
import { OpenAIRealtimeWebSocket } from "openai/realtime/websocket";
import { VERSION } from "openai/version";

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
};

const words = (text) => text.toLowerCase().replace(/[^\p{L}\p{N}' ]+/gu, " ").split(/\s+/).filter(Boolean);

function wordErrorRate(reference, hypothesis) {
  const r = words(reference), h = words(hypothesis);
  let row = Array.from({ length: h.length + 1 }, (_, j) => j);
  for (let i = 1; i <= r.length; i++) {
    const next = [i];
    for (let j = 1; j <= h.length; j++) {
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (r[i - 1] === h[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[h.length] / Math.max(1, r.length);
}

const once = (emitter, type) => new Promise((resolve) => emitter.once(type, resolve));

test("OpenAIRealtimeWebSocket transcribes real speech over wss with only baseURL changed", async () => {
  const client = new OpenAI({ baseURL: env("VOXHOST_BASE_URL"), apiKey: env("VOXHOST_API_KEY") });
  const rt = new OpenAIRealtimeWebSocket({ model: "whisper-1" }, client);
  assert.equal(rt.url.protocol, "wss:");

  const failed = new Promise((_, reject) => rt.on("error", (err) => reject(err)));
  const deltas = [];
  rt.on("conversation.item.input_audio_transcription.delta", (event) => deltas.push(event.delta));
  const completed = once(rt, "conversation.item.input_audio_transcription.completed");

  const created = await Promise.race([once(rt, "session.created"), failed]);
  assert.equal(created.session.type, "transcription");
  rt.send({
    type: "session.update",
    session: {
      type: "transcription",
      audio: {
        input: {
          format: { type: "audio/pcm", rate: 24000 },
          transcription: { model: "whisper-1", language: "en" },
          turn_detection: { type: "server_vad", threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500 },
        },
      },
    },
  });
  await Promise.race([once(rt, "session.updated"), failed]);

  // 100 ms appends (2,400 samples of PCM16), each sent when a microphone would have it.
  const pcm = readFileSync(env("VOXHOST_PCM"));
  const step = 4800;
  const started = performance.now();
  for (let offset = 0; offset < pcm.length; offset += step) {
    const due = started + ((offset + step) / 48) - performance.now();
    if (due > 0) await new Promise((resolve) => setTimeout(resolve, due));
    rt.send({ type: "input_audio_buffer.append", audio: pcm.subarray(offset, offset + step).toString("base64") });
  }
  const done = await Promise.race([completed, failed]);
  rt.close();

  const reference = env("VOXHOST_REFERENCE");
  const result = { client: `openai (npm) ${VERSION}`, transcript: done.transcript, deltas };
  if (process.env.VOXHOST_RESULT) writeFileSync(process.env.VOXHOST_RESULT, JSON.stringify(result));
  console.log(JSON.stringify(result));
  assert.ok(deltas.length > 0, "partial transcripts (deltas) while the player speaks");
  assert.ok(wordErrorRate(reference, done.transcript) <= 0.1, done.transcript);
  // The deltas build a partial of the final's opening words.
  const partial = words(deltas.join(""));
  assert.ok(wordErrorRate(words(done.transcript).slice(0, partial.length).join(" "), partial.join(" ")) <= 0.34,
    `${deltas.join("")} / ${done.transcript}`);
});
