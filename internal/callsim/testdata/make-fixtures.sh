#!/bin/sh
# Makes the utterances tests have callsim say (barge-in, examples/parrot):
# apt-get install espeak-ng sox. Each is 16 kHz 16-bit mono WAV, speech from
# its first sample; callsim converts it with package audio, as it would a
# caller's recording.
set -eu
cd "$(dirname "$0")"
say() { # name seconds text
	espeak-ng -v en-us -s 160 -w "/tmp/$1.raw.wav" "$3"
	# speech from the first sample, padded or cut to exactly $2 s
	sox "/tmp/$1.raw.wav" -r 16000 -c 1 -b 16 "$1.wav" silence 1 0.01 0.5% pad 0 "$2" trim 0 "$2"
	rm -f "/tmp/$1.raw.wav"
}
say hello 2 "Hello parrot, can you hear me?"
say stop 1 "Stop right there."
