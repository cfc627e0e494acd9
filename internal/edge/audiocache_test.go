package edge

import (
	"encoding/base64"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
