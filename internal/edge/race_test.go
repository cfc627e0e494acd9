//go:build race

package edge

// raceEnabled: the race detector allocates, so allocation counts are
// checked in the plain test run only (.ci/run does both).
const raceEnabled = true
