//go:build race

package e2e

// raceEnabled: the race detector slows the DSP code several times over, so
// real-time assertions (underruns) are made only in the plain test run,
// which .ci/run also does.
const raceEnabled = true
