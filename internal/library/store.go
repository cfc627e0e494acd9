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

	"github.com/nats-io/nats.go/jetstream"

	"github.com/callcast/callcast/internal/audio"
)

// stores are the bound Object Store buckets.
type stores struct {
	audio jetstream.ObjectStore // AudioBucket
	cache jetstream.ObjectStore // CacheBucket
}

// Metadata of a CacheBucket object: the source's format.
const (
	metaFormat     = "format"
	metaSampleRate = "sample-rate"
	metaChannels   = "channels"
	metaPipeline   = "pipeline"
)

// bind binds the buckets, creating them when missing. Buckets that exist
// are used as they are, so an operator may change their settings (limits,
// replicas) with any NATS tool.
func (l *Library) bind(ctx context.Context) {
	st, err := bindStores(ctx, l.opts.JS)
	l.bindMu.Lock()
	defer l.bindMu.Unlock()
	l.binding = false
	if err != nil {
		if l.nextBind.IsZero() {
			l.log.Warn("audio library: JetStream Object Store unavailable; playing local files with a memory cache, retrying", "err", err)
		} else {
			l.log.Debug("audio library: JetStream Object Store still unavailable", "err", err)
		}
		l.nextBind = time.Now().Add(rebindInterval)
		return
	}
	l.stores.Store(st)
	l.log.Info("audio library: using JetStream Object Store", "audio_bucket", AudioBucket, "cache_bucket", CacheBucket)
}

func bindStores(ctx context.Context, js jetstream.JetStream) (*stores, error) {
	a, err := bindBucket(ctx, js, AudioBucket, "callcast: source audio by name")
	if err != nil {
		return nil, err
	}
	c, err := bindBucket(ctx, js, CacheBucket, "callcast: transcoded G.711 μ-law 8 kHz mono, by source SHA-256 and pipeline version")
	if err != nil {
		return nil, err
	}
	return &stores{audio: a, cache: c}, nil
}

func bindBucket(ctx context.Context, js jetstream.JetStream, bucket, desc string) (jetstream.ObjectStore, error) {
	obs, err := js.ObjectStore(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		obs, err = js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket: bucket, Description: desc, Storage: jetstream.FileStorage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) { // created meanwhile by another worker
			obs, err = js.ObjectStore(ctx, bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("library: bucket %s: %w", bucket, err)
	}
	return obs, nil
}

// shared returns the bound buckets, or nil; while unbound it starts, at
// most every rebindInterval, a background attempt to bind them.
func (l *Library) shared() *stores {
	if st := l.stores.Load(); st != nil {
		return st
	}
	if l.opts.JS == nil {
		return nil
	}
	l.bindMu.Lock()
	defer l.bindMu.Unlock()
	if l.binding || time.Now().Before(l.nextBind) || l.ctx.Err() != nil {
		return nil
	}
	l.binding = l.goBackground(func() {
		ctx, cancel := context.WithTimeout(l.ctx, storeTimeout)
		defer cancel()
		l.bind(ctx)
	})
	return nil
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
	if st == nil {
		return nil
	}
	res, err := st.cache.Get(ctx, key)
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
	if st == nil {
		return audio.Info{}, false
	}
	info, err := st.cache.GetInfo(ctx, key)
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
	if st == nil {
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
		if err := l.putShared(ctx, st, e); err != nil {
			l.log.Warn("shared cache write failed", "key", key, "err", err)
		}
	})
	if !ok {
		<-l.uploads
	}
}

// putShared writes e to the shared cache unless it is there already.
func (l *Library) putShared(ctx context.Context, st *stores, e *entry) error {
	if _, err := st.cache.GetInfo(ctx, e.key); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrObjectNotFound) {
		return err
	}
	_, err := st.cache.Put(ctx, jetstream.ObjectMeta{Name: e.key, Metadata: metaFromInfo(e.info)}, bytes.NewReader(e.data))
	if err != nil {
		return err
	}
	l.sharedStored.Add(1)
	return nil
}

// Uploaded describes an object Put stored.
type Uploaded struct {
	Name   string     // the object's name, cleaned
	Size   int64      // bytes of the source
	SHA256 string     // of the source, hex
	Info   audio.Info // of the source; Duration is exact
	// Cached reports that its μ-law is in the cache (shared, and memory),
	// so that its first playback anywhere needs no transcoding.
	Cached bool
}

// Put stores the audio read from r as object name in AudioBucket, after
// checking the name, the size (Options.MaxFileSize) and that the audio
// transcodes cleanly to its end; it replaces an object of that name. The
// μ-law goes into the cache at the same time. Errors wrap ErrBadName,
// ErrTooLarge, ErrNoStore or an error of package audio.
func (l *Library) Put(ctx context.Context, name string, r io.Reader) (Uploaded, error) {
	if err := CheckName(name); err != nil {
		return Uploaded{}, err
	}
	name = cleanName(name)
	st := l.stores.Load()
	if st == nil {
		return Uploaded{}, fmt.Errorf("%w: JetStream is not available", ErrNoStore)
	}
	sp, err := l.spool(r)
	if err != nil {
		return Uploaded{}, fmt.Errorf("%q: %w", name, err)
	}
	defer sp.f.Close()
	up := Uploaded{Name: name, Size: sp.size, SHA256: hex.EncodeToString(sp.sum[:])}

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

	if _, err := sp.f.Seek(0, io.SeekStart); err != nil {
		return up, fmt.Errorf("library: %q: %w", name, err)
	}
	if _, err := st.audio.Put(ctx, jetstream.ObjectMeta{Name: name}, sp.f); err != nil {
		return up, fmt.Errorf("library: put %q: %w", name, err)
	}
	if out.keep {
		e := newEntry(cacheKey(sp.sum[:]), out.buf, tr.Info())
		l.mem.put(e)
		l.stored.Add(1)
		if err := l.putShared(ctx, st, e); err != nil {
			return up, fmt.Errorf("library: cache %q: %w", name, err)
		}
		up.Cached = true
	}
	return up, nil
}
