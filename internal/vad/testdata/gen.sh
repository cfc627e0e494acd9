#!/bin/sh
# Regenerates the VAD fixtures in this directory. Tests never run this: the
# outputs are committed. Needs espeak-ng and sox. Every output is raw
# 8000 Hz G.711 μ-law, one byte a sample, no header.
#
#   speech/NN-VOICE.ulaw  one utterance each, clean, silence trimmed;
#                         speech/index.txt says who says what.
#   noise/{white,pink,brown}.ulaw   30 s of sox noise
#   noise/hum50.ulaw, hum60.ulaw    10 s of mains hum with harmonics
#   music/hold.ulaw       16 s of synthesised hold music (pad, bass,
#                         plucked arpeggio), loops seamlessly
#   music/strings.ulaw    16 s of slow melody with tremolo over a pad
#
# Levels do not matter: the tests measure and rescale everything.
set -eu
cd "$(dirname "$0")"
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p speech noise music

# Speech: several voices, rates and pitches, short answers and sentences.
: >speech/index.txt
i=0
say() { # voice speed pitch text
	i=$((i + 1))
	name=$(printf '%02d-%s' "$i" "$(echo "$1" | tr '+' '-')")
	espeak-ng -v "$1" -s "$2" -p "$3" -w "$t/s.wav" "$4"
	sox -R "$t/s.wav" -r 8000 -e mu-law -t raw "speech/$name.ulaw" \
		silence 1 0.005 0.1% reverse silence 1 0.005 0.1% reverse
	printf '%s\t%s\t%s\t%s\t%s\n' "$name.ulaw" "$1" "$2" "$3" "$4" >>speech/index.txt
}
say en-us 175 50 "Yes."
say en-us 175 50 "I would like to check the status of my order."
say en-us 150 40 "Can you repeat that, please?"
say en-gb 175 50 "No, thank you."
say en-gb 190 60 "My account number is four five seven two."
say en-gb 160 45 "I'd like to speak to someone about my bill."
say en-us+f2 175 60 "Hello?"
say en-us+f2 170 65 "I'm calling about the appointment on Tuesday."
say en-us+f4 180 70 "Sorry, I didn't catch that."
say en-gb-scotland 170 45 "Aye, that's right."
say en-gb-scotland 160 40 "Could you send me the details by email?"
say en-029 175 55 "Operator."
say en-029 170 50 "Where is the nearest store to me?"
say en-gb-x-rp+f3 165 70 "Transfer me to billing, please."
say en-gb-x-rp+m3 180 35 "What time do you close on Saturdays?"
say en-us+m7 200 30 "Cancel my subscription."
say en-us+m7 140 30 "Hold on a second."
say en-gb+f5 175 75 "That's perfect, thanks."
say en-us+klatt 175 50 "Stop."
say en-us+klatt 160 50 "Fine, go ahead and book it for three o'clock."
say en-gb-x-gbclan 170 50 "Is anybody there?"
say en-gb-x-gbcwmd 175 55 "I have a question about my delivery."
say en-us+whisperf 160 60 "Okay."
say en-us+f1 190 80 "Please call me back tomorrow morning."

# Noise: 30 s of each colour.
for c in white pink brown; do
	sox -R -r 8000 -n -e mu-law -t raw "noise/$c.ulaw" synth 30 "${c}noise" vol 0.1
done
# Mains hum: the fundamental and its first harmonics, as a buzz.
sox -R -R -r 8000 -c 4 -n -e mu-law -t raw noise/hum50.ulaw synth 10 sine 50 sine 100 sine 150 sine 250 remix - vol 0.2
sox -R -R -r 8000 -c 4 -n -e mu-law -t raw noise/hum60.ulaw synth 10 sine 60 sine 120 sine 180 sine 300 remix - vol 0.2

# Hold music (made at 44.1 kHz: sox plucks only there), 120 bpm, C Am F G, 4 s each.
chord() { # seconds notes... (a pad of triangle waves)
	d=$1
	shift
	sox -R -r 44100 -c $# -n "$t/pad-$1.wav" synth "$d" $(for n in "$@"; do printf 'triangle %s ' "$n"; done) \
		remix - fade t 0.3 "$d" 0.5 vol 0.5
}
chord 4 C4 E4 G4
chord 4 A3 C4 E4
chord 4 F3 A3 C4
chord 4 G3 B3 D4
sox -R -R "$t/pad-C4.wav" "$t/pad-A3.wav" "$t/pad-F3.wav" "$t/pad-G3.wav" "$t/pad.wav" chorus 0.6 0.9 50 0.4 0.25 2 -t
arp() { # four notes, repeated for a bar of 2 s twice
	for _ in 1 2 3 4; do
		for n in "$@"; do printf 'synth 0.25 pluck %s : ' "$n"; done
	done
}
# shellcheck disable=SC2046
sox -R -R -r 44100 -n "$t/arp.wav" $(arp C5 E5 G5 E5) $(arp A4 C5 E5 C5) $(arp F4 A4 C5 A4) $(arp G4 B4 D5 B4) synth 0.001 sine 0 vol 0
sox -R -R -r 44100 -n "$t/bass.wav" \
	synth 1 sine C3 : synth 1 sine C3 : synth 1 sine C3 : synth 1 sine C3 : \
	synth 1 sine A2 : synth 1 sine A2 : synth 1 sine A2 : synth 1 sine A2 : \
	synth 1 sine F2 : synth 1 sine F2 : synth 1 sine F2 : synth 1 sine F2 : \
	synth 1 sine G2 : synth 1 sine G2 : synth 1 sine G2 : synth 1 sine G2 fade t 0.02 1 0.3
sox -R -R -m -v 0.3 "$t/pad.wav" -v 0.2 "$t/arp.wav" -v 0.25 "$t/bass.wav" "$t/hold.wav" gain -6 reverb 40 trim 0 16 gain -n -3
sox -R -R "$t/hold.wav" -r 8000 -e mu-law -t raw music/hold.ulaw

# Strings: a slow melody with tremolo, a pad under it.
mel=""
for n in E5 D5 C5 D5 E5 E5 E5 - D5 D5 D5 - E5 G5 G5 -; do
	if [ "$n" = - ]; then
		mel="$mel synth 1 sine 0 vol 0 :"
	else
		mel="$mel synth 1 sine $n tremolo 6 20 fade t 0.1 1 0.2 :"
	fi
done
# shellcheck disable=SC2086
sox -R -R -r 44100 -n "$t/mel.wav" $mel synth 0.001 sine 0 vol 0
sox -R -R -m -v 0.4 "$t/mel.wav" -v 0.4 "$t/pad.wav" "$t/strings.wav" gain -6 reverb 60 trim 0 16 gain -n -3
sox -R -R "$t/strings.wav" -r 8000 -e mu-law -t raw music/strings.ulaw
