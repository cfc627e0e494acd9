package worker

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Errors from the audio library.
var (
	ErrBadName  = errors.New("worker: audio name not allowed")
	ErrNotFound = errors.New("worker: audio not found")
	ErrTooLarge = errors.New("worker: audio file too large")
	ErrNotAFile = errors.New("worker: audio is not a regular file")
)

// MaxNameLen bounds an audio name.
const MaxNameLen = 255

// library opens audio files by name inside one directory. Names are slash
// separated and relative; anything that would leave the directory (.., an
// absolute path, a symlink pointing out) is refused by os.Root.
type library struct {
	dir     string
	root    *os.Root
	maxSize int64
}

func openLibrary(dir string, maxSize int64) (*library, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("worker: audio directory: %w", err)
	}
	return &library{dir: dir, root: root, maxSize: maxSize}, nil
}

func (l *library) Close() error { return l.root.Close() }

// checkName rejects names that are not plain relative paths.
func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrBadName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrBadName, MaxNameLen)
	case strings.ContainsAny(name, "\x00\\"):
		return fmt.Errorf("%w: %q has a NUL or backslash", ErrBadName, name)
	case strings.HasPrefix(name, "/"):
		return fmt.Errorf("%w: %q is absolute", ErrBadName, name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return fmt.Errorf("%w: %q leaves the audio directory", ErrBadName, name)
		}
	}
	if !fs.ValidPath(path.Clean(name)) {
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	return nil
}

// Open opens the named audio file for reading.
func (l *library) Open(name string) (*os.File, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	f, err := l.root.Open(path.Clean(name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		// os.Root reports names escaping the root (through symlinks too).
		return nil, fmt.Errorf("%w: %q: %w", ErrBadName, name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("worker: stat %q: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: %q", ErrNotAFile, name)
	}
	if l.maxSize > 0 && st.Size() > l.maxSize {
		f.Close()
		return nil, fmt.Errorf("%w: %q is %d bytes, limit %d", ErrTooLarge, name, st.Size(), l.maxSize)
	}
	return f, nil
}
