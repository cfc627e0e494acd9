package library

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/callcast/callcast/internal/audio"
)

// Default bucket bounds (Options.LibraryMaxBytes, Options.CacheMaxBytes).
// JetStream reserves a bounded stream's bytes on the server when it is
// created, so the defaults stay modest: together they fit a 1 GiB volume.
const (
	DefaultLibraryMaxBytes = 256 << 20
	DefaultCacheMaxBytes   = 256 << 20
)

// AutoReplicas, as Options.Replicas, creates the buckets with 3 replicas
// when JetStream runs on a cluster of 3 or more servers, else 1.
const AutoReplicas = 0

// metaReserve is room a bounded bucket keeps free beyond what uploads and
// cache writes may take, for the small metadata messages that record uses
// of cache entries.
const metaReserve = 16 << 10

// JetStream API error codes meaning the cluster cannot place more replicas.
const (
	errCodeNoPeers               = 10005 // no suitable peers for placement
	errCodeInsufficientResources = 10023
	errCodeReplicasNotSupported  = 10074 // replicas > 1 not supported in non-clustered mode
)

func apiErrorCode(err error) int {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		return int(api.ErrorCode)
	}
	return 0
}

// tooFewServers reports whether err says the servers cannot hold the
// replicas asked for.
func tooFewServers(err error) bool {
	switch apiErrorCode(err) {
	case errCodeNoPeers, errCodeInsufficientResources, errCodeReplicasNotSupported:
		return true
	}
	return false
}

// jetStreamDisabled reports whether err says the server (or the account)
// has no JetStream at all, as opposed to JetStream being unreachable.
func jetStreamDisabled(err error) bool {
	return errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount)
}

// bucket is a bound Object Store bucket and its stream.
type bucket struct {
	name   string
	obs    jetstream.ObjectStore
	stream jetstream.Stream
	max    int64 // bound on the stream's bytes; 0: none
	short  bool  // fewer replicas than AutoReplicas wants: the cluster could not place them yet
}

// bucketSpec is what a bucket should be.
type bucketSpec struct {
	name, desc string
	maxBytes   int64 // 0: none
	replicas   int   // AutoReplicas or a count
	keep       bool  // an existing bucket is used as it is
}

// bindBucket opens a bucket, creating it when missing, and, unless
// spec.keep, brings an existing one to spec: its bound is set to spec's,
// and its replicas are raised (never lowered) to spec's. With
// AutoReplicas on a cluster that cannot place 3 replicas yet (its servers
// still joining), the bucket gets what fits and b.short is set: binding
// again raises it once they can.
func bindBucket(ctx context.Context, js jetstream.JetStream, spec bucketSpec, log logger) (b *bucket, err error) {
	short := false
	streamName := "OBJ_" + spec.name
	maxBytes := spec.maxBytes
	if maxBytes <= 0 {
		maxBytes = -1
	}
	replicas := spec.replicas
	auto := replicas == AutoReplicas
	if auto {
		replicas = 1
		if js.Conn().ConnectedClusterName() != "" {
			replicas = 3 // lowered below if the cluster has fewer servers
		}
	}
	st, err := js.Stream(ctx, streamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		cfg := jetstream.ObjectStoreConfig{
			Bucket: spec.name, Description: spec.desc, Storage: jetstream.FileStorage,
			Replicas: replicas, MaxBytes: maxBytes,
		}
		_, err = js.CreateObjectStore(ctx, cfg)
		if err != nil && auto && replicas > 1 && tooFewServers(err) {
			cfg.Replicas, short = 1, true
			_, err = js.CreateObjectStore(ctx, cfg)
		}
		switch {
		case err == nil:
			log.Info("audio library: bucket created", "bucket", spec.name, "replicas", cfg.Replicas, "max_bytes", maxBytes)
		case errors.Is(err, jetstream.ErrBucketExists), errors.Is(err, jetstream.ErrStreamNameAlreadyInUse):
			// created meanwhile by another worker
		default:
			return nil, fmt.Errorf("library: create bucket %s: %w", spec.name, err)
		}
		st, err = js.Stream(ctx, streamName)
	} else if err == nil && spec.keep {
		spec.maxBytes = st.CachedInfo().Config.MaxBytes
	} else if err == nil {
		cfg := st.CachedInfo().Config
		changed := false
		if cfg.MaxBytes != maxBytes {
			log.Info("audio library: setting bucket bound", "bucket", spec.name, "max_bytes", maxBytes, "was", cfg.MaxBytes)
			cfg.MaxBytes, changed = maxBytes, true
		}
		raise := replicas > cfg.Replicas
		was := cfg.Replicas
		if raise {
			cfg.Replicas, changed = replicas, true
		}
		if changed {
			_, err = js.UpdateStream(ctx, cfg)
			if err != nil && raise && auto && tooFewServers(err) {
				cfg.Replicas, raise, short = was, false, true
				_, err = js.UpdateStream(ctx, cfg)
			}
			if err != nil {
				// Serve the bucket as it is; the next start tries again.
				log.Warn("audio library: could not update bucket", "bucket", spec.name, "replicas", cfg.Replicas, "max_bytes", maxBytes, "err", err)
			} else if raise {
				log.Info("audio library: bucket replicas raised", "bucket", spec.name, "replicas", cfg.Replicas, "was", was)
			}
		}
		st, err = js.Stream(ctx, streamName)
	}
	if err != nil {
		return nil, fmt.Errorf("library: bucket %s: %w", spec.name, err)
	}
	obs, err := js.ObjectStore(ctx, spec.name)
	if err != nil {
		return nil, fmt.Errorf("library: bucket %s: %w", spec.name, err)
	}
	b = &bucket{name: spec.name, obs: obs, stream: st, short: short}
	if spec.maxBytes > 0 {
		b.max = spec.maxBytes
	}
	return b, nil
}

// logger is what bindBucket logs with.
type logger interface {
	Info(msg string, args ...any)
	Warn(msg string, args ...any)
}

// Object Store subjects (ADR-20): an object's chunks and its metadata.
func chunkSubject(bucket, nuid string) string { return "$O." + bucket + ".C." + nuid }
func metaSubject(bucket, name string) string {
	return "$O." + bucket + ".M." + base64.URLEncoding.EncodeToString([]byte(name))
}

// chunkSize is the Object Store client's default chunk size.
const chunkSize = 128 << 10

// storedSize is what an object of size bytes adds to its bucket's stream,
// as JetStream counts a stream's bytes: each message is its payload, its
// subject, its headers and 30 bytes of record; an object is its chunks and
// one metadata message.
func storedSize(bucket, name string, size int64, metadata map[string]string) int64 {
	const record = 22 + 8 + 4 // length, sequence, time, subject length; hash; header length
	chunks := (size + chunkSize - 1) / chunkSize
	n := size + chunks*int64(record+len(chunkSubject(bucket, "0123456789012345678901")))
	info := jetstream.ObjectInfo{
		ObjectMeta: jetstream.ObjectMeta{Name: name, Metadata: metadata, Opts: &jetstream.ObjectMetaOptions{ChunkSize: chunkSize}},
		Bucket:     bucket, NUID: "0123456789012345678901", Size: uint64(size), Chunks: uint32(chunks),
		Digest: "SHA-256=0123456789012345678901234567890123456789012=",
	}
	meta, _ := json.Marshal(info)
	const header = len("NATS/1.0\r\nNats-Rollup: sub\r\n\r\n")
	n += int64(record + len(metaSubject(bucket, name)) + header + len(meta) + 64)
	return n
}

// free is the room left in b for new objects, or -1 when b is unbounded.
func (b *bucket) free(ctx context.Context) (used, free int64, err error) {
	info, err := b.stream.Info(ctx)
	if err != nil {
		return 0, 0, err
	}
	used = int64(info.State.Bytes)
	if b.max <= 0 {
		return used, -1, nil
	}
	return used, max(0, b.max-metaReserve-used), nil
}

// removeObject removes the object name from b: its chunks, then its
// metadata, leaving no delete marker (which would take room in a full
// bucket). An object put again meanwhile under the same name is kept. It
// reports false when there is no such object.
func removeObject(ctx context.Context, b *bucket, name string) (bool, error) {
	subj := metaSubject(b.name, name)
	m, err := b.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var info jetstream.ObjectInfo
	if err := json.Unmarshal(m.Data, &info); err != nil {
		return false, fmt.Errorf("library: %s: metadata of %q: %w", b.name, name, err)
	}
	if info.NUID != "" {
		if err := b.stream.Purge(ctx, jetstream.WithPurgeSubject(chunkSubject(b.name, info.NUID))); err != nil {
			return false, err
		}
	}
	if err := b.stream.Purge(ctx, jetstream.WithPurgeSubject(subj), jetstream.WithPurgeSequence(m.Sequence+1)); err != nil {
		return false, err
	}
	return !info.Deleted, nil
}

// BucketStats describes an Object Store bucket.
type BucketStats struct {
	Bucket   string
	Bytes    int64 // as JetStream counts the stream's bytes
	MaxBytes int64 // the bound; 0: none
	Entries  int   // objects holding data
	Replicas int
}

// bucketStats counts b's bytes and objects: one chunk subject per object
// holding data.
func bucketStats(ctx context.Context, b *bucket) (BucketStats, error) {
	info, err := b.stream.Info(ctx, jetstream.WithSubjectFilter("$O."+b.name+".C.>"))
	if err != nil {
		return BucketStats{}, err
	}
	return BucketStats{
		Bucket: b.name, Bytes: int64(info.State.Bytes), MaxBytes: b.max,
		Entries: len(info.State.Subjects), Replicas: info.Config.Replicas,
	}, nil
}

// Buckets describes AudioBucket and CacheBucket, in that order (the
// latter only when it is bound).
func (l *Library) Buckets(ctx context.Context) ([]BucketStats, error) {
	st, err := l.requireStores(ctx)
	if err != nil {
		return nil, err
	}
	var out []BucketStats
	for _, b := range []*bucket{st.audio, st.cache} {
		if b == nil {
			continue
		}
		s, err := bucketStats(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("%w: bucket %s: %w", ErrUnavailable, b.name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// Eviction reasons (Stats.SharedEvictionsOld, SharedEvictionsLRU).
const (
	evictOld = iota // an entry of an older pipeline version
	evictLRU        // the least recently used entry
)

// makeRoom evicts shared cache entries until an entry of need bytes fits
// the cache's bound: first every entry of an older pipeline version, then
// the least recently used, down to 90 % of the bound so that evictions
// come in batches, not at every write. It reports false when the entry
// cannot fit at all.
func (l *Library) makeRoom(ctx context.Context, c *bucket, need int64) (bool, error) {
	if c.max <= 0 {
		return true, nil
	}
	if need > c.max-metaReserve {
		return false, nil
	}
	l.evictMu.Lock()
	defer l.evictMu.Unlock()
	used, free, err := c.free(ctx)
	if err != nil {
		return false, err
	}
	if need <= free {
		return true, nil
	}
	objs, err := c.obs.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return false, err
	}
	target := max(c.max-metaReserve-need-c.max/10, 0) // bytes that may stay
	suffix := "." + audio.PipelineVersion
	slices.SortFunc(objs, func(a, b *jetstream.ObjectInfo) int {
		ao, bo := !strings.HasSuffix(a.Name, suffix), !strings.HasSuffix(b.Name, suffix)
		if ao != bo {
			if ao {
				return -1
			}
			return 1
		}
		return a.ModTime.Compare(b.ModTime)
	})
	for _, o := range objs {
		if used <= target {
			break
		}
		removed, err := removeObject(ctx, c, o.Name)
		if err != nil {
			return false, err
		}
		if !removed {
			continue
		}
		used -= storedSize(c.name, o.Name, int64(o.Size), o.Metadata)
		reason := evictLRU
		if !strings.HasSuffix(o.Name, suffix) {
			reason = evictOld
		}
		l.sharedEvictions[reason].Add(1)
		l.log.Debug("shared cache entry evicted", "key", o.Name, "size", o.Size, "last_used", o.ModTime, "old_version", reason == evictOld)
	}
	_, free, err = c.free(ctx)
	if err != nil {
		return false, err
	}
	return need <= free, nil
}

// touches records when this Library last recorded the use of each shared
// cache entry.
type touches struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// due reports whether key's use should be recorded now, and notes that it
// is.
func (t *touches) due(key string, now time.Time, every time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if at, ok := t.last[key]; ok && now.Sub(at) < every {
		return false
	}
	if t.last == nil || len(t.last) >= maxHashes {
		t.last = make(map[string]time.Time)
	}
	t.last[key] = now
	return true
}

// touch records, at most every Options.TouchInterval per entry and
// Library, that the cache entry key was used, by writing its metadata
// again: the Object Store's modification time of an entry is its last use,
// which eviction goes by. It runs in the background and gives up when too
// many are under way.
func (l *Library) touch(key string) {
	if l.opts.CacheMaxBytes <= 0 {
		return
	}
	st := l.stores.Load()
	if st == nil || st.cache == nil || !l.touched.due(key, time.Now(), l.opts.TouchInterval) {
		return
	}
	select {
	case l.touchers <- struct{}{}:
	default:
		return
	}
	if !l.goBackground(func() {
		defer func() { <-l.touchers }()
		ctx, cancel := context.WithTimeout(l.ctx, storeTimeout)
		defer cancel()
		info, err := st.cache.obs.GetInfo(ctx, key)
		if err == nil {
			err = st.cache.obs.UpdateMeta(ctx, key, info.ObjectMeta)
		}
		if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) && !errors.Is(err, jetstream.ErrUpdateMetaDeleted) {
			l.log.Debug("shared cache: recording a use failed", "key", key, "err", err)
		}
	}) {
		<-l.touchers
	}
}
