#!/bin/sh
# Regenerates the audio fixtures in this directory. Tests never run this:
# the outputs are committed. Needs ffmpeg, sox, lame, espeak-ng and python3.
set -eu
cd "$(dirname "$0")"
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT

# Real speech, 22.05 kHz mono 16-bit PCM, silence trimmed.
espeak-ng -w "$t/sp.wav" "Thanks for calling. Please stay on the line."
sox "$t/sp.wav" speech-22k.wav silence 1 0.01 0.1% reverse silence 1 0.01 0.1% reverse pad 0.05 0.05

# Music-like test signal (pink noise and a tone), 44.1 kHz stereo CBR
# 128 kb/s with a LAME Info tag: the speed and memory benchmarks' input.
ffmpeg -loglevel error -y -f lavfi -i "anoisesrc=d=3:c=pink:r=44100:a=0.2:s=1" \
	-f lavfi -i "sine=f=440:r=44100:d=3" \
	-filter_complex "[0][1]amix=inputs=2,aformat=channel_layouts=stereo" \
	-c:a libmp3lame -b:a 128k music-44k-stereo-cbr128.mp3

# Onset clips: 0.25 s silence, 0.5 s of 1 kHz, 0.25 s silence (1.000 s).
onset() { # rate channels
	sox -n -r "$1" -c "$2" -b 16 "$t/onset-$1-$2.wav" synth 0.25 sine 0 vol 0 : synth 0.5 sine 1000 vol 0.5 : synth 0.25 sine 0 vol 0
}
onset 16000 1 && lame --quiet -b 32 "$t/onset-16000-1.wav" onset-16k-mono-cbr.mp3
onset 24000 2 && lame --quiet -V 5 "$t/onset-24000-2.wav" onset-24k-stereo-vbr.mp3
onset 32000 1 && lame --quiet -b 48 "$t/onset-32000-1.wav" onset-32k-mono-cbr.mp3
onset 44100 2 && lame --quiet -V 4 "$t/onset-44100-2.wav" onset-44k-stereo-vbr.mp3
onset 48000 2 && ffmpeg -loglevel error -y -i "$t/onset-48000-2.wav" -c:a libmp3lame -b:a 96k onset-48k-stereo-cbr.mp3
onset 22050 1 && lame --quiet -t -b 32 "$t/onset-22050-1.wav" onset-22k-mono-noxing.mp3
onset 44100 2 && lame --quiet -b 96 --resample 44.1 "$t/onset-44100-2.wav" "$t/onset-44k.mp3"
lame --quiet -p -b 96 --resample 44.1 -m s "$t/onset-44100-2.wav" onset-44k-stereo-crc.mp3 # CRC-protected, plain stereo

# MPEG-2 Layer III, 22.05 kHz mono VBR: the speech.
lame --quiet -V 6 -m m speech-22k.wav speech-22k-mono-vbr.mp3

# ID3v2.3 tag with embedded cover art (a small PNG) in front of the audio.
ffmpeg -loglevel error -y -f lavfi -i "color=c=red:s=64x64:d=1" -frames:v 1 "$t/cover.png"
ffmpeg -loglevel error -y -i "$t/onset-44k.mp3" -i "$t/cover.png" -map 0 -map 1 -c copy \
	-id3v2_version 3 -metadata title="Hold music" -metadata:s:v comment="Cover (front)" id3-cover.mp3

# Cut in the middle of a frame.
head -c 5000 "$t/onset-44k.mp3" > truncated.mp3

# MPEG-2.5 speech at 8 and 11.025 kHz, and ffmpeg's decoding of the 8 kHz
# one (μ-law) as a reference.
sox speech-22k.wav -r 8000 "$t/sp8k.wav"
lame --quiet -b 24 "$t/sp8k.wav" mpeg25-8k.mp3
ffmpeg -loglevel error -y -i mpeg25-8k.mp3 -f mulaw mpeg25-8k.ffmpeg.ulaw
sox speech-22k.wav -r 11025 "$t/sp11k.wav"
lame --quiet -b 32 "$t/sp11k.wav" mpeg25-11k.mp3

# Unsupported: MPEG-1 Layer II.
ffmpeg -loglevel error -y -i "$t/onset-48000-2.wav" -t 0.2 -c:a mp2 -b:a 64k layer2.mp2

# WAV: μ-law 8 kHz mono (ffmpeg's 92-byte header with a LIST chunk), μ-law
# 16 kHz stereo, 16-bit PCM 16 kHz stereo, and WAVE_FORMAT_EXTENSIBLE
# (three channels).
ffmpeg -loglevel error -y -i speech-22k.wav -ar 8000 -c:a pcm_mulaw mulaw-8k.wav
sox -n -r 16000 -c 2 -b 16 "$t/t16.wav" synth 0.25 sine 1000 vol 0.5
ffmpeg -loglevel error -y -i "$t/t16.wav" -c:a pcm_mulaw mulaw-16k-stereo.wav
cp "$t/t16.wav" pcm16-16k-stereo.wav
sox -n -r 12000 -c 3 -b 16 extensible-12k-3ch.wav synth 0.25 sine 1000 vol 0.5

# Every 16-bit sample, μ-law encoded by ffmpeg (Sun g711.c rounding).
python3 -c 'import struct,sys; sys.stdout.buffer.write(b"".join(struct.pack("<h", v) for v in range(-32768, 32768)))' > "$t/ramp.raw"
ffmpeg -loglevel error -y -f s16le -ar 8000 -ac 1 -i "$t/ramp.raw" -f mulaw ramp-ffmpeg.ulaw

printf 'This is a text file, not audio.\n' > not-audio.txt

# Streams that change format midway. Two tagged files, 0.5 s of 1 kHz at
# 44.1 kHz and 0.5 s of 500 Hz at 48 kHz, one after the other (as
# concatenated MP3s are): the rate changes and each file's delay and
# padding are trimmed by its own tag.
sox -n -r 44100 -c 1 -b 16 "$t/a.wav" synth 0.5 sine 1000 vol 0.5
sox -n -r 48000 -c 1 -b 16 "$t/b.wav" synth 0.5 sine 500 vol 0.5
lame --quiet -b 64 --resample 44.1 "$t/a.wav" "$t/a.mp3"
lame --quiet -b 64 --resample 48 "$t/b.wav" "$t/b.mp3"
cat "$t/a.mp3" "$t/b.mp3" > concat-44k-48k.mp3
# Mono, then stereo, then mono again at one rate, without tags: the
# channel mode switches from frame to frame.
sox -n -r 44100 -c 2 -b 16 "$t/s.wav" synth 0.5 sine 700 sine 1300 vol 0.5
lame --quiet -t -b 64 --resample 44.1 -m m "$t/a.wav" "$t/m1.mp3"
lame --quiet -t -b 96 --resample 44.1 -m s "$t/s.wav" "$t/s1.mp3"
cat "$t/m1.mp3" "$t/s1.mp3" "$t/m1.mp3" > mode-switch-44k.mp3

# One side-information byte of frame 20 of a 44.1 kHz stereo file
# corrupted: the high bits of part2_3_length of the first granule's left
# channel, which then overruns the main data.
sox -n -r 44100 -c 2 -b 16 "$t/c.wav" synth 1 sine 440 sine 660 vol 0.5
lame --quiet -t -b 128 --resample 44.1 -m s "$t/c.wav" sideinfo-clean.mp3
python3 - sideinfo-clean.mp3 sideinfo-corrupt.mp3 <<'PY'
import sys
b = bytearray(open(sys.argv[1], "rb").read())
pos = 0
for _ in range(20):  # 128 kb/s at 44.1 kHz: 417 bytes, 418 when padded
    pos += 417 + ((b[pos + 2] >> 1) & 1)
b[pos + 4 + 2] = 0xFF  # header, then the side information's third byte
open(sys.argv[2], "wb").write(b)
PY
