package library

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callcast/callcast/internal/audio"
)

// unreachable reports whether err means NATS or JetStream did not answer.
func unreachable(err error) bool {
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, nats.ErrDisconnected)
}

// storeErr classifies an error of the Object Store: not found, or
// unavailable.
func storeErr(op, name string, err error) error {
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	return fmt.Errorf("%w: %s %q: %w", ErrUnavailable, op, name, err)
}

// object describes an AudioBucket object from its metadata, completing its
// format from the shared cache for objects Put did not store.
func (l *Library) object(ctx context.Context, st *stores, info *jetstream.ObjectInfo) Object {
	return describe(info, func(key string) *jetstream.ObjectInfo {
		if st.cache == nil {
			return nil
		}
		ci, err := st.cache.obs.GetInfo(ctx, key)
		if err != nil {
			return nil
		}
		return ci
	})
}

// describe describes an AudioBucket object from its metadata and, through
// cached, its shared cache entry's.
func describe(info *jetstream.ObjectInfo, cached func(key string) *jetstream.ObjectInfo) Object {
	o := Object{Name: info.Name, Size: int64(info.Size), UploadedAt: info.ModTime}
	key := objectKey(info)
	if key != "" {
		o.SHA256 = key[:64]
	}
	m := info.Metadata
	o.Info = infoFromMeta(m)
	if ms, err := strconv.ParseInt(m[metaDurationMs], 10, 64); err == nil {
		o.Info.Duration = time.Duration(ms) * time.Millisecond
	}
	if key == "" {
		return o
	}
	ci := cached(key)
	if ci == nil {
		return o
	}
	o.Cached = ci.Size > 0
	if o.Info.Format == "" {
		o.Info = infoFromMeta(ci.Metadata)
		o.Info.Duration = time.Duration(ci.Size) * time.Second / audio.SampleRate
	}
	return o
}

// List describes every object of the audio library, by name. Local files
// (Options.Dir) are not listed.
func (l *Library) List(ctx context.Context) ([]Object, error) {
	st, err := l.requireStores(ctx)
	if err != nil {
		return nil, err
	}
	infos, err := st.audio.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return []Object{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: list: %w", ErrUnavailable, err)
	}
	// One listing of the cache rather than a request per object.
	var entries []*jetstream.ObjectInfo
	if st.cache != nil {
		entries, err = st.cache.obs.List(ctx)
		if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
			return nil, fmt.Errorf("%w: list the cache: %w", ErrUnavailable, err)
		}
	}
	byKey := make(map[string]*jetstream.ObjectInfo, len(entries))
	for _, e := range entries {
		byKey[e.Name] = e
	}
	out := make([]Object, 0, len(infos))
	for _, info := range infos {
		out = append(out, describe(info, func(key string) *jetstream.ObjectInfo { return byKey[key] }))
	}
	slices.SortFunc(out, func(a, b Object) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// lookup checks name as the worker does and finds its object in the
// audio library, for operation op.
func (l *Library) lookup(ctx context.Context, op, name string) (string, *stores, *jetstream.ObjectInfo, error) {
	if err := CheckName(name); err != nil {
		return "", nil, nil, err
	}
	name = cleanName(name)
	st, err := l.requireStores(ctx)
	if err != nil {
		return "", nil, nil, err
	}
	info, err := st.audio.obs.GetInfo(ctx, name)
	if err != nil {
		return "", nil, nil, storeErr(op, name, err)
	}
	return name, st, info, nil
}

// Stat describes the object name of the audio library. Of an object
// stored by other means than Put, it reads the format from the source's
// header when the cache does not know it.
func (l *Library) Stat(ctx context.Context, name string) (Object, error) {
	name, st, info, err := l.lookup(ctx, "stat", name)
	if err != nil {
		return Object{}, err
	}
	o := l.object(ctx, st, info)
	if o.Info.Format == "" {
		src := &source{name: name, size: o.Size, st: st}
		if r, err := src.header(ctx); err == nil {
			if tr, err := audio.NewTranscoder(r, audio.Options{}); err == nil {
				o.Info = tr.Info()
			}
			r.Close()
		}
	}
	return o, nil
}

// Get writes the source bytes of object name to w, checked against the
// digest recorded when it was stored.
func (l *Library) Get(ctx context.Context, name string, w io.Writer) (Object, error) {
	if err := CheckName(name); err != nil {
		return Object{}, err
	}
	name = cleanName(name)
	st, err := l.requireStores(ctx)
	if err != nil {
		return Object{}, err
	}
	res, err := st.audio.obs.Get(ctx, name)
	if err != nil {
		return Object{}, storeErr("get", name, err)
	}
	defer res.Close()
	info, err := res.Info()
	if err != nil {
		return Object{}, storeErr("get", name, err)
	}
	o := l.object(ctx, st, info)
	n, err := io.Copy(w, res)
	if err == nil && n != o.Size {
		err = fmt.Errorf("got %d bytes of %d", n, o.Size)
	}
	if err != nil {
		return o, fmt.Errorf("library: get %q: %w", name, err)
	}
	return o, nil
}

// Remove deletes object name from the audio library, and its μ-law from
// the shared cache and this Library's memory unless another object of the
// library has the same content. Playbacks already under way play to their
// end (a worker holds what it plays); the next request for the name finds
// nothing (ErrNotFound).
func (l *Library) Remove(ctx context.Context, name string) (Object, error) {
	name, st, info, err := l.lookup(ctx, "remove", name)
	if err != nil {
		return Object{}, err
	}
	o := l.object(ctx, st, info)
	found, err := removeObject(ctx, st.audio, name)
	if err != nil {
		return o, fmt.Errorf("%w: remove %q: %w", ErrUnavailable, name, err)
	}
	if !found {
		return o, fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	if key := objectKey(info); key != "" && !l.contentInUse(ctx, st, key) {
		l.mem.remove(key)
		if st.cache != nil {
			if _, err := removeObject(ctx, st.cache, key); err != nil {
				return o, fmt.Errorf("%w: remove the cached μ-law of %q: %w", ErrUnavailable, name, err)
			}
		}
		o.Cached = false
	}
	return o, nil
}

// contentInUse reports whether a library object has the content of cache
// key; true when that cannot be known.
func (l *Library) contentInUse(ctx context.Context, st *stores, key string) bool {
	objs, err := st.audio.obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return false
	}
	if err != nil {
		return true
	}
	return slices.ContainsFunc(objs, func(o *jetstream.ObjectInfo) bool { return objectKey(o) == key })
}

// CacheEntry describes an entry of the shared transcode cache
// (CacheBucket).
type CacheEntry struct {
	Key      string // "<SHA-256 of the source>.<pipeline version>"
	SHA256   string // of the source, hex
	Pipeline string // the pipeline version that made it
	// Current: made by this version of the pipeline. Entries of other
	// versions are never read again, and are evicted first.
	Current bool
	Size    int64      // bytes of μ-law
	Info    audio.Info // of the source; Duration is the μ-law's
	LastUse time.Time  // when a worker last recorded using it (or stored it)
	Sources []string   // names of library objects with this content
}

// CacheEntries describes every entry of the shared cache, least recently
// used first, with the library objects whose μ-law each is. An entry with
// no source is the μ-law of a local file (AUDIO_DIR), or of audio no longer
// in the library, which eviction removes in its turn.
func (l *Library) CacheEntries(ctx context.Context) ([]CacheEntry, error) {
	st, err := l.requireStores(ctx)
	if err != nil {
		return nil, err
	}
	sources := map[string][]string{} // by SHA-256
	objs, err := st.audio.obs.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, fmt.Errorf("%w: list: %w", ErrUnavailable, err)
	}
	for _, o := range objs {
		if key := objectKey(o); key != "" {
			sources[key[:64]] = append(sources[key[:64]], o.Name)
		}
	}
	if st.cache == nil {
		return nil, fmt.Errorf("%w: the shared cache bucket is not bound", ErrUnavailable)
	}
	entries, err := st.cache.obs.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, fmt.Errorf("%w: list the cache: %w", ErrUnavailable, err)
	}
	out := make([]CacheEntry, 0, len(entries))
	for _, e := range entries {
		sum, version, _ := strings.Cut(e.Name, ".")
		info := infoFromMeta(e.Metadata)
		info.Duration = time.Duration(e.Size) * time.Second / audio.SampleRate
		out = append(out, CacheEntry{
			Key: e.Name, SHA256: sum, Pipeline: version, Current: version == audio.PipelineVersion,
			Size: int64(e.Size), Info: info, LastUse: e.ModTime, Sources: sources[sum],
		})
	}
	slices.SortFunc(out, func(a, b CacheEntry) int { return a.LastUse.Compare(b.LastUse) })
	return out, nil
}
