//go:build !unix

package edge

// lockDir does not lock where flock is missing.
func lockDir(string) (unlock func(), err error) { return func() {}, nil }
