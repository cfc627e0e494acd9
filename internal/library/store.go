package library

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callcast/callcast/internal/audio"
)

// stores are the bound Object Store buckets.
type stores struct {
	audio *bucket // AudioBucket
	// cache is CacheBucket, or nil when it could not be bound (the audio
	// library works without it; binding it is tried again).
	cache *bucket
}

// short reports whether a bucket has fewer replicas than AutoReplicas
// wants, for want of servers when it was bound.
func (st *stores) short() bool {
	return st.audio.short || st.cache != nil && st.cache.short
}

// Metadata of a CacheBucket object: the source's format.
const (
	metaFormat     = "format"
	metaSampleRate = "sample-rate"
	metaChannels   = "channels"
	metaPipeline   = "pipeline"
	// An AudioBucket object's exact duration, in milliseconds (with the
	// format fields above), recorded by Put.
	metaDurationMs = "duration-ms"
)

// bind binds the buckets, creating them when missing, and applies the
// bounds and replicas of Options to them (see bindBucket).
func (l *Library) bind(ctx context.Context) error {
	st, err := l.bindStores(ctx)
	l.bindMu.Lock()
	defer l.bindMu.Unlock()
	l.binding = false
	if err != nil {
		l.noJetStream.Store(l.noJetStreamHere(err))
		if l.nextBind.IsZero() {
			l.log.Warn("audio library: JetStream Object Store unavailable; playing local files with a memory cache, retrying", "err", err)
		} else {
			l.log.Debug("audio library: JetStream Object Store still unavailable", "err", err)
		}
		l.nextBind = time.Now().Add(rebindInterval)
		return err
	}
	l.noJetStream.Store(false)
	if st.short() {
		// Bound again later, which raises the replicas once the cluster's
		// servers have joined.
		l.nextBind = time.Now().Add(rebindInterval)
		if l.shortWarned.CompareAndSwap(false, true) {
			l.log.Warn("audio library: the cluster cannot place 3 replicas yet; the buckets have fewer, raised when it can")
		}
	}
	if st.cache == nil {
		l.nextBind = time.Now().Add(rebindInterval)
		if old := l.stores.Load(); old != nil && old.cache != nil {
			st.cache = old.cache // keep what worked
		}
	}
	first := l.stores.Load() == nil
	l.stores.Store(st)
	if first || st.cache != nil && !l.cacheBound {
		l.cacheBound = st.cache != nil
		var cacheMax int64
		if st.cache != nil {
			cacheMax = st.cache.max
		}
		l.log.Info("audio library: using JetStream Object Store", "audio_bucket", AudioBucket, "cache_bucket", CacheBucket,
			"library_max_bytes", st.audio.max, "shared_cache", st.cache != nil, "cache_max_bytes", cacheMax)
	}
	return nil
}

func (l *Library) bindStores(ctx context.Context) (*stores, error) {
	a, err := bindBucket(ctx, l.opts.JS, bucketSpec{name: AudioBucket, desc: "callcast: source audio by name",
		maxBytes: l.opts.LibraryMaxBytes, replicas: l.opts.Replicas, keep: l.opts.KeepBuckets}, l.log)
	if err != nil {
		return nil, err
	}
	c, err := bindBucket(ctx, l.opts.JS, bucketSpec{name: CacheBucket,
		desc:     "callcast: transcoded G.711 μ-law 8 kHz mono, by source SHA-256 and pipeline version",
		maxBytes: l.opts.CacheMaxBytes, replicas: l.opts.Replicas, keep: l.opts.KeepBuckets}, l.log)
	if err != nil {
		// The library plays without a shared cache meanwhile.
		if l.cacheWarned.CompareAndSwap(false, true) {
			l.log.Warn("audio library: shared transcode cache unavailable; caching in memory only, retrying", "err", err)
		} else {
			l.log.Debug("audio library: shared transcode cache still unavailable", "err", err)
		}
		c = nil
	}
	return &stores{audio: a, cache: c}, nil
}

// noJetStreamHere reports whether a failed bind failed because the
// server has no JetStream, rather than because it could not be reached.
func (l *Library) noJetStreamHere(err error) bool {
	if jetStreamDisabled(err) {
		return true
	}
	nc := l.opts.JS.Conn()
	if !errors.Is(err, nats.ErrNoResponders) || !nc.IsConnected() {
		return false
	}
	js, _ := nc.ConnectedServerJetStream()
	return !js
}

// Bind binds the Object Store buckets now, if they are not bound yet, and
// returns why it could not: an error wrapping ErrNoStore without
// Options.JS or when the server has no JetStream, else ErrUnavailable.
func (l *Library) Bind(ctx context.Context) error {
	_, err := l.requireStores(ctx)
	return err
}

// requireStores returns the bound buckets, binding them now if needed.
func (l *Library) requireStores(ctx context.Context) (*stores, error) {
	if st := l.stores.Load(); st != nil {
		l.shared() // which raises short replicas, now and then
		return st, nil
	}
	if l.opts.JS == nil {
		return nil, fmt.Errorf("%w: no JetStream configured", ErrNoStore)
	}
	l.bindMu.Lock()
	l.binding = true
	l.bindMu.Unlock()
	if err := l.bind(ctx); err != nil {
		if l.noJetStream.Load() {
			return nil, fmt.Errorf("%w: %w", ErrNoStore, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return l.stores.Load(), nil
}

// shared returns the bound buckets, or nil; while unbound (or bound
// without the cache, or with fewer replicas than wanted) it starts, at
// most every rebindInterval, a background attempt to bind them.
func (l *Library) shared() *stores {
	st := l.stores.Load()
	if st != nil && st.cache != nil && !st.short() || l.opts.JS == nil {
		return st
	}
	l.bindMu.Lock()
	defer l.bindMu.Unlock()
	if l.binding || time.Now().Before(l.nextBind) || l.ctx.Err() != nil {
		return st
	}
	l.binding = l.goBackground(func() {
		ctx, cancel := context.WithTimeout(l.ctx, storeTimeout)
		defer cancel()
		_ = l.bind(ctx)
	})
	return st
}

// objectKey is the cache key of an object, from the digest the Object
// Store recorded; "" if there is none.
func objectKey(info *jetstream.ObjectInfo) string {
	if info.Digest == "" {
		return ""
	}
	sum, err := jetstream.DecodeObjectDigest(info.Digest)
	if err != nil || len(sum) != 32 {
		return ""
	}
	return cacheKey(sum)
}

// fetchShared returns the shared cache's entry for key, or nil when it has
// none or cannot be reached.
func (l *Library) fetchShared(ctx context.Context, key string) *entry {
	st := l.shared()
	if st == nil || st.cache == nil {
		return nil
	}
	res, err := st.cache.obs.Get(ctx, key)
	if err != nil {
		if !errors.Is(err, jetstream.ErrObjectNotFound) {
			l.log.Warn("shared cache read failed", "key", key, "err", err)
		}
		return nil
	}
	defer res.Close()
	info, err := res.Info()
	if err != nil || info.Size == 0 || info.Size > uint64(l.opts.MaxEntryBytes) {
		return nil
	}
	data := make([]byte, info.Size)
	if _, err = io.ReadFull(res, data); err == nil {
		// The digest is checked when the end is read.
		var n int
		if n, err = res.Read(make([]byte, 1)); n > 0 {
			err = errors.New("longer than recorded")
		} else if err == io.EOF {
			err = nil
		}
	}
	if err != nil {
		l.log.Warn("shared cache read failed", "key", key, "err", err)
		return nil
	}
	return newEntry(key, data, infoFromMeta(info.Metadata))
}

// probeShared describes the shared cache's entry for key from its metadata,
// without fetching it.
func (l *Library) probeShared(ctx context.Context, key string) (audio.Info, bool) {
	st := l.shared()
	if st == nil || st.cache == nil {
		return audio.Info{}, false
	}
	info, err := st.cache.obs.GetInfo(ctx, key)
	if err != nil {
		if !errors.Is(err, jetstream.ErrObjectNotFound) {
			l.log.Warn("shared cache read failed", "key", key, "err", err)
		}
		return audio.Info{}, false
	}
	if info.Size == 0 || info.Size > uint64(l.opts.MaxEntryBytes) {
		return audio.Info{}, false
	}
	ai := infoFromMeta(info.Metadata)
	ai.Duration = time.Duration(info.Size) * time.Second / audio.SampleRate
	return ai, true
}

func infoFromMeta(m map[string]string) audio.Info {
	rate, _ := strconv.Atoi(m[metaSampleRate])
	ch, _ := strconv.Atoi(m[metaChannels])
	return audio.Info{Format: m[metaFormat], SampleRate: rate, Channels: ch}
}

func metaFromInfo(info audio.Info) map[string]string {
	return map[string]string{
		metaFormat:     info.Format,
		metaSampleRate: strconv.Itoa(info.SampleRate),
		metaChannels:   strconv.Itoa(info.Channels),
		metaPipeline:   audio.PipelineVersion,
	}
}

// store caches a completed transcode: in memory now, and in the shared
// cache in the background (skipped when maxUploads writes are under way;
// another worker, or the next miss, will write it).
func (l *Library) store(key string, data []byte, info audio.Info) {
	e := newEntry(key, data, info)
	l.mem.put(e)
	l.stored.Add(1)
	st := l.shared()
	if st == nil || st.cache == nil {
		return
	}
	select {
	case l.uploads <- struct{}{}:
	default:
		l.log.Debug("shared cache writes busy; not storing", "key", key)
		return
	}
	ok := l.goBackground(func() {
		defer func() { <-l.uploads }()
		ctx, cancel := context.WithTimeout(l.ctx, storeTimeout)
		defer cancel()
		if _, err := l.putShared(ctx, st, e); err != nil {
			l.log.Warn("shared cache write failed", "key", key, "err", err)
		}
	})
	if !ok {
		<-l.uploads
	}
}

// putShared writes e to the shared cache unless it is there already,
// evicting entries to make room under Options.CacheMaxBytes. It reports
// false, with no error, when e cannot fit.
func (l *Library) putShared(ctx context.Context, st *stores, e *entry) (bool, error) {
	if st.cache == nil {
		return false, nil
	}
	if _, err := st.cache.obs.GetInfo(ctx, e.key); err == nil {
		return true, nil
	} else if !errors.Is(err, jetstream.ErrObjectNotFound) {
		return false, err
	}
	meta := metaFromInfo(e.info)
	if ok, err := l.makeRoom(ctx, st.cache, storedSize(CacheBucket, e.key, int64(len(e.data)), meta)); !ok || err != nil {
		if err == nil {
			l.log.Debug("shared cache: no room for an entry", "key", e.key, "size", len(e.data), "cache_max_bytes", st.cache.max)
		}
		return false, err
	}
	_, err := st.cache.obs.Put(ctx, jetstream.ObjectMeta{Name: e.key, Metadata: meta}, bytes.NewReader(e.data))
	if err != nil {
		return false, err
	}
	l.sharedStored.Add(1)
	return true, nil
}

// Object describes an object of the audio library (AudioBucket).
type Object struct {
	Name   string // the object's name, cleaned
	Size   int64  // bytes of the source
	SHA256 string // of the source, hex
	// Info describes the source: Format, SampleRate, Channels and the
	// exact Duration, as Put recorded them. For objects stored by other
	// means, what the shared cache knows, or zero.
	Info audio.Info
	// UploadedAt is when the object was stored.
	UploadedAt time.Time
	// Cached reports that its μ-law (of the current pipeline version) is
	// in the shared cache, so that its first playback anywhere needs no
	// transcoding.
	Cached bool
}

// Uploaded describes an object Put stored.
type Uploaded = Object

// Put stores the audio read from r as object name in AudioBucket, after
// checking the name, the size (Options.MaxFileSize), that the audio
// transcodes cleanly to its end and that it fits in what is left of
// Options.LibraryMaxBytes; it replaces an object of that name (which keeps
// its room until the new one is stored). The μ-law goes into the shared
// cache at the same time when there is room. Nothing is written when it
// fails. Errors wrap ErrBadName, ErrTooLarge, ErrLibraryFull, ErrNoStore,
// ErrUnavailable or an error of package audio.
func (l *Library) Put(ctx context.Context, name string, r io.Reader) (Object, error) {
	if err := CheckName(name); err != nil {
		return Object{}, err
	}
	name = cleanName(name)
	st, err := l.requireStores(ctx)
	if err != nil {
		return Object{}, err
	}
	sp, err := l.spool(r)
	if err != nil {
		return Object{}, fmt.Errorf("%q: %w", name, err)
	}
	defer sp.f.Close()
	up := Object{Name: name, Size: sp.size, SHA256: hex.EncodeToString(sp.sum[:])}

	l.transcodes.Add(1)
	tr, err := audio.NewTranscoder(sp.f, audio.Options{})
	if err != nil {
		return up, fmt.Errorf("%q: %w", name, err)
	}
	out := l.newTee(tr.Info())
	defer out.release()
	n, err := io.Copy(out, tr)
	if err != nil {
		return up, fmt.Errorf("%q: %w", name, err)
	}
	if n == 0 {
		return up, fmt.Errorf("%w: %q has no audio", audio.ErrBadInput, name)
	}
	up.Info = tr.Info()
	up.Info.Duration = time.Duration(n) * time.Second / audio.SampleRate

	meta := metaFromInfo(up.Info)
	delete(meta, metaPipeline)
	meta[metaDurationMs] = strconv.FormatInt(up.Info.Duration.Round(time.Millisecond).Milliseconds(), 10)
	if st.audio.max > 0 {
		need := storedSize(AudioBucket, name, sp.size, meta)
		used, free, err := st.audio.free(ctx)
		if err != nil {
			return up, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		if need > free {
			return up, fmt.Errorf("%w: %q needs %d bytes; %d of %d are used", ErrLibraryFull, name, need, used, st.audio.max)
		}
	}
	if _, err := sp.f.Seek(0, io.SeekStart); err != nil {
		return up, fmt.Errorf("library: %q: %w", name, err)
	}
	var replaced string // the cache key of the content replaced
	if old, err := st.audio.obs.GetInfo(ctx, name); err == nil {
		replaced = objectKey(old)
	}
	info, err := st.audio.obs.Put(ctx, jetstream.ObjectMeta{Name: name, Metadata: meta}, sp.f)
	if err != nil {
		l.dropFailedPut(st, name, sp.sum[:])
		if unreachable(err) {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return up, fmt.Errorf("library: put %q: %w", name, err)
	}
	up.UploadedAt = info.ModTime
	if key := cacheKey(sp.sum[:]); st.cache != nil && replaced != "" && replaced != key && !l.contentInUse(ctx, st, replaced) {
		// The replaced content's μ-law would only wait for eviction.
		l.mem.remove(replaced)
		if _, err := removeObject(ctx, st.cache, replaced); err != nil {
			l.log.Warn("shared cache: removing the replaced audio's entry failed", "audio", name, "key", replaced, "err", err)
		}
	}
	if out.keep {
		e := newEntry(cacheKey(sp.sum[:]), out.buf, tr.Info())
		l.mem.put(e)
		l.stored.Add(1)
		cctx, cancel := context.WithTimeout(ctx, cacheWriteTimeout)
		ok, err := l.putShared(cctx, st, e)
		cancel()
		if err != nil {
			l.log.Warn("shared cache write failed", "audio", name, "err", err)
		}
		up.Cached = ok && err == nil
	}
	return up, nil
}

// dropFailedPut removes what a failed Put of name left: the Object Store
// client purges the chunks it wrote, but the metadata message may have
// been stored while a chunk was refused (JetStream's max_bytes, reached
// by a concurrent writer), leaving an object that cannot be read.
func (l *Library) dropFailedPut(st *stores, name string, sum []byte) {
	ctx, cancel := context.WithTimeout(l.ctx, storeTimeout)
	defer cancel()
	info, err := st.audio.obs.GetInfo(ctx, name)
	if err != nil || objectKey(info) != cacheKey(sum) {
		return // not ours
	}
	if _, err := removeObject(ctx, st.audio, name); err != nil {
		l.log.Warn("audio library: removing a failed upload's metadata failed", "audio", name, "err", err)
	}
}
