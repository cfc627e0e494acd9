//go:build race

package audio

// raceEnabled reports whether the race detector is on: it slows decoding
// tenfold and changes what the heap holds, so the long-file test skips.
const raceEnabled = true
