#!/usr/bin/env bash
# Every figure issue 19 parts A and A2 ask for, in one command, for a QUIET machine (benchmark tool).
#
#   bench/capacity_quiet.sh                    # all parts, about 14 minutes on 2 cores
#   bench/capacity_quiet.sh live rest          # a subset: any of live, rest, tts, memory
#   QUICK=1 bench/capacity_quiet.sh            # shorter stages, fewer clips and rounds: about 9 minutes (noisier)
#
# Parts (each prints its table; JSON under bench/results/, *_quiet.json, overwritten per run):
#   live    bench/capacity.py: the server unpinned on all cores (simulated GPU), live players at 16
#           and 64 and REST at 8 requests/s, this tree against $BASELINE (before the thread
#           policy) stage by stage; then the planner's unpinned CPU figures from this run's own
#           stages (planner/bench.py cpu_from_capacity). Goal: <= 1.5% of a core per player.  ~5 min
#   rest    bench/serving_throughput.py --raw: the default server (whisper-base) against raw
#           faster-whisper on its default threads, one clip at a time and 8 at once, each
#           server's WER beside raw's. Goals: lone >= 0.95x raw, 8 at once >= 1.5x raw sequential,
#           WER unchanged.                                                                  ~4 min
#   tts     bench/tts_vs_kokoro_onnx.py: the server's Kokoro (defaults) against kokoro-onnx 0.6.1
#           on the same model file and voice, in one process (the peer is pip-installed into
#           bench/.peers on first use, never into the product). Goals: RTF <= 1.1x kokoro-onnx's,
#           bark first byte <= kokoro-onnx's.                                                   ~2.5 min
#   memory  bench/server_memory.py --serve: the default server's RSS after warm-up and every
#           engine used once. Goal: <= 800 MB.                                                 ~2.5 min
#
# Quiet means: nothing else running (the script prints the load average before and after each part
# and refuses to start above MAX_LOAD, default 1.0; FORCE=1 runs anyway). Everything is unpinned,
# as production runs. The REST part's "before" (the tree at $BASELINE) is left out to fit the time;
# REST_BEFORE=1 adds it (+3 min).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
BASELINE=${BASELINE:-3164650}
MAX_LOAD=${MAX_LOAD:-1.0}
OUT=bench/results
export PYTHONPATH=src:bench

parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(live rest tts memory)
if [ "${QUICK:-0}" = 1 ]; then
  SECONDS_PER_STAGE=15; REST_ROUNDS=2; REST_CLIPS=8; TTS_LINES=1; TTS_ROUNDS=2
else
  SECONDS_PER_STAGE=30; REST_ROUNDS=3; REST_CLIPS=16; TTS_LINES=2; TTS_ROUNDS=3
fi

cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
log() { echo "=== $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg) | $cpu, $(nproc) cores | $*"; }

load1=$(cut -d' ' -f1 /proc/loadavg)
if [ "${FORCE:-0}" != 1 ] && awk -v l="$load1" -v m="$MAX_LOAD" 'BEGIN{exit !(l > m)}'; then
  echo "load average $load1 > $MAX_LOAD: not a quiet machine (FORCE=1 to run anyway, and say so)" >&2
  exit 1
fi
git cat-file -e "$BASELINE^{commit}" 2>/dev/null || { echo "baseline $BASELINE is not in this repository" >&2; exit 1; }
started=$(date +%s)

for part in "${parts[@]}"; do
  case "$part" in
    live)
      log "live: capacity.py --live 16,64 --rest 8 --seconds $SECONDS_PER_STAGE --baseline $BASELINE"
      rm -f "$OUT/capacity_quiet.json"
      "$PY" bench/capacity.py --live 16,64 --rest 8 --tts "" --seconds "$SECONDS_PER_STAGE" \
        --baseline "$BASELINE" --no-profile --json "$OUT/capacity_quiet.json"
      log "live: the planner's CPU figures from this run (unpinned, this tree, no failed stages)"
      "$PY" -c "import json, sys; from voxhost.planner.bench import cpu_from_capacity; \
print(json.dumps(cpu_from_capacity(json.load(open(sys.argv[1]))), indent=1))" "$OUT/capacity_quiet.json"
      ;;
    rest)
      compare="after="
      [ "${REST_BEFORE:-0}" = 1 ] && compare="before=rev=$BASELINE;after="
      log "rest: serving_throughput.py --levels 1,8 --rounds $REST_ROUNDS --clips $REST_CLIPS --raw --compare '$compare'"
      "$PY" bench/serving_throughput.py --model whisper-base --levels 1,8 --rounds "$REST_ROUNDS" \
        --clips "$REST_CLIPS" --raw --compare "$compare" --out "$OUT/rest_vs_raw_quiet.json"
      ;;
    tts)
      log "tts: tts_vs_kokoro_onnx.py --lines $TTS_LINES --rounds $TTS_ROUNDS"
      "$PY" bench/tts_vs_kokoro_onnx.py --lines "$TTS_LINES" --rounds "$TTS_ROUNDS" --out "$OUT/tts_vs_kokoro_onnx_quiet.json"
      ;;
    memory)
      log "memory: server_memory.py --serve"
      "$PY" bench/server_memory.py --serve --out "$OUT/server_memory_quiet.json"
      ;;
    *)
      echo "unknown part '$part' (live, rest, tts, memory)" >&2; exit 2 ;;
  esac
done
log "done in $(( ($(date +%s) - started) / 60 )) min; results: $OUT/*_quiet.json"
