#!/usr/bin/env bash
# CPU time of `worker transcode` against ffmpeg doing the same job (MP3 to
# 8 kHz mono μ-law) on the same file, runs alternating, and the ratio.
# The file is a 5-minute 44.1 kHz stereo 128 kb/s MP3 (pink noise and a
# tone), made with ffmpeg once and kept in $DIR.
#
#   scripts/transcode-vs-ffmpeg.sh          # 5 runs of each
#   RUNS=9 FILE=some.mp3 scripts/transcode-vs-ffmpeg.sh
#
# Prints each run's user+system CPU seconds, the medians, the ratio
# worker/ffmpeg and the worker's real-time factor per core.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DIR=${DIR:-/tmp/callcast-transcode}
mkdir -p "$DIR"
FILE=${FILE:-$DIR/long.mp3}
SECONDS_OF_AUDIO=${SECONDS_OF_AUDIO:-300}
if [ ! -f "$FILE" ]; then
	ffmpeg -loglevel error -y -f lavfi -i "anoisesrc=d=300:c=pink:r=44100:a=0.2:s=1" \
		-f lavfi -i "sine=f=440:r=44100:d=300" \
		-filter_complex "[0][1]amix=inputs=2,aformat=channel_layouts=stereo" \
		-c:a libmp3lame -b:a 128k "$FILE"
fi
go build -o "$DIR/worker" ./cmd/worker

cpu() { # command...: prints user+sys CPU seconds
	/usr/bin/time -o "$DIR/time" -f "%U %S" "$@" >/dev/null 2>&1
	awk '{ printf "%.3f\n", $1 + $2 }' "$DIR/time"
}
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

ff=() wk=()
for i in $(seq "$RUNS"); do
	ff+=("$(cpu ffmpeg -loglevel error -y -i "$FILE" -ar 8000 -ac 1 -c:a pcm_mulaw -f mulaw "$DIR/ff.ulaw")")
	wk+=("$(cpu "$DIR/worker" transcode -o "$DIR/out.ulaw" "$FILE")")
	echo "run $i: ffmpeg ${ff[-1]} s, worker ${wk[-1]} s"
done
mf=$(printf '%s\n' "${ff[@]}" | median)
mw=$(printf '%s\n' "${wk[@]}" | median)
awk -v f="$mf" -v w="$mw" -v s="$SECONDS_OF_AUDIO" 'BEGIN {
	printf "median CPU: ffmpeg %.3f s, worker %.3f s; worker/ffmpeg %.2f; worker %.0fx real time per core, ffmpeg %.0fx\n", f, w, w / f, s / w, s / f
}'
