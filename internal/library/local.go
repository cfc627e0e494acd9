package library

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// CheckName reports whether name is allowed as an audio name (see the
// package doc); the error wraps ErrBadName.
func CheckName(name string) error {
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
	switch clean := path.Clean(name); {
	case clean == ".":
		return fmt.Errorf("%w: %q names no file", ErrBadName, name)
	case !fs.ValidPath(clean):
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	return nil
}

// localDir opens audio files by name inside one directory. Anything that
// would leave the directory (.., an absolute path, a symlink pointing out)
// is refused by os.Root.
type localDir struct {
	root    *os.Root
	maxSize int64
}

func openLocalDir(dir string, maxSize int64) (*localDir, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("library: audio directory: %w", err)
	}
	return &localDir{root: root, maxSize: maxSize}, nil
}

func (d *localDir) Close() error { return d.root.Close() }

// open opens the named regular file for reading. The name must have passed
// CheckName.
func (d *localDir) open(name string) (*os.File, fs.FileInfo, error) {
	f, err := d.root.Open(path.Clean(name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		// os.Root reports names escaping the root (through symlinks too).
		return nil, nil, fmt.Errorf("%w: %q: %w", ErrBadName, name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("library: stat %q: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %q", ErrNotAFile, name)
	}
	if d.maxSize > 0 && st.Size() > d.maxSize {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %q is %d bytes, limit %d", ErrTooLarge, name, st.Size(), d.maxSize)
	}
	return f, st, nil
}

// fileHash is a local file's SHA-256 as of its size and modification time.
type fileHash struct {
	size  int64
	mtime int64 // UnixNano
	sum   [sha256.Size]byte
}

// localKey returns the cache key of an open local file, hashing it only if
// its size or modification time changed since it was last hashed.
func (l *Library) localKey(name string, f *os.File, st fs.FileInfo) (string, error) {
	size, mtime := st.Size(), st.ModTime().UnixNano()
	l.hashMu.Lock()
	h, ok := l.hashes[name]
	l.hashMu.Unlock()
	if ok && h.size == size && h.mtime == mtime {
		return cacheKey(h.sum[:]), nil
	}
	sha := sha256.New()
	if _, err := io.Copy(sha, io.NewSectionReader(f, 0, size)); err != nil {
		return "", fmt.Errorf("library: read %q: %w", name, err)
	}
	h = fileHash{size: size, mtime: mtime}
	sha.Sum(h.sum[:0])
	l.hashMu.Lock()
	if len(l.hashes) >= maxHashes {
		clear(l.hashes)
	}
	l.hashes[name] = h
	l.hashMu.Unlock()
	return cacheKey(h.sum[:]), nil
}
