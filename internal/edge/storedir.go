package edge

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
)

// lockStoreDir claims dir (default: callcast-nats under os.TempDir()) for
// the embedded NATS server's JetStream, which must not share it with
// another server. If another process holds it, lockStoreDir falls back to
// a new private directory. release unlocks, or removes the private
// directory; call it after the server has shut down.
func lockStoreDir(dir string, log *slog.Logger) (path string, release func(), err error) {
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "callcast-nats")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("edge: nats store dir: %w", err)
	}
	unlock, err := lockDir(dir)
	if err == nil {
		return dir, unlock, nil
	}
	if !errors.Is(err, errLocked) {
		return "", nil, fmt.Errorf("edge: nats store dir %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp("", "callcast-nats-")
	if err != nil {
		return "", nil, fmt.Errorf("edge: nats store dir: %w", err)
	}
	log.Warn("all-in-one: NATS store dir in use by another process; using a temporary one, removed at exit (set NATS_STORE_DIR to keep it)",
		"in_use", dir, "store_dir", tmp)
	return tmp, func() { os.RemoveAll(tmp) }, nil
}

var errLocked = errors.New("locked by another process")
