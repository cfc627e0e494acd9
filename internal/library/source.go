package library

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"

	"github.com/nats-io/nats.go/jetstream"
)

// source is a resolved name: an open local file, or an object (fetched into
// a private temporary file by fetch).
type source struct {
	name string // cleaned
	key  string // cache key; "" when unknown
	f    *os.File
	size int64
	st   *stores // for an object
}

func cleanName(name string) string { return path.Clean(name) }

// resolve finds name: a local file if there is one, else an object.
func (l *Library) resolve(ctx context.Context, name string) (*source, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	clean := cleanName(name)
	if l.dir != nil {
		f, fi, err := l.dir.open(name)
		if err == nil {
			key, err := l.localKey(clean, f, fi)
			if err != nil {
				f.Close()
				return nil, err
			}
			return &source{name: clean, key: key, f: f, size: fi.Size()}, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	st := l.shared()
	if st == nil {
		if l.opts.JS == nil || l.noJetStream.Load() {
			return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
		}
		// Whether it is there cannot be known until the store is back.
		return nil, fmt.Errorf("%w: %q: the audio library cannot be reached", ErrUnavailable, name)
	}
	info, err := st.audio.obs.GetInfo(ctx, clean)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return nil, fmt.Errorf("%w: %q", ErrNotFound, name)
	case err != nil:
		return nil, fmt.Errorf("%w: %q: %w", ErrUnavailable, name, err)
	case int64(info.Size) > l.opts.MaxFileSize:
		return nil, fmt.Errorf("%w: %q is %d bytes, limit %d", ErrTooLarge, name, info.Size, l.opts.MaxFileSize)
	}
	return &source{name: clean, key: objectKey(info), size: int64(info.Size), st: st}, nil
}

// fetch makes an object's bytes local, so that transcoding them at the
// pace of a call does not hold a JetStream consumer open for minutes. The
// key becomes the hash of the bytes fetched.
func (l *Library) fetch(ctx context.Context, src *source) error {
	if src.f != nil {
		return nil
	}
	res, err := src.st.audio.obs.Get(ctx, src.name)
	if err != nil {
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return fmt.Errorf("%w: %q", ErrNotFound, src.name)
		}
		return fmt.Errorf("%w: get %q: %w", ErrUnavailable, src.name, err)
	}
	defer res.Close()
	sp, err := l.spool(res)
	if err != nil {
		if !errors.Is(err, ErrTooLarge) {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return fmt.Errorf("%q: %w", src.name, err)
	}
	src.f, src.size, src.key = sp.f, sp.size, cacheKey(sp.sum[:])
	return nil
}

// header returns a reader of the source's beginning (and the rest, as far
// as it is read), without fetching a whole object.
func (src *source) header(ctx context.Context) (io.ReadCloser, error) {
	if src.f != nil {
		return io.NopCloser(io.NewSectionReader(src.f, 0, src.size)), nil
	}
	res, err := src.st.audio.obs.Get(ctx, src.name)
	if err != nil {
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return nil, fmt.Errorf("%w: %q", ErrNotFound, src.name)
		}
		return nil, fmt.Errorf("%w: get %q: %w", ErrUnavailable, src.name, err)
	}
	return res, nil
}

func (src *source) close() error {
	if src.f == nil {
		return nil
	}
	return src.f.Close()
}

// spooled is a source copied into an unlinked temporary file.
type spooled struct {
	f    *os.File
	size int64
	sum  [sha256.Size]byte
}

// spool copies r into an unlinked temporary file, hashing it, and refuses
// more than MaxFileSize bytes.
func (l *Library) spool(r io.Reader) (*spooled, error) {
	f, err := os.CreateTemp(l.opts.TempDir, "callcast-audio-*")
	if err != nil {
		return nil, fmt.Errorf("library: spool: %w", err)
	}
	os.Remove(f.Name()) // the open file lives on until closed
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, l.opts.MaxFileSize+1))
	if err == nil && n > l.opts.MaxFileSize {
		err = fmt.Errorf("%w: over the %d byte limit", ErrTooLarge, l.opts.MaxFileSize)
	} else if err != nil {
		err = fmt.Errorf("library: read: %w", err)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	sp := &spooled{f: f, size: n}
	h.Sum(sp.sum[:0])
	return sp, nil
}
