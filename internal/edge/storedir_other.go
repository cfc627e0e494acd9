//go:build !unix && !windows

package edge

import (
	"os"
	"path/filepath"
)

// lockDir opens the lock file without locking it where flock is missing.
func lockDir(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
}
