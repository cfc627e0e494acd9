#!/usr/bin/env bash
# Many concurrent paced calls against callcast split into processes: a
# nats-server, an edge and a worker, as in production. Every call plays a
# prompt longer than itself, paced by its mark echoes in real time; callsim
# prints first audio, underruns, errors and each process's CPU and memory
# (the edge and the worker from their /metrics, nats-server from /proc).
#
#   scripts/paced-calls.sh                          # 1000 calls, 100 a second, 60 s each
#   CALLS=500 DURATION=30s scripts/paced-calls.sh
#   EDGE_CACHE_BYTES=0 scripts/paced-calls.sh      # every call rendered by the worker
#
# Needs ffmpeg to make the 75 s prompt from audio/sample.mp3.
set -euo pipefail
cd "$(dirname "$0")/.."
CALLS=${CALLS:-1000}
RATE=${RATE:-100}
DURATION=${DURATION:-60s}
tmp=$(mktemp -d)
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap 'stop; rm -rf "$tmp"' EXIT

go build -o "$tmp/bin/" ./cmd/edge ./cmd/worker ./cmd/callsim
go build -o "$tmp/bin/nats-server" github.com/nats-io/nats-server/v2
mkdir "$tmp/audio"
ffmpeg -loglevel error -stream_loop 7 -i audio/sample.mp3 -t 75 -b:a 64k "$tmp/audio/long.mp3"

wait_ok() { for _ in $(seq 300); do curl -sf "$1" >/dev/null && return; sleep 0.1; done; echo "not ready: $1" >&2; exit 1; }

"$tmp/bin/nats-server" -a 127.0.0.1 -p 14398 -js -sd "$tmp/js" >"$tmp/nats.log" 2>&1 &
nats=$!
pids+=($nats)
export NATS_URL=nats://127.0.0.1:14398 LOG_LEVEL=warn
EDGE_ADDR=127.0.0.1:18398 "$tmp/bin/edge" >"$tmp/edge.log" 2>&1 &
pids+=($!)
AUDIO_DIR="$tmp/audio" WORKER_HTTP_ADDR=127.0.0.1:19398 "$tmp/bin/worker" >"$tmp/worker.log" 2>&1 &
pids+=($!)
wait_ok http://127.0.0.1:18398/readyz
wait_ok http://127.0.0.1:19398/readyz

# One call first, at ten times real time, so that the prompt is transcoded
# and cached before the load: by the worker, and, once the call has heard
# it whole, by the edge, which then plays it to every call itself
# (EDGE_CACHE_BYTES=0: no edge cache, every call rendered by the worker).
"$tmp/bin/callsim" -url ws://127.0.0.1:18398/media-stream -param audio=long.mp3 -speed 10 -duration 10s -quiet 0 >/dev/null
echo "$CALLS calls, $RATE a second, $DURATION each; $(nproc) cores; processes: edge, worker, nats-server (pid $nats)"
"$tmp/bin/callsim" -url ws://127.0.0.1:18398/media-stream -calls "$CALLS" -rate "$RATE" -duration "$DURATION" -quiet 0 \
	-param audio=long.mp3 -metrics http://127.0.0.1:18398/metrics -metrics http://127.0.0.1:19398/metrics -pid "$nats"
