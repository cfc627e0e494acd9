package library

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"sync/atomic"
	"time"

	"github.com/callcast/callcast/internal/audio"
)

// A Stream is one playback of a named audio: G.711 μ-law, 8000 Hz, mono,
// one byte a sample. A Stream is not safe for concurrent use.
type Stream struct {
	info   audio.Info
	cached bool
	mem    bytes.Reader // a cached Stream's μ-law
	fill   *fill        // a Stream sharing a transcode in progress
	off    int          // how far it has read the fill

	lib    *Library
	src    *source
	hr     *hashReader
	tr     *audio.Transcoder
	tee    *tee // nil: not caching
	done   bool // the transcoder has ended
	closed bool
}

func newCachedStream(e *entry) *Stream {
	s := &Stream{info: e.info, cached: true}
	s.mem.Reset(e.data)
	return s
}

// Info describes the source. A cached Stream's Duration is its exact
// length; a transcoded one's is what the source records, or 0.
func (s *Stream) Info() audio.Info { return s.info }

// Cached reports whether the Stream is served from the cache, with no
// decoding.
func (s *Stream) Cached() bool { return s.cached }

// Read reads μ-law. At the end it returns io.EOF or, after all decodable
// audio of a damaged source, an error of package audio.
func (s *Stream) Read(p []byte) (int, error) {
	if s.cached {
		return s.mem.Read(p)
	}
	if s.fill != nil {
		n, err := s.fill.readAt(p, s.off)
		s.off += n
		return n, err
	}
	n, err := s.tr.Read(p)
	if s.tee != nil && n > 0 {
		s.tee.Write(p[:n])
	}
	if err != nil && !s.done {
		s.end(err)
	}
	return n, err
}

// end caches the output of a transcode that reached its clean end, from
// unchanged source bytes.
func (s *Stream) end(err error) {
	s.done = true
	t := s.tee
	s.tee = nil
	if t == nil {
		return
	}
	defer t.release()
	if err != io.EOF || !t.keep || len(t.buf) == 0 {
		return
	}
	// The transcoder may stop short of the source's end (trailing tags):
	// hash the rest too.
	if _, err := io.Copy(io.Discard, s.hr); err != nil {
		return
	}
	if key := cacheKey(s.hr.h.Sum(nil)); key != s.src.key {
		s.lib.log.Info("audio changed while playing; not cached", "audio", s.src.name)
		return
	}
	s.lib.store(s.src.key, t.buf, s.info)
}

// Close ends the Stream. A transcode not read to its end is finished in
// the background, to be cached, when a background slot is free.
func (s *Stream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if s.cached || s.fill != nil {
		return nil
	}
	if !s.done && s.tee != nil && s.finishLater() {
		return nil
	}
	if s.tee != nil {
		s.tee.drop()
		s.tee = nil
	}
	return s.src.close()
}

// finishLater transcodes the rest of s in the background, reporting false
// when no slot is free.
func (s *Stream) finishLater() bool {
	l := s.lib
	select {
	case l.finishers <- struct{}{}:
	default:
		return false
	}
	ok := l.goBackground(func() {
		defer func() { <-l.finishers }()
		defer s.src.close()
		buf := make([]byte, 8*1024)
		for !s.done {
			if l.ctx.Err() != nil {
				s.tee.drop()
				s.tee = nil
				return
			}
			if _, err := s.Read(buf); err != nil {
				break
			}
		}
	})
	if !ok {
		<-l.finishers
	}
	return ok
}

// tee keeps a copy of a transcode's output, for the cache, as long as it
// stays within max bytes and the library's budget for copies in progress.
type tee struct {
	buf     []byte
	keep    bool
	max     int64
	pending *atomic.Int64 // bytes held by all tees
	budget  int64
	held    int64 // bytes counted in pending
}

// newTee returns a tee for a source described by info (whose Duration,
// when known, sizes the first allocation, up to 1 MiB).
func (l *Library) newTee(info audio.Info) *tee {
	t := &tee{keep: true, max: l.opts.MaxEntryBytes, pending: &l.pending, budget: max(l.opts.MemoryBytes, l.opts.MaxEntryBytes)}
	size := int64(64 << 10)
	if d := info.Duration; d > 0 {
		want := int64(d/time.Millisecond)*(audio.SampleRate/1000) + 4096
		if want > t.max {
			t.keep = false
			return t
		}
		size = min(want, 1<<20)
	}
	t.buf = make([]byte, 0, size)
	return t
}

func (t *tee) Write(p []byte) (int, error) {
	if !t.keep {
		return len(p), nil
	}
	n := int64(len(p))
	if int64(len(t.buf))+n > t.max {
		t.drop()
		return len(p), nil
	}
	if t.pending.Add(n) > t.budget {
		t.pending.Add(-n)
		t.drop()
		return len(p), nil
	}
	t.held += n
	t.buf = append(t.buf, p...)
	return len(p), nil
}

// drop stops keeping a copy and frees it.
func (t *tee) drop() {
	t.keep = false
	t.buf = nil
	t.release()
}

// release gives back the bytes counted against the budget; buf, if kept,
// now belongs to the caller.
func (t *tee) release() {
	t.pending.Add(-t.held)
	t.held = 0
}

// hashReader hashes what is read through it.
type hashReader struct {
	r io.Reader
	h hash.Hash
}

func newHashReader(r io.Reader) *hashReader { return &hashReader{r: r, h: sha256.New()} }

func (h *hashReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.h.Write(p[:n])
	return n, err
}

// transcode starts transcoding a source that was not cached.
func (l *Library) transcode(src *source) (*Stream, error) {
	hr := newHashReader(io.NewSectionReader(src.f, 0, src.size))
	l.transcodes.Add(1)
	tr, err := audio.NewTranscoder(hr, audio.Options{})
	if err != nil {
		src.close()
		return nil, fmt.Errorf("%q: %w", src.name, err)
	}
	s := &Stream{info: tr.Info(), lib: l, src: src, hr: hr, tr: tr}
	if src.key != "" && (l.opts.MemoryBytes > 0 || l.shared() != nil) {
		s.tee = l.newTee(s.info)
	}
	return s, nil
}
