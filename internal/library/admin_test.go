package library

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/calltest"
)

// checkGoroutines fails t if goroutines started during it outlive it, but
// for one nats.go leaves behind now and then: an Object Store put's
// asynchronous publisher may start resetPendingAcksOnReconnect after its
// cleanup has dropped the status channel, and it then waits forever.
func checkGoroutines(t *testing.T) {
	t.Helper()
	count := func() (int, string) {
		buf := make([]byte, 4<<20)
		buf = buf[:runtime.Stack(buf, true)]
		n := 0
		for _, g := range strings.Split(string(buf), "\n\n") {
			if !strings.Contains(g, "jetstream.(*jetStream).resetPendingAcksOnReconnect") {
				n++
			}
		}
		return n, string(buf)
	}
	before, _ := count()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n, stacks := count()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutines leaked:\n%s", n-before, stacks)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func TestLibraryAdmin(t *testing.T) {
	checkGoroutines(t) // background writes and the servers' goroutines end
	ns := runNATS(t, true)
	ctx := context.Background()
	l := newLibrary(t, Options{JS: connectJS(t, ns)})
	speech := readTestdata(t, "speech.mp3")
	before := time.Now()
	up, err := l.Put(ctx, "prompts/welcome.mp3", bytes.NewReader(speech))
	if err != nil {
		t.Fatal(err)
	}
	// An object stored by another Object Store client, without metadata.
	obs, err := connectJS(t, ns).ObjectStore(ctx, AudioBucket)
	if err != nil {
		t.Fatal(err)
	}
	tone := toneWAV(time.Second, 440)
	if _, err := obs.PutBytes(ctx, "tone.wav", tone); err != nil {
		t.Fatal(err)
	}

	list, err := l.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "prompts/welcome.mp3" || list[1].Name != "tone.wav" {
		t.Fatalf("list: %+v", list)
	}
	w := list[0]
	if w.Size != int64(len(speech)) || w.SHA256 != fmt.Sprintf("%x", sha256.Sum256(speech)) || !w.Cached ||
		w.Info.Format != "mp3" || w.Info.SampleRate != 22050 || w.Info.Channels != 1 ||
		w.Info.Duration != up.Info.Duration.Round(time.Millisecond) || w.UploadedAt.Before(before.Add(-time.Second)) {
		t.Errorf("list: welcome %+v, put %+v", w, up)
	}
	// Not transcoded yet: ls knows its size only; info reads its header.
	if list[1].Cached || list[1].Info.Format != "" || list[1].Size != int64(len(tone)) {
		t.Errorf("list: tone %+v", list[1])
	}
	info, err := l.Stat(ctx, "tone.wav")
	if err != nil || info.Info.Format != "wav-pcm16" || info.Info.SampleRate != 16000 || info.Info.Duration != time.Second {
		t.Errorf("stat tone: %+v, %v", info, err)
	}
	if info, err := l.Stat(ctx, "prompts//welcome.mp3"); err != nil || info.Name != "prompts/welcome.mp3" {
		t.Errorf("stat by an unclean name: %+v, %v", info, err)
	}

	var got bytes.Buffer
	if o, err := l.Get(ctx, "prompts/welcome.mp3", &got); err != nil || !bytes.Equal(got.Bytes(), speech) || o.SHA256 != up.SHA256 {
		t.Errorf("get: %d bytes, %+v, %v; want the %d bytes put", got.Len(), o, err, len(speech))
	}

	// Names are checked as for playing; missing names are not found.
	for _, name := range []string{"../x.mp3", "/x.mp3", `a\b.mp3`, ""} {
		if _, err := l.Stat(ctx, name); !errors.Is(err, ErrBadName) {
			t.Errorf("stat %q: %v, want ErrBadName", name, err)
		}
		if _, err := l.Remove(ctx, name); !errors.Is(err, ErrBadName) {
			t.Errorf("rm %q: %v, want ErrBadName", name, err)
		}
	}
	for _, op := range []func(string) error{
		func(n string) error { _, err := l.Stat(ctx, n); return err },
		func(n string) error { _, err := l.Get(ctx, n, io.Discard); return err },
		func(n string) error { _, err := l.Remove(ctx, n); return err },
	} {
		if err := op("nope.mp3"); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing: %v, want ErrNotFound", err)
		}
	}

	// rm drops the object and its cached μ-law, everywhere this library
	// keeps it, leaving no marker behind.
	sum := sha256.Sum256(speech)
	key := cacheKey(sum[:])
	if l.mem.get(key) == nil {
		t.Fatal("not in memory before rm")
	}
	if _, err := l.Remove(ctx, "prompts/welcome.mp3"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Stat(ctx, "prompts/welcome.mp3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("stat after rm: %v, want ErrNotFound", err)
	}
	if _, err := l.Open(ctx, "prompts/welcome.mp3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("open after rm: %v, want ErrNotFound", err)
	}
	if l.mem.get(key) != nil {
		t.Error("still in memory after rm")
	}
	cache, err := connectJS(t, ns).ObjectStore(ctx, CacheBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cache.GetInfo(ctx, key, jetstream.GetObjectInfoShowDeleted()); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Errorf("cache entry after rm: %v, want none", err)
	}
	if _, err := obs.GetInfo(ctx, "prompts/welcome.mp3", jetstream.GetObjectInfoShowDeleted()); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Errorf("object after rm: %v, want no trace", err)
	}
	stats, err := l.Buckets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats[0].Bucket != AudioBucket || stats[0].Entries != 1 || stats[1].Bucket != CacheBucket || stats[1].Entries != 0 ||
		stats[0].MaxBytes != DefaultLibraryMaxBytes || stats[1].MaxBytes != DefaultCacheMaxBytes || stats[0].Bytes < int64(len(tone)) {
		t.Errorf("buckets after rm: %+v", stats)
	}
}

// streamState is the audio or cache bucket's stream state.
func streamState(t *testing.T, js jetstream.JetStream, bucket string) jetstream.StreamState {
	t.Helper()
	s, err := js.Stream(context.Background(), "OBJ_"+bucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State
}

func TestPutRefusedWhenLibraryFull(t *testing.T) {
	checkGoroutines(t) // background writes and the servers' goroutines end
	ns := runNATS(t, true)
	ctx := context.Background()
	js := connectJS(t, ns)
	speech := readTestdata(t, "speech.mp3")
	// Room for one copy of speech.mp3 and not two.
	limit := int64(metaReserve + 3*len(speech)/2)
	l := newLibrary(t, Options{JS: js, LibraryMaxBytes: limit})
	if _, err := l.Put(ctx, "one.mp3", bytes.NewReader(speech)); err != nil {
		t.Fatal(err)
	}
	before := streamState(t, js, AudioBucket)
	_, err := l.Put(ctx, "two.mp3", bytes.NewReader(speech))
	if !errors.Is(err, ErrLibraryFull) || !strings.Contains(err.Error(), fmt.Sprint(limit)) {
		t.Fatalf("second put: %v, want ErrLibraryFull naming the limit", err)
	}
	if after := streamState(t, js, AudioBucket); after.Msgs != before.Msgs || after.Bytes != before.Bytes || after.LastSeq != before.LastSeq {
		t.Errorf("refused put wrote: before %+v, after %+v", before, after)
	}
	if _, err := l.Stat(ctx, "two.mp3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("refused object: %v", err)
	}
	// JetStream enforces the bound on every writer too.
	obs, err := js.ObjectStore(ctx, AudioBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obs.PutBytes(ctx, "raw.mp3", make([]byte, 2*len(speech))); err == nil {
		t.Error("the stream took an object past max_bytes")
	}
	// (The Object Store client may leave the metadata of an object whose
	// chunks were refused; rm removes it.)
	if _, err := l.Remove(ctx, "raw.mp3"); err != nil && !errors.Is(err, ErrNotFound) {
		t.Errorf("rm raw.mp3: %v", err)
	}
	// A bound set on the stream behind this library's back (so that only
	// JetStream refuses) leaves nothing either.
	other := newLibrary(t, Options{JS: js, LibraryMaxBytes: -1})
	stream, err := js.Stream(ctx, "OBJ_"+AudioBucket)
	if err != nil {
		t.Fatal(err)
	}
	cfg := stream.CachedInfo().Config
	cfg.MaxBytes = limit
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	before = streamState(t, js, AudioBucket)
	if _, err := other.Put(ctx, "three.wav", bytes.NewReader(toneWAV(time.Second, 440))); err == nil {
		t.Fatal("JetStream took an object past max_bytes")
	}
	if after := streamState(t, js, AudioBucket); after.Msgs != before.Msgs || after.Bytes != before.Bytes {
		t.Errorf("an upload JetStream refused left messages: before %+v, after %+v", before, after)
	}
	if _, err := l.Stat(ctx, "three.wav"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an upload JetStream refused left an object: %v", err)
	}

	// Removing makes room again.
	if _, err := l.Remove(ctx, "one.mp3"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Put(ctx, "two.mp3", bytes.NewReader(speech)); err != nil {
		t.Fatalf("put after rm: %v", err)
	}
}

func TestSharedCacheEviction(t *testing.T) {
	checkGoroutines(t) // background writes and the servers' goroutines end
	ns := runNATS(t, true)
	ctx := context.Background()
	js := connectJS(t, ns)
	tones := make([][]byte, 7)
	for i := range tones {
		tones[i] = toneWAV(time.Second, float64(300+100*i))
	}
	key := func(i int) string { sum := sha256.Sum256(tones[i]); return cacheKey(sum[:]) }
	size := storedSize(CacheBucket, key(0), audio.SampleRate, metaFromInfo(audio.Info{Format: "wav-pcm16", SampleRate: 16000, Channels: 1}))
	// Seven entries of 1 s fit, not eight.
	limit := metaReserve + 15*size/2
	producer := newLibrary(t, Options{JS: js, CacheMaxBytes: limit, MemoryBytes: -1})
	for i := range 6 {
		if up, err := producer.Put(ctx, fmt.Sprintf("t%d.wav", i), bytes.NewReader(tones[i])); err != nil || !up.Cached {
			t.Fatalf("put t%d: %+v, %v", i, up, err)
		}
	}
	// The newest entry, but of an older pipeline version.
	cache, err := js.ObjectStore(ctx, CacheBucket)
	if err != nil {
		t.Fatal(err)
	}
	old := fmt.Sprintf("%x.0", sha256.Sum256([]byte("old")))
	if _, err := cache.Put(ctx, jetstream.ObjectMeta{Name: old}, bytes.NewReader(make([]byte, audio.SampleRate))); err != nil {
		t.Fatal(err)
	}
	modTime := func(key string) time.Time {
		info, err := cache.GetInfo(ctx, key)
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		return info.ModTime
	}
	// t0, the least recently stored, is played on a worker: its use is
	// recorded, so t1 becomes the least recently used.
	worker := newLibrary(t, Options{JS: connectJS(t, ns), TouchInterval: time.Millisecond})
	if _, cached := play(t, worker, "t0.wav"); !cached {
		t.Fatal("t0 not served from the shared cache")
	}
	waitFor(t, "t0's use recorded", func() bool { return modTime(key(0)).After(modTime(old)) })

	up, err := producer.Put(ctx, "t6.wav", bytes.NewReader(tones[6]))
	if err != nil || !up.Cached {
		t.Fatalf("put t6: %+v, %v", up, err)
	}
	exists := func(key string) bool {
		_, err := cache.GetInfo(ctx, key)
		return err == nil
	}
	if exists(old) {
		t.Error("the old pipeline version's entry survived")
	}
	if exists(key(1)) {
		t.Error("the least recently used entry (t1) survived")
	}
	for _, i := range []int{0, 5, 6} {
		if !exists(key(i)) {
			t.Errorf("t%d was evicted", i)
		}
	}
	// Least recently used first: an entry evicted means every entry used
	// before it was too.
	for i := 2; i < 5; i++ {
		if exists(key(i)) && !exists(key(i+1)) {
			t.Errorf("t%d evicted before t%d", i+1, i)
		}
	}
	st := producer.Stats()
	if st.SharedEvictionsOld != 1 || st.SharedEvictionsLRU < 1 {
		t.Errorf("evictions: old %d, lru %d", st.SharedEvictionsOld, st.SharedEvictionsLRU)
	}
	if state := streamState(t, js, CacheBucket); int64(state.Bytes) > limit {
		t.Errorf("cache holds %d bytes, limit %d", state.Bytes, limit)
	}

	// An entry larger than the whole cache is not stored, and its playback
	// is whole all the same.
	small := newLibrary(t, Options{JS: connectJS(t, ns), CacheMaxBytes: limit, MemoryBytes: -1})
	long := toneWAV(10*time.Second, 250)
	if up, err := small.Put(ctx, "long.wav", bytes.NewReader(long)); err != nil || up.Cached {
		t.Fatalf("put long: %+v, %v; want stored, not cached", up, err)
	}
	if got, _ := play(t, small, "long.wav"); !bytes.Equal(got, reference(t, long)) {
		t.Error("long.wav did not play whole")
	}
}

func TestUnavailableIsNotUnknown(t *testing.T) {
	checkGoroutines(t) // background writes and the servers' goroutines end
	ns := runNATS(t, true)
	l := newLibrary(t, Options{JS: connectJS(t, ns)})
	if !l.Shared() {
		t.Fatal("not bound")
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := l.Open(ctx, "welcome.mp3"); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) {
		t.Errorf("open during an outage: %v, want ErrUnavailable", err)
	}
	if _, err := l.Probe(ctx, "welcome.mp3"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("probe during an outage: %v, want ErrUnavailable", err)
	}
}

// runCluster starts n JetStream servers routed to each other on loopback.
func runCluster(t *testing.T, n int) []*server.Server {
	t.Helper()
	return startCluster(t, clusterOptions(t, n))
}

// clusterOptions are the options of n servers routed to each other.
func clusterOptions(t *testing.T, n int) []*server.Options {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	opts := make([]*server.Options, n)
	for i := range opts {
		opts[i] = &server.Options{
			ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			NoLog: true, NoSigs: true, JetStream: true, StoreDir: t.TempDir(),
			Cluster: server.ClusterOpts{Name: "callcast-test", Host: "127.0.0.1", Port: ports[i]},
			Routes:  routes,
		}
	}
	return opts
}

// startCluster starts the servers of opts and waits for their JetStream
// meta leader.
func startCluster(t *testing.T, opts []*server.Options) []*server.Server {
	t.Helper()
	servers := startServers(t, opts)
	n := len(servers)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ready := 0
		for _, ns := range servers {
			if ns.JetStreamIsCurrent() && ns.JetStreamIsLeader() {
				ready = n
			}
		}
		if ready == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("cluster: no JetStream meta leader after 20 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return servers
}

// startServers starts the servers of opts and waits until they take
// connections.
func startServers(t *testing.T, opts []*server.Options) []*server.Server {
	t.Helper()
	servers := make([]*server.Server, len(opts))
	for i, o := range opts {
		ns, err := server.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		ns.Start()
		servers[i] = ns
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	}
	for _, ns := range servers {
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatal("cluster: not ready")
		}
	}
	return servers
}

func replicas(t *testing.T, js jetstream.JetStream, bucket string) int {
	t.Helper()
	s, err := js.Stream(context.Background(), "OBJ_"+bucket)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().Config.Replicas
}

// waitForCurrent waits until every replica of bucket's stream is current.
func waitForCurrent(t *testing.T, js jetstream.JetStream, bucket string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		s, err := js.Stream(context.Background(), "OBJ_"+bucket)
		if err != nil {
			last = err.Error()
			continue
		}
		c := s.CachedInfo().Cluster
		if c == nil || c.Leader == "" {
			last = "no leader"
			continue
		}
		current := 0
		for _, p := range c.Replicas {
			if p.Current {
				current++
			}
		}
		if current == 2 {
			return
		}
		last = fmt.Sprintf("%d of 2 replicas current", current)
	}
	t.Fatalf("%s: replicas not current after 30 s: %s", bucket, last)
}

// clusterJS is JetStream through a connection to ns, patient with a
// cluster's elections.
func clusterJS(t *testing.T, ns *server.Server) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// boundLibrary is a library on js, its buckets bound, and its log.
func boundLibrary(t *testing.T, js jetstream.JetStream) (*Library, *calltest.SyncBuffer) {
	t.Helper()
	logs := &calltest.SyncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := New(ctx, Options{JS: js, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if !l.Shared() {
		t.Fatalf("not bound:\n%s", logs)
	}
	return l, logs
}

func TestReplicas(t *testing.T) {
	t.Run("single server: 1", func(t *testing.T) {
		js := connectJS(t, runNATS(t, true))
		newLibrary(t, Options{JS: js})
		for _, b := range []string{AudioBucket, CacheBucket} {
			if r := replicas(t, js, b); r != 1 {
				t.Errorf("%s: %d replicas, want 1", b, r)
			}
		}
	})

	t0 := time.Now()
	servers := runCluster(t, 3)
	t.Logf("cluster up in %v", time.Since(t0))
	ctx := context.Background()
	js := clusterJS(t, servers[0])
	// A bucket made with one replica before, as earlier versions did.
	if _, err := js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: CacheBucket, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	ctx10, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	l, logs := boundLibrary(t, js)
	t.Logf("bound at %v", time.Since(t0))
	// The raised bucket's new replicas copy it in the background.
	for _, b := range []string{AudioBucket, CacheBucket} {
		waitForCurrent(t, js, b)
	}
	for _, b := range []string{AudioBucket, CacheBucket} {
		if r := replicas(t, js, b); r != 3 {
			t.Errorf("%s: %d replicas, want 3 (auto, on a cluster of 3)", b, r)
		}
	}
	if !strings.Contains(logs.String(), "bucket replicas raised") || !strings.Contains(logs.String(), "bucket="+CacheBucket) {
		t.Errorf("no log line for the raised bucket:\n%s", logs)
	}
	speech := readTestdata(t, "speech.mp3")
	if _, err := l.Put(ctx10, "welcome.mp3", bytes.NewReader(speech)); err != nil {
		t.Fatal(err)
	}

	t.Logf("put at %v", time.Since(t0))
	// Any one server may go: the library is still whole on the others.
	s, err := js.Stream(ctx, "OBJ_"+AudioBucket)
	if err != nil {
		t.Fatal(err)
	}
	leader := s.CachedInfo().Cluster.Leader
	var survivor *server.Server
	for _, ns := range servers {
		if ns.Name() == leader {
			ns.Shutdown()
			ns.WaitForShutdown()
		} else {
			survivor = ns
		}
	}
	w := newLibrary(t, Options{JS: clusterJS(t, survivor), MemoryBytes: -1})
	var got []byte
	for deadline := time.Now().Add(30 * time.Second); ; {
		w.bindMu.Lock()
		w.nextBind = time.Time{} // do not wait rebindInterval
		w.bindMu.Unlock()
		octx, ocancel := context.WithTimeout(ctx, 5*time.Second)
		if err := w.Bind(octx); err != nil {
			t.Logf("%v: bind: %v", time.Since(t0), err)
		}
		s, err := w.Open(octx, "welcome.mp3")
		ocancel()
		if err == nil {
			got, err = io.ReadAll(s)
			s.Close()
			if err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the library on the surviving servers: %v", err)
		}
		t.Logf("%v", err)
		time.Sleep(100 * time.Millisecond)
	}
	if !bytes.Equal(got, reference(t, speech)) {
		t.Error("the surviving servers played other audio")
	}
	t.Logf("played at %v", time.Since(t0))
}

func TestCachedContentFollowsTheLibrary(t *testing.T) {
	checkGoroutines(t) // background writes and the servers' goroutines end
	ns := runNATS(t, true)
	ctx := context.Background()
	js := connectJS(t, ns)
	l := newLibrary(t, Options{JS: js})
	cache, err := js.ObjectStore(ctx, CacheBucket)
	if err != nil {
		t.Fatal(err)
	}
	cached := func(src []byte) bool {
		sum := sha256.Sum256(src)
		_, err := cache.GetInfo(ctx, cacheKey(sum[:]))
		return err == nil
	}
	a, b := toneWAV(time.Second, 440), toneWAV(time.Second, 880)
	for _, put := range []struct {
		name string
		data []byte
	}{{"a.wav", a}, {"copy-of-a.wav", a}, {"b.wav", b}} {
		if _, err := l.Put(ctx, put.name, bytes.NewReader(put.data)); err != nil {
			t.Fatal(err)
		}
	}
	// Removing one of two names of the same content keeps its μ-law.
	if _, err := l.Remove(ctx, "copy-of-a.wav"); err != nil {
		t.Fatal(err)
	}
	if !cached(a) {
		t.Error("a's μ-law dropped while a.wav has it")
	}
	// Replacing b.wav by other audio drops b's μ-law, which nothing plays.
	if _, err := l.Put(ctx, "b.wav", bytes.NewReader(a)); err != nil {
		t.Fatal(err)
	}
	if cached(b) || !cached(a) {
		t.Errorf("after replacing b.wav: b cached %v, a cached %v; want false, true", cached(b), cached(a))
	}
	entries, err := l.CacheEntries(ctx)
	if err != nil || len(entries) != 1 || !entries[0].Current || !slices.Equal(entries[0].Sources, []string{"a.wav", "b.wav"}) {
		t.Errorf("cache entries: %+v, %v", entries, err)
	}
}

// TestLibraryWithoutTheCacheBucket: a cache bucket JetStream refuses (here
// a bound larger than the server may store) leaves the audio library
// working, with the memory cache only.
func TestLibraryWithoutTheCacheBucket(t *testing.T) {
	checkGoroutines(t)
	ns, err := server.NewServer(&server.Options{DontListen: true, NoLog: true, NoSigs: true, JetStream: true,
		StoreDir: t.TempDir(), JetStreamMaxStore: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats: not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	ctx := context.Background()
	logs := &calltest.SyncBuffer{}
	l := newLibrary(t, Options{JS: connectJS(t, ns), LibraryMaxBytes: 16 << 20, CacheMaxBytes: 1 << 30,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if !l.Shared() {
		t.Fatalf("library not bound:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "shared transcode cache unavailable") {
		t.Errorf("no warning about the cache:\n%s", logs)
	}
	speech := readTestdata(t, "speech.mp3")
	up, err := l.Put(ctx, "welcome.mp3", bytes.NewReader(speech))
	if err != nil || up.Cached {
		t.Fatalf("put: %+v, %v; want stored, not cached", up, err)
	}
	other := newLibrary(t, Options{JS: connectJS(t, ns), LibraryMaxBytes: 16 << 20, CacheMaxBytes: 1 << 30})
	if got, _ := play(t, other, "welcome.mp3"); !bytes.Equal(got, reference(t, speech)) {
		t.Error("did not play the library's prompt")
	}
	if list, err := l.List(ctx); err != nil || len(list) != 1 {
		t.Errorf("list: %+v, %v", list, err)
	}
	if _, err := l.Remove(ctx, "welcome.mp3"); err != nil {
		t.Errorf("rm: %v", err)
	}
}

// TestReplicasRaisedWhenTheClusterGrows: a library bound on a cluster of
// two servers gets buckets of one replica (two cannot hold three), and
// raises them to three once a third server has joined, without a restart.
func TestReplicasRaisedWhenTheClusterGrows(t *testing.T) {
	opts := clusterOptions(t, 3)
	opts[0].Routes, opts[1].Routes = opts[0].Routes[:2], opts[1].Routes[:2]
	servers := startCluster(t, opts[:2])
	js := clusterJS(t, servers[0])
	l, logs := boundLibrary(t, js)
	for _, b := range []string{AudioBucket, CacheBucket} {
		if r := replicas(t, js, b); r != 1 {
			t.Fatalf("%s: %d replicas on two servers, want 1", b, r)
		}
	}
	if !strings.Contains(logs.String(), "cannot place 3 replicas yet") {
		t.Errorf("no warning of the missing replicas:\n%s", logs)
	}

	startServers(t, opts[2:])
	deadline := time.Now().Add(45 * time.Second)
	for replicas(t, js, AudioBucket) != 3 || replicas(t, js, CacheBucket) != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("replicas not raised 45 s after the third server joined:\n%s", logs)
		}
		l.bindMu.Lock()
		l.nextBind = time.Time{} // do not wait rebindInterval
		l.bindMu.Unlock()
		l.shared() // as any use of the shared cache does
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "bucket replicas raised") {
		t.Errorf("no log line for the raised buckets:\n%s", logs)
	}
	// Raised, the library stops binding again.
	l.bindMu.Lock()
	l.nextBind = time.Time{}
	l.bindMu.Unlock()
	if st := l.shared(); st == nil || st.short() {
		t.Error("still short of replicas after raising them")
	}
}
