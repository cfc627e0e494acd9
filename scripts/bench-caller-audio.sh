#!/bin/sh
# Edge CPU with 1000 calls × DURATION of paced audio, for each edge binary
# and environment given, run after run with the same command, as in the
# README's 1000-call run (nats-server, edge, worker as processes):
#
#   scripts/bench-caller-audio.sh /tmp/cc/edge-before "" /tmp/cc/edge "VAD=off" /tmp/cc/edge "VAD=on"
#
# Each pair is an edge binary and the environment it runs with. Needs
# $CC/{nats-server,worker,callsim} (CC defaults to /tmp/cc; see the README)
# and $CC/audio/long.wav, a prompt longer than the calls (PARAM=audio=none: no
# playback, only the callers' audio). Ports are PORT_BASE+222 (NATS), +81
# (edge) and +90 (worker). Prints callsim's summary lines and each process's
# CPU. CALLSIM names another callsim binary.
set -eu
D=${DURATION:-40s}
CALLS=${CALLS:-1000}
P=${PORT_BASE:-24000}
cc=${CC:-/tmp/cc}
while [ $# -ge 2 ]; do
	bin=$1 env=$2
	shift 2
	rm -rf $cc/js
	$cc/nats-server -a 127.0.0.1 -p $((P + 222)) -js -sd $cc/js >/dev/null 2>&1 &
	ns=$!
	sleep 1
	env NATS_URL=nats://127.0.0.1:$((P + 222)) EDGE_ADDR=127.0.0.1:$((P + 81)) LOG_LEVEL=warn $env $bin >$cc/edge.log 2>&1 &
	edge=$!
	env NATS_URL=nats://127.0.0.1:$((P + 222)) AUDIO_DIR=$cc/audio WORKER_HTTP_ADDR=127.0.0.1:$((P + 90)) LOG_LEVEL=warn $cc/worker >$cc/worker.log 2>&1 &
	worker=$!
	sleep 2
	echo "== $bin $env (load average $(cut -d' ' -f1-3 /proc/loadavg))"
	/usr/bin/time -f "callsim cpu: %U s user + %S s system" -o $cc/callsim.time \
		${CALLSIM:-$cc/callsim} -url ws://127.0.0.1:$((P + 81))/media-stream -calls "$CALLS" -rate 100 -duration "$D" -quiet 0 \
		-param "${PARAM:-audio=long.wav}" -metrics http://127.0.0.1:$((P + 81))/metrics -pid $ns -pid $worker ${EXTRA:-} 2>/dev/null | grep -E "calls|underruns|process|caller" || true
	cat $cc/callsim.time
	kill $worker $edge
	wait $worker $edge 2>/dev/null || true
	kill $ns
	wait $ns 2>/dev/null || true
done
