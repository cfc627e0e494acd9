#!/bin/sh
# Makes the soxr references the resampler's quality tests compare with
# (quality_test.go). Tests never run this: the outputs are committed. Needs
# ffmpeg built with libsoxr (Debian's is).
#
#   *.soxr.f32         the speech fixtures resampled to 8000 Hz by soxr at
#                      its very high quality (precision 28), as ffmpeg
#                      decodes them: float32 little-endian, full scale 1.0
#   soxr-response.txt  soxr's gain at frequencies around the band edge,
#                      22050 → 8000 Hz: "Hz dB" per line
set -eu
cd "$(dirname "$0")"
soxr="aresample=8000:resampler=soxr:precision=28"

for f in speech-22k.wav speech-22k-mono-vbr.mp3; do
	ffmpeg -loglevel error -y -i "$f" -af "aformat=sample_fmts=dbl,$soxr" -f f32le "${f%.*}.soxr.f32"
done

# A tone of amplitude 0.5 (-9.03 dB RMS) for 2 s, its RMS level measured
# over the middle 1.5 s of soxr's output.
level() { # frequency
	ffmpeg -hide_banner -nostats -f lavfi -i "aevalsrc=0.5*sin(2*PI*$1*t):s=22050:d=2" \
		-af "$soxr,atrim=0.25:1.75,astats=measure_overall=RMS_level:measure_perchannel=none" \
		-c:a pcm_f64le -f null - 2>&1 | sed -n 's/.*RMS level dB: //p'
}
ref=$(level 1000)
for f in 3000 3200 3400 3500 3600 3650 3700 3725 3750 3775 3800 3825 3850 3875 3900 3925 3950 3975 3990; do
	echo "$f $(level "$f") $ref" | awk '{ printf "%d %.2f\n", $1, $2 - $3 }'
done > soxr-response.txt
