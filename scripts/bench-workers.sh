#!/usr/bin/env bash
# Transcode throughput against the number of worker processes: N calls start
# at once, each asking for a different file (the bundled sample with a
# distinct ID3v1 tag, so that every one is a cache miss), on a NATS server
# with an edge and 1, 2, then 3 worker processes. Prints transcodes per
# second: the time until every file is transcoded and cached, summed over
# the workers' callcast_worker_cache_stored_total.
#
#   scripts/bench-workers.sh          # N=60
#   N=120 scripts/bench-workers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-60}
WORKERS=${WORKERS:-"1 2 3"}
tmp=$(mktemp -d)
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; pids=(); }
trap 'stop; rm -rf "$tmp"' EXIT

go build -o "$tmp/bin/" ./cmd/edge ./cmd/worker ./cmd/callsim
go build -o "$tmp/bin/nats-server" github.com/nats-io/nats-server/v2
mkdir "$tmp/audio"
for i in $(seq 0 $((N - 1))); do
	{ cat audio/sample.mp3; printf 'TAG%-125s' "clip-$i"; } >"$tmp/audio/clip-$i.mp3"
done

wait_ok() { for _ in $(seq 100); do curl -sf "$1" >/dev/null && return; sleep 0.1; done; echo "not ready: $1" >&2; exit 1; }
stored() {
	local sum=0 v
	for w in $(seq "$1"); do
		v=$(curl -sf "http://127.0.0.1:1910$w/metrics" | awk '/^callcast_worker_cache_stored_total/ {print $2}')
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

echo "$N distinct files of $(ffprobe -v error -show_entries format=duration -of csv=p=0 audio/sample.mp3 2>/dev/null || echo 10.6) s (44.1 kHz stereo MP3), $(nproc) cores"
for workers in $WORKERS; do
	"$tmp/bin/nats-server" -a 127.0.0.1 -p 14399 -js -sd "$tmp/js-$workers" >"$tmp/nats.log" 2>&1 &
	pids+=($!)
	EDGE_ADDR=127.0.0.1:18099 NATS_URL=nats://127.0.0.1:14399 LOG_LEVEL=warn "$tmp/bin/edge" >"$tmp/edge.log" 2>&1 &
	pids+=($!)
	for w in $(seq "$workers"); do
		WORKER_HTTP_ADDR=127.0.0.1:1910$w NATS_URL=nats://127.0.0.1:14399 AUDIO_DIR="$tmp/audio" LOG_LEVEL=warn \
			"$tmp/bin/worker" >"$tmp/worker-$w.log" 2>&1 &
		pids+=($!)
		wait_ok "http://127.0.0.1:1910$w/readyz"
	done
	wait_ok http://127.0.0.1:18099/readyz

	start=$(date +%s.%N)
	"$tmp/bin/callsim" -url ws://127.0.0.1:18099/media-stream -calls "$N" -param 'audio=clip-{i}.mp3' \
		-duration 1s -log-level error >"$tmp/callsim.log" 2>&1 &
	sim=$!
	while [ "$(stored "$workers")" -lt "$N" ]; do sleep 0.05; done
	end=$(date +%s.%N)
	wait "$sim" || true
	awk -v n="$N" -v w="$workers" -v s="$start" -v e="$end" \
		'BEGIN { printf "%d worker process(es): %d transcodes in %.2f s = %.1f transcodes/s\n", w, n, e - s, n / (e - s) }'
	stop
done
