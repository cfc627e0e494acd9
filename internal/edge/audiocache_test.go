package edge

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/calltest"
	"github.com/callcast/callcast/internal/library"
)

func fillCache(t *testing.T, c *audioCache, name string, ulaw []byte) bool {
	t.Helper()
	f := c.claim(name, int64(len(ulaw)/8))
	if f == nil {
		return false
	}
	for off := 0; off < len(ulaw); off += 1600 {
		if !c.add(f, base64.StdEncoding.EncodeToString(ulaw[off:min(off+1600, len(ulaw))])) {
			c.release(f)
			return false
		}
	}
	c.commit(f, int64(len(ulaw)/8))
	return true
}

func TestAudioCache(t *testing.T) {
	now := time.Unix(1000, 0)
	c, err := newAudioCache(10000, time.Minute, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return now }
	a, b, big := make([]byte, 4000), make([]byte, 4000), make([]byte, 12000)
	for i := range a {
		a[i], b[i] = byte(i), byte(i+1)
	}

	if e := c.get("a.wav"); e != nil {
		t.Fatal("an empty cache holds a.wav")
	}
	f := c.claim("a.wav", 500)
	if f == nil || c.claim("a.wav", 500) != nil {
		t.Fatal("want one fill of a name at a time")
	}
	c.release(f)
	if !fillCache(t, c, "a.wav", a) || !fillCache(t, c, "b.wav", b) {
		t.Fatal("fills refused")
	}
	if e := c.get("a.wav"); e == nil || string(e.ulaw) != string(a) || e.durationMs != 500 {
		t.Fatalf("a.wav: %v", e)
	}
	if c.claim("a.wav", 500) != nil {
		t.Error("a fresh entry is filled again")
	}
	if fillCache(t, c, "big.wav", big) {
		t.Error("audio larger than the cache was kept")
	}
	// a.wav was used last: c.wav evicts b.wav.
	if !fillCache(t, c, "c.wav", b) {
		t.Fatal("c.wav refused")
	}
	if c.get("b.wav") != nil || c.get("a.wav") == nil || c.get("c.wav") == nil {
		t.Error("want b.wav evicted, a.wav and c.wav kept")
	}
	if c.size != 8000 || len(c.entries) != 2 || c.lru.Len() != 2 {
		t.Errorf("size %d, %d entries, lru %d", c.size, len(c.entries), c.lru.Len())
	}
	now = now.Add(time.Minute)
	if c.get("a.wav") != nil || c.size != 4000 {
		t.Errorf("a.wav still played after its TTL (size %d)", c.size)
	}
	if !fillCache(t, c, "a.wav", b) {
		t.Fatal("an expired entry is not filled again")
	}
	if e := c.get("a.wav"); e == nil || string(e.ulaw) != string(b) {
		t.Error("a.wav not replaced")
	}
	// A fill whose playback never ends gives way after its lease.
	f = c.claim("d.wav", 1000)
	if c.claim("d.wav", 1000) != nil {
		t.Fatal("two fills of d.wav")
	}
	now = now.Add(fillLease + 2*time.Second)
	if c.claim("d.wav", 1000) == nil {
		t.Error("a stale fill holds d.wav forever")
	}
	c.release(f) // the stale one: changes nothing
	if c.claim("d.wav", 1000) != nil {
		t.Error("releasing a stale fill dropped the live one")
	}

	var none *audioCache
	if none.get("a.wav") != nil || none.claim("a.wav", 1) != nil {
		t.Error("a nil cache holds something")
	}
}

// TestAudioCacheForget: a changed audio leaves the cache at once, and a
// fill under way when it changed stores nothing; names are keyed as the
// library finds them.
func TestAudioCacheForget(t *testing.T) {
	c, err := newAudioCache(10000, time.Minute, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	a := make([]byte, 1600)
	if !fillCache(t, c, "prompts//a.wav", a) {
		t.Fatal("fill refused")
	}
	if c.get("prompts/a.wav") == nil || c.get("./prompts/a.wav") == nil {
		t.Fatal("prompts//a.wav not found as prompts/a.wav")
	}
	c.forget("other.wav")
	c.forget("prompts/a.wav")
	if c.get("prompts/a.wav") != nil || c.size != 0 || c.lru.Len() != 0 {
		t.Fatalf("a forgotten entry is still played (size %d)", c.size)
	}

	f := c.claim("prompts/a.wav", 200)
	if f == nil || !c.add(f, base64.StdEncoding.EncodeToString(a)) {
		t.Fatal("fill refused")
	}
	c.forget("prompts/a.wav") // the old audio is still arriving
	g := c.claim("prompts/a.wav", 200)
	if g == nil {
		t.Fatal("a fill of the new audio waits for the spoilt one")
	}
	c.commit(f, 200)
	if c.get("prompts/a.wav") != nil {
		t.Fatal("a fill spoilt by a change was stored")
	}
	if c.claim("prompts/a.wav", 200) != nil {
		t.Fatal("the spoilt fill's commit dropped the new one")
	}
	if !c.add(g, base64.StdEncoding.EncodeToString(a[:800])) {
		t.Fatal("fill refused")
	}
	c.commit(g, 100)
	if e := c.get("prompts/a.wav"); e == nil || len(e.ulaw) != 800 {
		t.Fatal("the new audio was not stored")
	}
	var m dto.Metric
	if err := c.forgotten.Write(&m); err != nil || m.GetCounter().GetValue() != 2 {
		t.Errorf("invalidations counted %v (%v), want 2", m.GetCounter().GetValue(), err)
	}
	var none *audioCache
	none.forget("a.wav")
}

// TestAudioCacheHearsTheLibrary: an edge drops the cached audio of a
// library object when the object is replaced, as the Object Store
// announces it on the bus, and when an Object Store client deletes it.
func TestAudioCacheHearsTheLibrary(t *testing.T) {
	ns := calltest.NATS(t, bus.ServerOptions{JetStream: true})
	srv, err := New(connect(t, ns.ClientURL()), Config{AudioCacheBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	calltest.Serve(t, "edge", srv)
	ctx := context.Background()
	js, err := jetstream.New(connect(t, ns.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	obs, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: library.AudioBucket})
	if err != nil {
		t.Fatal(err)
	}
	for _, change := range []struct {
		what string
		do   func() error
	}{
		{"replaced", func() error { _, err := obs.PutBytes(ctx, "prompts/welcome.wav", []byte("RIFF…")); return err }},
		{"deleted", func() error { return obs.Delete(ctx, "prompts/welcome.wav") }},
	} {
		if !fillCache(t, srv.cache, "prompts/welcome.wav", make([]byte, 1600)) || !fillCache(t, srv.cache, "prompts/other.wav", make([]byte, 1600)) {
			t.Fatal("fill refused")
		}
		if err := change.do(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the "+change.what+" prompt to leave the cache", func() bool { return srv.cache.get("prompts/welcome.wav") == nil })
		if srv.cache.get("prompts/other.wav") == nil {
			t.Fatalf("%s: another prompt left the cache too", change.what)
		}
		srv.cache.forget("prompts/other.wav")
	}
}
