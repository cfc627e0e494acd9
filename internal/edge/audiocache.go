package edge

import (
	"container/list"
	"encoding/base64"
	"path"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/callcast/callcast/internal/library"
)

// The edge's audio cache. A file playback is rendered by a worker, which
// sends its μ-law in 200 ms frames on .out; the edge keeps the frames of a
// complete playback (every byte from the first to the last mark, none lost
// on the bus, no decoding error) by the audio's name. A later playback of
// the same name — the call's own audio at start, or a callcast.play — is
// then played by the edge itself from those bytes, like a streamed
// playback whose audio has all arrived: the same pacer, marks, lead and
// events, with no worker and no bus hop before its first media message.
//
// Coherence: an entry is played for Config.AudioCacheTTL after it was
// filled, then dropped; the next playback of the name goes to a worker
// again, which opens the audio afresh (AUDIO_DIR or the library), and
// fills the cache anew. A change to the library's object of that name (an
// upload, a replacement, a deletion by an Object Store client), which the
// edge hears on library.AudioChanges, drops the entry at once, and any
// fill of it under way: new calls hear the new audio as soon as it is
// stored. What the TTL still bounds is a change the bus does not announce:
// a file changed in a worker's AUDIO_DIR, or an object removed with
// `worker library remove`. One playback per name fills at a time. Entries
// are bounded by their bytes, the least recently used dropped first.

// NoAudio, as Config.DefaultAudio or a call's customParameters.audio, plays
// nothing (worker.NoDefaultAudio).
const NoAudio = "none"

type audioCache struct {
	max int64
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*cacheEntry
	lru     list.List // of *cacheEntry, the most recently used first
	size    int64
	fills   map[string]*cacheFill // names being filled

	hits, misses, filled, forgotten prometheus.Counter
	bytes, count                    prometheus.Gauge
}

// cacheEntry is the whole μ-law of one audio, never written once filled:
// the calls playing it share it.
type cacheEntry struct {
	name       string
	ulaw       []byte
	durationMs int64 // as its worker reported it
	at         time.Time
	el         *list.Element
}

// cacheFill collects one playback's frames as they are relayed.
type cacheFill struct {
	name  string
	buf   []byte
	until time.Time // another playback may fill the name after this
	stale bool      // the audio changed since the fill began: commit keeps nothing (under mu)
}

// Entries are keyed by the name as the library finds it: path.Clean of
// the name asked for ("prompts//a.mp3" is "prompts/a.mp3"), the name of
// its object.

// fillLease bounds how long one playback holds the right to fill a name,
// beyond the audio's own length, should it never end (it always does).
const fillLease = time.Minute

// newAudioCache returns a cache of max bytes, or nil (no cache) for max ≤ 0.
func newAudioCache(max int64, ttl time.Duration, reg prometheus.Registerer) (*audioCache, error) {
	if max <= 0 {
		return nil, nil
	}
	c := &audioCache{
		max: max, ttl: ttl, now: time.Now,
		entries: make(map[string]*cacheEntry),
		fills:   make(map[string]*cacheFill),
		hits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callcast_edge_audio_cache_hits_total", Help: "File playbacks the edge played from its audio cache, without a worker.",
		}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callcast_edge_audio_cache_misses_total", Help: "File playbacks whose audio was not in the edge's audio cache (or had expired there): a worker rendered them.",
		}),
		filled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callcast_edge_audio_cache_fills_total", Help: "Audio stored in the edge's audio cache from a worker's complete playback.",
		}),
		forgotten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "callcast_edge_audio_cache_invalidations_total", Help: "Audio dropped from the edge's audio cache, or from a fill under way, because the library announced a change to it.",
		}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "callcast_edge_audio_cache_bytes", Help: "μ-law bytes held in the edge's audio cache.",
		}),
		count: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "callcast_edge_audio_cache_entries", Help: "Audio held in the edge's audio cache.",
		}),
	}
	for _, m := range []prometheus.Collector{c.hits, c.misses, c.filled, c.forgotten, c.bytes, c.count} {
		if err := reg.Register(m); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// get returns the entry for name while it is fresh, and counts a hit or a
// miss.
func (c *audioCache) get(name string) *cacheEntry {
	if c == nil {
		return nil
	}
	name = path.Clean(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[name]
	if e != nil && c.now().Sub(e.at) >= c.ttl {
		c.removeLocked(e)
		e = nil
	}
	if e == nil {
		c.misses.Inc()
		return nil
	}
	c.lru.MoveToFront(e.el)
	c.hits.Inc()
	return e
}

// claim returns a fill for name, or nil when there is no cache, the audio
// (durationMs long, 0 if not known) would not fit, it is cached and fresh,
// or another playback fills it now.
func (c *audioCache) claim(name string, durationMs int64) *cacheFill {
	if c == nil || durationMs*8 > c.max {
		return nil
	}
	name = path.Clean(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if e := c.entries[name]; e != nil && now.Sub(e.at) < c.ttl {
		return nil
	}
	if f := c.fills[name]; f != nil && now.Before(f.until) {
		return nil
	}
	f := &cacheFill{name: name, until: now.Add(fillLease + time.Duration(durationMs)*time.Millisecond)}
	if durationMs > 0 {
		f.buf = make([]byte, 0, durationMs*8)
	}
	c.fills[name] = f
	return f
}

// add appends a frame's payload (padded standard base64 of μ-law) and
// reports whether the fill goes on: false once it is bad or too large.
func (c *audioCache) add(f *cacheFill, payload string) bool {
	var err error
	f.buf, err = base64.StdEncoding.AppendDecode(f.buf, []byte(payload))
	return err == nil && int64(len(f.buf)) <= c.max
}

// release gives up f without storing it.
func (c *audioCache) release(f *cacheFill) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fills[f.name] == f {
		delete(c.fills, f.name)
	}
}

// commit stores f's audio, evicting the least recently used entries to
// make room.
func (c *audioCache) commit(f *cacheFill, durationMs int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fills[f.name] == f {
		delete(c.fills, f.name)
	}
	n := int64(len(f.buf))
	if f.stale || n == 0 || n > c.max {
		return
	}
	if old := c.entries[f.name]; old != nil {
		c.removeLocked(old)
	}
	for c.size+n > c.max {
		c.removeLocked(c.lru.Back().Value.(*cacheEntry))
	}
	e := &cacheEntry{name: f.name, ulaw: f.buf[:n:n], durationMs: durationMs, at: c.now()}
	e.el = c.lru.PushFront(e)
	c.entries[f.name] = e
	c.size += n
	c.filled.Inc()
	c.bytes.Set(float64(c.size))
	c.count.Set(float64(len(c.entries)))
}

// forget drops name's entry, and spoils any fill of it under way: the
// audio of that name changed.
func (c *audioCache) forget(name string) {
	if c == nil {
		return
	}
	name = path.Clean(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, f := c.entries[name], c.fills[name]
	if e == nil && f == nil {
		return
	}
	if e != nil {
		c.removeLocked(e)
	}
	if f != nil {
		f.stale = true
		delete(c.fills, name) // a playback may fill the new audio at once
	}
	c.forgotten.Inc()
}

func (c *audioCache) removeLocked(e *cacheEntry) {
	c.lru.Remove(e.el)
	delete(c.entries, e.name)
	c.size -= int64(len(e.ulaw))
	c.bytes.Set(float64(c.size))
	c.count.Set(float64(len(c.entries)))
}

// audioChanged drops from the cache the audio of a library object that
// was uploaded, replaced or deleted.
func (s *Server) audioChanged(m *nats.Msg) {
	if name, ok := library.ChangedName(m.Subject); ok {
		s.cache.forget(name)
	}
}

// newCachedSource returns a source holding the whole of e's audio, which
// it shares with the cache: nothing is ever written to it (it subscribes
// to nothing and its input has ended), the pacer only reads it.
func newCachedSource(e *cacheEntry, wake func()) *streamSource {
	s := newStreamSource(mulawFormat, 0, wake)
	s.out.b = e.ulaw
	s.inEnded, s.decoded = true, true
	return s
}
