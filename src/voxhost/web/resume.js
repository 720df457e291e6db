// Resuming a live session on another server without losing or doubling a turn:
// the browser's copy of src/voxhost/loadtest/resume.py (same rules, same names;
// docs/architecture.md, "Surviving a lost server").
//
// Positions are samples on the client's own timeline (all audio captured since
// the session began). Each connection's server clock starts at 0 at its first
// append: a server position in ms is `base + ms` on the timeline. Audio leaves
// the buffer only when a final answers it (or the cap lets it go).

export const RECONNECT_CODES = new Set([1001, 1006, 1011, 1012, 1013]);
const COMPLETED = "conversation.item.input_audio_transcription.completed";
const FAILED = "conversation.item.input_audio_transcription.failed";

export class ResumeLedger {
  constructor(rate, { manual = false, maxBufferMs = 60000 } = {}) {
    this.rate = rate;
    this.manual = manual; // push-to-talk: the client's commits end turns
    this.maxBuffer = Math.floor((maxBufferMs * rate) / 1000);
    this.chunks = []; // Int16Array pieces of the timeline [kept, end)
    this.kept = 0;
    this.end = 0;
    this.covered = 0; // nothing before this needs replaying
    this.finalized = 0; // ... of which a final answered everything before this
    this.base = 0;
    this.sent = 0;
    this.live = false;
    this.connections = 0;
    this.turns = new Map();
    this.commits = []; // push-to-talk commit points without a final yet
    this.unmatched = []; // commit points sent on this connection, no `committed` yet
    this.stale = new Set(); // items of earlier connections
    this.duplicatesDropped = 0;
    this.staleDropped = 0;
    this.replayed = 0;
  }

  append(pcm) {
    this.chunks.push(pcm);
    this.end += pcm.length;
    const over = this.end - this.kept - this.maxBuffer;
    if (over > 0) {
      const target = Math.min(this.kept + over, this.live ? this.sent : this.end);
      this.covered = Math.max(this.covered, target);
      this.trim();
    }
  }

  commit() {
    if (!this.commits.length || this.commits[this.commits.length - 1] < this.end) this.commits.push(this.end);
  }

  startConnection() {
    for (const id of this.turns.keys()) this.stale.add(id);
    this.turns = new Map();
    this.unmatched = [];
    this.base = Math.max(this.covered, this.kept);
    this.commits = this.commits.filter((p) => p > this.base);
    if (this.connections) this.replayed += this.end - this.base;
    this.sent = this.base;
    this.connections += 1;
    this.live = true;
  }

  lost() {
    this.live = false;
  }

  // The next audio to send on this connection, and whether a commit follows it.
  nextChunk(maxSamples) {
    let stop = Math.min(this.end, this.sent + maxSamples);
    let commit = false;
    const upcoming = this.commits.find((p) => p > this.sent);
    if (upcoming !== undefined && upcoming <= stop) {
      stop = upcoming;
      commit = true;
    }
    const data = this.slice(this.sent, stop);
    this.sent = stop;
    if (commit) this.unmatched.push(stop);
    return [data, commit];
  }

  // Book a server event; returns it for the page, or null to drop it.
  onEvent(event) {
    const id = event.item_id;
    if (id !== undefined && this.stale.has(id)) {
      this.staleDropped += 1;
      return null;
    }
    switch (event.type) {
      case "input_audio_buffer.speech_started":
        this.turn(id).start = this.at(event.audio_start_ms);
        break;
      case "input_audio_buffer.speech_stopped":
        this.turn(id).end = this.at(event.audio_end_ms);
        break;
      case "input_audio_buffer.committed": {
        const turn = this.turn(id);
        if (event.audio_end_ms != null) { // voxhost: the span, whoever committed
          turn.start = this.at(event.audio_start_ms);
          turn.end = this.at(event.audio_end_ms);
          while (this.unmatched.length && this.unmatched[0] <= turn.end + this.rate / 100) this.unmatched.shift();
        } else if (this.manual && this.unmatched.length) {
          turn.end = this.unmatched.shift(); // a server without the span: our commits, in order
        }
        break;
      }
      case COMPLETED:
      case FAILED: {
        const turn = this.turns.get(id);
        if (turn && !this.answer(turn)) return null;
        break;
      }
    }
    this.trim();
    return event;
  }

  answer(turn) {
    if (turn.end != null && turn.end <= this.finalized && !turn.done) {
      this.duplicatesDropped += 1; // every sample of it was answered already
      turn.done = true;
      return false;
    }
    turn.done = true;
    if (turn.end != null) {
      this.covered = Math.max(this.covered, turn.end);
      this.finalized = Math.max(this.finalized, turn.end);
      this.commits = this.commits.filter((p) => p > turn.end + this.rate / 100);
    }
    return true;
  }

  turn(id) {
    if (!this.turns.has(id)) this.turns.set(id, { start: null, end: null, done: false });
    return this.turns.get(id);
  }

  at(ms) {
    return ms == null ? null : this.base + Math.floor((ms * this.rate) / 1000);
  }

  slice(from, to) {
    const out = new Int16Array(Math.max(0, to - from));
    let position = this.kept;
    for (const chunk of this.chunks) {
      const a = Math.max(from, position);
      const b = Math.min(to, position + chunk.length);
      if (b > a) out.set(chunk.subarray(a - position, b - position), a - from);
      position += chunk.length;
      if (position >= to) break;
    }
    return out;
  }

  trim() {
    const cut = Math.min(this.covered, this.live ? this.sent : this.covered);
    while (this.chunks.length && this.kept + this.chunks[0].length <= cut) this.kept += this.chunks.shift().length;
    if (this.chunks.length && cut > this.kept) {
      this.chunks[0] = this.chunks[0].subarray(cut - this.kept);
      this.kept = cut;
    }
  }
}

// Full jitter, capped: players cut off together do not come back together.
export function backoffMs(attempt, baseMs = 200, capMs = 4000) {
  return Math.random() * Math.min(capMs, baseMs * 2 ** attempt);
}
