package library

import (
	"io"
	"sync"

	"github.com/callcast/callcast/internal/audio"
)

// A fill is one transcode of an uncached source, run as fast as the CPU
// allows into memory and shared by every Stream that opens the same source
// meanwhile. Calls that start together on a new prompt thus decode it once,
// not once each, and the cache has it as soon as the decode ends instead of
// when the first (paced) playback does.
type fill struct {
	key string

	// Set before ready is closed.
	ready      chan struct{}
	info       audio.Info
	openErr    error // the source could not be opened
	streamOnly bool  // too long to hold in memory: each playback streams

	mu   sync.Mutex
	cond sync.Cond
	buf  []byte
	err  error // set at the end: io.EOF when clean
}

func newFill(key string) *fill {
	f := &fill{key: key, ready: make(chan struct{})}
	f.cond.L = &f.mu
	return f
}

// readAt copies what is decoded from off on, waiting for more while the
// decode goes on.
func (f *fill) readAt(p []byte, off int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for off >= len(f.buf) && f.err == nil {
		f.cond.Wait()
	}
	if off < len(f.buf) {
		return copy(p, f.buf[off:]), nil
	}
	return 0, f.err
}

func (f *fill) append(p []byte) {
	f.mu.Lock()
	f.buf = append(f.buf, p...)
	f.mu.Unlock()
	f.cond.Broadcast()
}

func (f *fill) finish(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
	f.cond.Broadcast()
}

// fillable reports whether a source's whole output may be held in memory
// while it plays: known to fit within MaxEntryBytes, by its recorded
// duration or, failing that, by its size (μ-law is at most 8 bytes per byte
// of the lowest-rate MP3).
func (l *Library) fillable(src *source, info audio.Info) bool {
	if d := info.Duration; d > 0 {
		return int64(d.Milliseconds())*(audio.SampleRate/1000) <= l.opts.MaxEntryBytes
	}
	return src.size*8 <= l.opts.MaxEntryBytes
}

// openFill returns a Stream reading the fill of src, starting one if none
// runs. It reports false when src is not to be filled (the caller streams
// it on its own); src is closed when it returns true.
func (l *Library) openFill(src *source) (*Stream, bool, error) {
	l.fillMu.Lock()
	if f := l.fills[src.key]; f != nil {
		l.fillMu.Unlock()
		<-f.ready
		switch {
		case f.openErr != nil:
			src.close()
			return nil, true, f.openErr
		case f.streamOnly:
			return nil, false, nil
		}
		src.close()
		l.joins.Add(1)
		return &Stream{info: f.info, fill: f}, true, nil
	}
	f := newFill(src.key)
	l.fills[src.key] = f
	l.fillMu.Unlock()
	forget := func() {
		l.fillMu.Lock()
		delete(l.fills, f.key)
		l.fillMu.Unlock()
	}

	l.misses.Add(1)
	s, err := l.transcode(src)
	if err != nil {
		f.openErr = err
		forget()
		close(f.ready)
		return nil, true, err
	}
	f.info = s.info
	if !l.fillable(src, s.info) {
		f.streamOnly = true
		forget()
		close(f.ready)
		return s, true, nil
	}
	close(f.ready)

	started := l.goBackground(func() {
		if l.fillStarting != nil {
			l.fillStarting()
		}
		// Reads of one 100 ms message, so that the sharers get their first
		// frames after a few MP3 frames, not after a whole buffer's worth.
		buf := make([]byte, 5*audio.FrameSize)
		var err error
		for err == nil && l.ctx.Err() == nil {
			var n int
			n, err = s.Read(buf)
			f.append(buf[:n])
		}
		if err == nil {
			err = l.ctx.Err()
		}
		// Close and forget before the fill ends: s.Read cached the output at
		// its clean end, so that a later Open finds the cache.
		s.Close()
		forget()
		f.finish(err)
	})
	if !started { // the library is closing
		forget()
		f.finish(io.ErrClosedPipe)
		s.Close()
	}
	return &Stream{info: f.info, fill: f}, true, nil
}
