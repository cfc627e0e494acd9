package edge

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// ErrStoreLocked: the all-in-one's JetStream store directory is held by
// another process (another all-in-one edge on the same machine and user).
// Two NATS servers in one store would corrupt it, and a private empty store
// would serve an empty audio library, so Run stops with this error.
var ErrStoreLocked = errors.New("edge: NATS store dir in use by another process")

// DefaultStoreDir is where the all-in-one keeps its JetStream store (the
// audio library and the shared transcode cache) when Options.NATSStoreDir
// is empty: a directory "callcast" in the user's data directory, as the
// platform has it:
//
//   - Linux and other Unix systems: $XDG_DATA_HOME/callcast, or
//     $HOME/.local/share/callcast when XDG_DATA_HOME is unset or relative
//     (the XDG Base Directory specification);
//   - macOS: $HOME/Library/Application Support/callcast;
//   - Windows: %LocalAppData%\callcast.
//
// It survives reboots, unlike the temporary directory.
func DefaultStoreDir() (string, error) {
	var base string
	switch runtime.GOOS {
	case "windows":
		base = os.Getenv("LocalAppData")
		if base == "" {
			return "", errors.New("edge: %LocalAppData% is not set; set NATS_STORE_DIR")
		}
	case "darwin", "ios":
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("edge: %w; set NATS_STORE_DIR", err)
		}
		base = filepath.Join(home, "Library", "Application Support")
	default:
		if x := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(x) {
			base = x
			break
		}
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("edge: %w; set NATS_STORE_DIR", err)
		}
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "callcast"), nil
}

// lockFile is the file in a store directory that its holder locks and
// writes its process ID and executable into.
const lockFile = "callcast.lock"

// lockStoreDir creates dir if needed and claims it for the embedded NATS
// server's JetStream, which must not share it with another server. When
// another process holds it, the error wraps ErrStoreLocked and names that
// process. release unlocks; call it after the server has shut down.
func lockStoreDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("edge: nats store dir: %w", err)
	}
	f, err := lockDir(dir)
	if errors.Is(err, errLocked) {
		return nil, fmt.Errorf("%w: %s is held by %s; stop it, or set NATS_STORE_DIR to another directory",
			ErrStoreLocked, dir, holder(filepath.Join(dir, lockFile)))
	}
	if err != nil {
		return nil, fmt.Errorf("edge: nats store dir %s: %w", dir, err)
	}
	// Say who holds it, for the next process that finds it locked.
	exe, _ := os.Executable()
	if exe == "" && len(os.Args) > 0 {
		exe = os.Args[0]
	}
	if f.Truncate(0) == nil {
		_, _ = f.WriteAt([]byte(fmt.Sprintf("pid=%d\ncommand=%s\n", os.Getpid(), exe)), 0)
	}
	return func() { f.Close() }, nil
}

// holder describes the process that wrote the lock file at path.
func holder(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "another process"
	}
	var pid int
	var cmd string
	for _, line := range strings.Split(string(data), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "pid":
			pid, _ = strconv.Atoi(v)
		case "command":
			cmd = v
		}
	}
	switch {
	case pid > 0 && cmd != "":
		return fmt.Sprintf("pid %d (%s)", pid, cmd)
	case pid > 0:
		return fmt.Sprintf("pid %d", pid)
	}
	return "another process"
}

var errLocked = errors.New("locked by another process")
