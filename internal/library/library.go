// Package library finds audio by name and serves it as a phone call carries
// it: G.711 μ-law, 8000 Hz, mono, one byte a sample, audio.FrameSize (160)
// bytes = 20 ms. Each source is transcoded once; the μ-law is then reused
// from a cache.
//
// # Names
//
// A name is a slash-separated relative path ("prompts/hello.mp3") of at
// most MaxNameLen bytes; "..", absolute paths, backslashes and NUL are
// refused with ErrBadName. A name is looked up:
//
//  1. in the local audio directory (Options.Dir, AUDIO_DIR), through
//     os.Root, so that neither ".." nor a symlink can leave it;
//  2. if no such file exists there, as an object of that name in the
//     JetStream Object Store bucket AudioBucket ("callcast-audio"), which
//     producers fill with Put (or "worker upload FILE", or any Object Store
//     client) and every worker reads, with no shared disk.
//
// A local file therefore shadows an object of the same name.
//
// # Transcode cache
//
// The μ-law of a source is keyed by the SHA-256 of the source's bytes and
// audio.PipelineVersion: "<64 hex digits>.<version>". Two tiers hold it:
//
//   - in memory, per Library: least recently used entries are evicted to
//     keep the total under Options.MemoryBytes;
//   - shared, in the Object Store bucket CacheBucket ("callcast-cache"):
//     one object per key, holding the raw μ-law, so that audio transcoded by
//     one worker is ready for all, and for a restarted worker.
//
// Open serves a memory hit from memory and a shared hit by fetching the
// μ-law (then keeping it in memory); neither decodes anything. A miss
// streams the transcoder and keeps a copy of its output, which is cached
// only once the source has been transcoded to its clean end; a partial or
// failed transcode is never cached. A playback stopped early has the rest
// of its source transcoded in the background (a bounded number at a time)
// so that interrupted prompts get cached too.
//
// The hash of a local file is remembered by (name, size, modification time)
// and is not recomputed while those stay the same; an object's hash is the
// SHA-256 digest the Object Store records. The bytes transcoded on a miss
// are hashed again as they are read, and the result is cached only if they
// match the key.
//
// Without JetStream (Options.JS nil, or a server without it) the Library
// plays local files with the memory cache only.
package library

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/callcast/callcast/internal/audio"
)

// Object Store buckets.
const (
	// AudioBucket holds source audio (MP3 or WAV) by name.
	AudioBucket = "callcast-audio"
	// CacheBucket holds transcoded μ-law by cache key.
	CacheBucket = "callcast-cache"
)

// MaxNameLen bounds an audio name, in bytes.
const MaxNameLen = 255

// Errors returned by the Library; they wrap the cause. Errors of package
// audio (ErrBadInput, ErrUnsupported, ErrTruncated) pass through.
var (
	// ErrBadName: empty, too long, absolute, leaving the directory (by ".."
	// or a symlink), or holding a NUL or backslash.
	ErrBadName = errors.New("library: audio name not allowed")
	// ErrNotFound: neither a local file nor an object of that name.
	ErrNotFound = errors.New("library: audio not found")
	// ErrTooLarge: the source is over Options.MaxFileSize.
	ErrTooLarge = errors.New("library: audio too large")
	// ErrNotAFile: the name is a directory or another non-regular file.
	ErrNotAFile = errors.New("library: audio is not a regular file")
	// ErrNoStore: an operation of the Object Store without one (no
	// Options.JS, or a server without JetStream).
	ErrNoStore = errors.New("library: no object store")
	// ErrUnavailable: the Object Store is configured but cannot be reached
	// now (NATS or JetStream down, a timeout): whether a name exists is not
	// known. Worth trying again.
	ErrUnavailable = errors.New("library: object store unavailable")
	// ErrLibraryFull: Put of a source that does not fit in what is left of
	// Options.LibraryMaxBytes. Nothing was written.
	ErrLibraryFull = errors.New("library: audio library full")
)

// Options configures a Library. The zero value serves nothing: set Dir, JS
// or both.
type Options struct {
	// Dir is the local audio directory, looked up first. Empty: none.
	Dir string
	// MaxFileSize refuses larger sources, local or stored. Default 100 MiB.
	MaxFileSize int64
	// JS reaches the Object Store buckets AudioBucket and CacheBucket,
	// which are created when missing. Nil: local files and the memory cache
	// only.
	JS jetstream.JetStream
	// MemoryBytes bounds the memory cache (the μ-law held, in bytes).
	// Default 256 MiB; negative: no memory cache.
	MemoryBytes int64
	// MaxEntryBytes is the longest μ-law cached, in bytes; longer outputs
	// are streamed and not cached. Default 32 MiB (about 70 minutes).
	MaxEntryBytes int64
	// Replicas is the number of replicas of both buckets: AutoReplicas (0,
	// the default) is 3 when JetStream runs on a cluster of 3 or more
	// servers, else 1. Buckets that exist with fewer are raised at bind
	// (never lowered).
	Replicas int
	// LibraryMaxBytes bounds AudioBucket, in bytes as JetStream counts its
	// stream (sources plus about 60 bytes per 128 KiB chunk and a few
	// hundred per object). It is set as the stream's max_bytes, so that
	// JetStream refuses any writer past it, and Put refuses, before
	// writing, a source that would not fit (ErrLibraryFull). Default
	// DefaultLibraryMaxBytes; negative: unbounded.
	LibraryMaxBytes int64
	// CacheMaxBytes bounds CacheBucket likewise. To store an entry past
	// it, entries of older pipeline versions are evicted first, then the
	// least recently used ones; an entry that still does not fit is not
	// stored (playback never depends on it). Default DefaultCacheMaxBytes;
	// negative: unbounded.
	CacheMaxBytes int64
	// KeepBuckets uses buckets that exist as they are, with their own
	// bounds and replicas (for tools that manage the library beside the
	// workers, which own the settings). Missing buckets are still created
	// with the settings above.
	KeepBuckets bool
	// TouchInterval is how often at most this Library records that it
	// used a shared cache entry (see touch), which eviction goes by.
	// Default 5 minutes.
	TouchInterval time.Duration
	// TempDir holds sources fetched from the Object Store while they are
	// transcoded; the files are unlinked as soon as they are created.
	// Default os.TempDir().
	TempDir string
	// Logger receives the library's logs. Nil discards them.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = 100 << 20
	}
	if o.MemoryBytes == 0 {
		o.MemoryBytes = 256 << 20
	}
	if o.MemoryBytes < 0 {
		o.MemoryBytes = 0
	}
	if o.MaxEntryBytes <= 0 {
		o.MaxEntryBytes = 32 << 20
	}
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.LibraryMaxBytes == 0 {
		o.LibraryMaxBytes = DefaultLibraryMaxBytes
	}
	if o.CacheMaxBytes == 0 {
		o.CacheMaxBytes = DefaultCacheMaxBytes
	}
	if o.TouchInterval <= 0 {
		o.TouchInterval = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Stats counts what the Library did since New. Safe to read at any time.
type Stats struct {
	MemoryHits    int64 // Open or Probe served from memory
	SharedHits    int64 // Open or Probe served from the shared cache
	Misses        int64 // Open that transcoded its source
	Joins         int64 // Open that shared a transcode already in progress
	Evictions     int64 // memory entries evicted to make room
	MemoryBytes   int64 // μ-law held in memory now
	MemoryEntries int   // entries held in memory now
	Transcodes    int64 // transcoders started (each decodes at least a header)
	Stored        int64 // transcodes cached (memory, and shared when there is one)
	SharedStored  int64 // entries written to the shared cache
	// Shared cache entries this Library evicted to make room: of older
	// pipeline versions, and least recently used.
	SharedEvictionsOld int64
	SharedEvictionsLRU int64
}

// Background work bounds.
const (
	maxFinishers = 2                // playbacks stopped early being transcoded to the end
	maxUploads   = 4                // entries being written to the shared cache
	maxTouches   = 2                // uses of shared cache entries being recorded
	storeTimeout = 30 * time.Second // one write to the shared cache
	// cacheWriteTimeout bounds Put's write to the shared cache, which it
	// may skip: the upload has succeeded by then.
	cacheWriteTimeout = 10 * time.Second
	rebindInterval    = 10 * time.Second // between attempts to reach the buckets
	maxHashes         = 4096             // local files whose hash is remembered
)

// Library opens audio by name. Create it with New, release it with Close;
// its methods are safe for concurrent use.
type Library struct {
	opts Options
	log  *slog.Logger
	dir  *localDir // nil without opts.Dir
	mem  *memCache

	hashMu sync.Mutex
	hashes map[string]fileHash // by cleaned name

	stores      atomic.Pointer[stores] // nil until the buckets are bound
	noJetStream atomic.Bool            // the last bind found no JetStream on the server
	cacheBound  bool                   // the shared cache was bound (logged); under bindMu
	cacheWarned atomic.Bool            // that it could not be was logged
	shortWarned atomic.Bool            // that the buckets have fewer replicas than wanted was logged
	bindMu      sync.Mutex
	nextBind    time.Time
	binding     bool

	// ctx is the Library's lifetime, for its background work; cancelled by
	// Close, which then waits for bg.
	ctx       context.Context
	cancel    context.CancelFunc
	bgMu      sync.Mutex
	closed    bool
	bg        sync.WaitGroup
	finishers chan struct{}
	uploads   chan struct{}
	pending   atomic.Int64 // bytes of transcodes being copied for the cache
	touchers  chan struct{}
	touched   touches
	evictMu   sync.Mutex // one eviction at a time

	sharedEvictions [2]atomic.Int64 // by evictOld, evictLRU

	fillMu sync.Mutex
	fills  map[string]*fill // transcodes in progress, by cache key
	// fillStarting, when set (by tests), runs as a fill's decode begins.
	fillStarting func()

	memHits, sharedHits, misses, joins, transcodes, stored, sharedStored atomic.Int64
}

// New opens the library. It fails if Dir is set but cannot be opened. With
// JS set it binds (creating them if needed) the Object Store buckets within
// ctx; if JetStream cannot be reached it logs a warning, works with local
// files meanwhile, and tries again in the background when audio is
// requested.
func New(ctx context.Context, o Options) (*Library, error) {
	o.setDefaults()
	l := &Library{
		opts:      o,
		log:       o.Logger,
		mem:       newMemCache(o.MemoryBytes),
		hashes:    make(map[string]fileHash),
		fills:     make(map[string]*fill),
		finishers: make(chan struct{}, maxFinishers),
		uploads:   make(chan struct{}, maxUploads),
		touchers:  make(chan struct{}, maxTouches),
	}
	if o.Dir != "" {
		d, err := openLocalDir(o.Dir, o.MaxFileSize)
		if err != nil {
			return nil, err
		}
		l.dir = d
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	if o.JS != nil {
		_ = l.bind(ctx)
	}
	return l, nil
}

// Close stops background work (transcodes finishing, shared-cache writes)
// and waits for it, then closes the audio directory.
func (l *Library) Close() error {
	l.bgMu.Lock()
	l.closed = true
	l.bgMu.Unlock()
	l.cancel()
	l.bg.Wait()
	if l.dir != nil {
		return l.dir.Close()
	}
	return nil
}

// Stats returns the counters.
func (l *Library) Stats() Stats {
	bytes, entries, evictions := l.mem.stats()
	return Stats{
		MemoryHits:    l.memHits.Load(),
		SharedHits:    l.sharedHits.Load(),
		Misses:        l.misses.Load(),
		Joins:         l.joins.Load(),
		Evictions:     evictions,
		MemoryBytes:   bytes,
		MemoryEntries: entries,
		Transcodes:    l.transcodes.Load(),
		Stored:        l.stored.Load(),
		SharedStored:  l.sharedStored.Load(),

		SharedEvictionsOld: l.sharedEvictions[evictOld].Load(),
		SharedEvictionsLRU: l.sharedEvictions[evictLRU].Load(),
	}
}

// Shared reports whether the Object Store buckets are reachable.
func (l *Library) Shared() bool { return l.stores.Load() != nil }

// goBackground runs f in a goroutine that Close waits for, and reports
// false, not running f, once Close has begun.
func (l *Library) goBackground(f func()) bool {
	l.bgMu.Lock()
	defer l.bgMu.Unlock()
	if l.closed {
		return false
	}
	l.bg.Add(1)
	go func() {
		defer l.bg.Done()
		f()
	}()
	return true
}

// Open returns the named audio as μ-law (see the package doc for how names
// are resolved and what is cached). ctx bounds opening it, including any
// fetch from the Object Store; reading the Stream afterwards is not bound
// to ctx. The caller must Close the Stream.
func (l *Library) Open(ctx context.Context, name string) (*Stream, error) {
	src, err := l.resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	if src.key != "" {
		if e := l.mem.get(src.key); e != nil {
			src.close()
			l.memHits.Add(1)
			l.touch(src.key)
			return newCachedStream(e), nil
		}
		if e := l.fetchShared(ctx, src.key); e != nil {
			src.close()
			l.sharedHits.Add(1)
			l.mem.put(e)
			l.touch(src.key)
			return newCachedStream(e), nil
		}
	}
	if err := l.fetch(ctx, src); err != nil {
		src.close()
		return nil, err
	}
	if src.key != "" && (l.opts.MemoryBytes > 0 || l.shared() != nil) {
		if s, ok, err := l.openFill(src); ok {
			return s, err
		}
	}
	l.misses.Add(1)
	return l.transcode(src)
}

// Probe describes the named audio without transcoding it when it is
// cached, and by reading only its header otherwise. It refuses what Open
// would refuse at open time.
func (l *Library) Probe(ctx context.Context, name string) (audio.Info, error) {
	src, err := l.resolve(ctx, name)
	if err != nil {
		return audio.Info{}, err
	}
	defer src.close()
	if src.key != "" {
		if e := l.mem.get(src.key); e != nil {
			l.memHits.Add(1)
			return e.info, nil
		}
		if info, ok := l.probeShared(ctx, src.key); ok {
			l.sharedHits.Add(1)
			return info, nil
		}
	}
	r, err := src.header(ctx)
	if err != nil {
		return audio.Info{}, err
	}
	defer r.Close()
	l.transcodes.Add(1)
	tr, err := audio.NewTranscoder(r, audio.Options{})
	if err != nil {
		return audio.Info{}, fmt.Errorf("%q: %w", src.name, err)
	}
	return tr.Info(), nil
}

// cacheKey is the cache key of a source with this SHA-256.
func cacheKey(sum []byte) string {
	return fmt.Sprintf("%x.%s", sum, audio.PipelineVersion)
}
