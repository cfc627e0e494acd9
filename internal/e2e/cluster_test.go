package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/callsim"
	"github.com/callcast/callcast/internal/calltest"
	"github.com/callcast/callcast/internal/edge"
	"github.com/callcast/callcast/internal/library"
	"github.com/callcast/callcast/internal/worker"
)

// The fault suite: the product on a real three-node nats-server cluster
// (routes on loopback), the edge on one node and the workers on the
// others, with faults injected for real — a node shut down, every node
// shut down, a worker killed or drained — and what each caller heard
// compared byte for byte with the prompt. The prompt is μ-law WAV of
// random bytes, which the workers play untranscoded: any byte lost,
// repeated or reordered shows.

// natsCluster is three nats-servers routed to each other on loopback, each
// restartable on its ports.
type natsCluster struct {
	t       *testing.T
	clients [3]string // host:port
	routes  [3]string
	dirs    [3]string
	payload int32
	js      bool // JetStream on every node

	mu      sync.Mutex
	servers [3]*server.Server
}

func startNATSCluster(t *testing.T, maxPayload int32, jetStream bool) *natsCluster {
	return startNATSClusterWith(t, &natsCluster{payload: maxPayload, js: jetStream})
}

func startNATSClusterWith(t *testing.T, c *natsCluster) *natsCluster {
	t.Helper()
	c.t = t
	t.Cleanup(func() {
		for i := range 3 {
			c.kill(i)
		}
	})
	// The ports were free a moment before a node binds them, and something
	// else may bind one first: another process, or a dial's own ephemeral
	// port (the first node dials the others' routes before they listen).
	// A cluster that cannot start on its ports starts again on new ones.
	for attempt := 1; ; attempt++ {
		for i := range 3 {
			c.clients[i], c.routes[i], c.dirs[i] = calltest.FreeAddr(t), calltest.FreeAddr(t), t.TempDir()
		}
		err := c.startAll()
		if err == nil {
			break
		}
		for i := range 3 {
			c.kill(i)
		}
		if attempt == 3 {
			t.Fatalf("cluster: %v, three times", err)
		}
		t.Logf("cluster: %v; starting it again on new ports", err)
	}
	c.waitRoutes()
	if c.js {
		// A meta leader that knows all three peers: else a bucket of
		// three replicas cannot be placed yet.
		waitFor(t, "a JetStream meta leader with three peers", 20*time.Second, func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, ns := range c.servers {
				if ns == nil || !ns.JetStreamIsLeader() {
					continue
				}
				jsz, err := ns.Jsz(nil)
				return err == nil && jsz.Meta != nil && jsz.Meta.Size == 3 && len(jsz.Meta.Replicas) == 2
			}
			return false
		})
	}
	return c
}

func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(p)
	return h, port
}

// startAll starts the three nodes on their ports.
func (c *natsCluster) startAll() error {
	for i := range 3 {
		if err := c.tryStart(i); err != nil {
			return err
		}
	}
	return nil
}

// start starts node i again on its ports.
func (c *natsCluster) start(i int) {
	c.t.Helper()
	if err := c.tryStart(i); err != nil {
		c.t.Fatal(err)
	}
}

// tryStart starts node i on its ports, or says why it did not get ready:
// one of its ports taken, most likely.
func (c *natsCluster) tryStart(i int) error {
	c.t.Helper()
	host, port := hostPort(c.t, c.clients[i])
	rhost, rport := hostPort(c.t, c.routes[i])
	opts := &server.Options{
		ServerName: fmt.Sprintf("n%d", i),
		Host:       host, Port: port,
		NoLog: true, NoSigs: true,
		MaxPayload: c.payload,
		Cluster:    server.ClusterOpts{Name: "callcast", Host: rhost, Port: rport},
		JetStream:  c.js,
		StoreDir:   c.dirs[i],
	}
	for j := range 3 {
		if j != i {
			opts.Routes = append(opts.Routes, server.RoutesFromStr("nats://"+c.routes[j])...)
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("n%d: %w", i, err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return fmt.Errorf("n%d not ready within 10s (client %s: %s, route %s: %s)",
			i, c.clients[i], bindable(c.clients[i]), c.routes[i], bindable(c.routes[i]))
	}
	c.mu.Lock()
	c.servers[i] = ns
	c.mu.Unlock()
	return nil
}

// bindable says whether addr can be listened on now.
func bindable(addr string) string {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err.Error()
	}
	ln.Close()
	return "free"
}

// kill shuts node i down, as a crash of its machine would for its clients.
func (c *natsCluster) kill(i int) {
	c.mu.Lock()
	ns := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
}

func (c *natsCluster) waitRoutes() {
	c.t.Helper()
	waitFor(c.t, "the cluster's routes", 10*time.Second, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, ns := range c.servers {
			if ns != nil && ns.NumRoutes() < 2 {
				return false
			}
		}
		return true
	})
}

// urls lists the nodes' client URLs, node first first: a client connects
// there, and reconnects to the others when it goes.
func (c *natsCluster) urls(first int) string {
	s := ""
	for k := range 3 {
		if k > 0 {
			s += ","
		}
		s += "nats://" + c.clients[(first+k)%3]
	}
	return s
}

// faultSystem is an edge on node 0 and workers on nodes 1 and 2 (one
// each, or as many as asked, alternating), a producer on node 2.
type faultSystem struct {
	*system
	cluster *natsCluster
	edge    *edge.Server
	edgeNC  *nats.Conn
	workers []*failWorker
	logs    *calltest.SyncBuffer
	prompt  []byte // the μ-law the prompt plays
	connect func(name string, node int) *nats.Conn
}

type faultOptions struct {
	workers     int // default 2
	concurrency int // per worker; default the worker's
	promptDur   time.Duration
	maxPayload  int32
	jetStream   bool // JetStream on the cluster and in the workers (library and shared cache), no memory cache
}

func startFaultSystem(t *testing.T, o faultOptions) *faultSystem {
	t.Helper()
	if o.workers == 0 {
		o.workers = 2
	}
	if o.promptDur == 0 {
		o.promptDur = 4 * time.Second
	}
	fs := &faultSystem{logs: &calltest.SyncBuffer{}, cluster: startNATSCluster(t, o.maxPayload, o.jetStream)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("product logs:\n%s", fs.logs)
		}
	})
	log := slog.New(slog.NewJSONHandler(fs.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	connect := func(name string, node int) *nats.Conn {
		nc, err := bus.Connect(bus.ConnOptions{URL: fs.cluster.urls(node), Name: name, Logger: log.With("conn", name)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bus.Close(nc, 5*time.Second) })
		return nc
	}
	dir := t.TempDir()
	fs.prompt = randomMulaw(int(o.promptDur/time.Millisecond) * 8)
	calltest.WriteFile(t, filepath.Join(dir, "prompt.wav"), mulawWAVOf(fs.prompt))
	calltest.WriteFile(t, filepath.Join(dir, "long.wav"), mulawWAVOf(randomMulaw(60*8000)))
	for i := range o.workers {
		name := "worker-" + strconv.Itoa(i)
		cfg := worker.Config{
			AudioDir: dir, DefaultAudio: worker.NoDefaultAudio, ID: name, Logger: log.With("component", name),
			Concurrency: o.concurrency,
		}
		if o.jetStream {
			// Every play reads the buckets: no memory cache to hide them.
			cfg.JetStream, cfg.CacheBytes = true, -1
		}
		fs.workers = append(fs.workers, startFailWorker(t, connect(name, 1+i%2), cfg))
	}
	fs.connect = connect
	fs.edgeNC = connect("edge", 0)
	srv, err := edge.New(fs.edgeNC, edge.Config{ID: "edge-0", Logger: log.With("component", "edge")})
	if err != nil {
		t.Fatal(err)
	}
	fs.edge = srv
	addr := calltest.Serve(t, "edge", srv)
	fs.system = &system{wsURL: "ws://" + addr + edge.PathMediaStream, nc: connect("producer", 2), worker: fs.workers[0].Worker}
	return fs
}

// randomMulaw is n bytes of seeded noise: no two 20 ms frames alike.
func randomMulaw(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// mulawWAVOf wraps 8 kHz μ-law in a WAV header.
func mulawWAVOf(ulaw []byte) []byte {
	b := make([]byte, 46, 46+len(ulaw))
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(38+len(ulaw)))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 18)
	binary.LittleEndian.PutUint16(b[20:], 7) // μ-law
	binary.LittleEndian.PutUint16(b[22:], 1)
	binary.LittleEndian.PutUint32(b[24:], 8000)
	binary.LittleEndian.PutUint32(b[28:], 8000)
	binary.LittleEndian.PutUint16(b[32:], 1)
	binary.LittleEndian.PutUint16(b[34:], 8)
	b = append(b[:38], "data"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(ulaw)))
	return append(b, ulaw...)
}

// faultCall is one caller playing the prompt, with its events.
type faultCall struct {
	sid      string
	call     *callsim.Call
	ev       *events
	playback string
}

// placeCalls places n real-time calls and plays the prompt on each.
func (fs *faultSystem) placeCalls(t *testing.T, n int) []*faultCall {
	t.Helper()
	calls := make([]*faultCall, n)
	for i := range calls {
		fc := &faultCall{sid: newSid("MZ")}
		fc.ev = watch(t, fs.nc, fc.sid)
		fc.call = dialSpeed(t, fs.system, fc.sid, "", 1)
		calls[i] = fc
	}
	for _, fc := range calls {
		waitForStart(t, fs.system, fc.sid)
		fc.playback = mustPlay(t, fs.nc, bus.PlayRequest{StreamSid: fc.sid, Audio: "prompt.wav"}).PlaybackID
	}
	return calls
}

// waitPlayed waits until every call has played n bytes of audio.
func (fs *faultSystem) waitPlayed(t *testing.T, calls []*faultCall, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d ms of every call played", n/8), 10*time.Second, func() bool {
		for _, fc := range calls {
			if len(fc.call.Played()) < n {
				return false
			}
		}
		return true
	})
}

// heardExactlyOnce waits for each call's playback.finished and checks that
// the call received the prompt byte for byte: nothing lost, nothing twice.
// It returns the longest gap a caller heard.
func (fs *faultSystem) heardExactlyOnce(t *testing.T, calls []*faultCall, timeout time.Duration) time.Duration {
	t.Helper()
	var worst time.Duration
	for _, fc := range calls {
		fin := fc.ev.playback(t, bus.EventPlaybackFinished, fc.playback, timeout)
		if fin.Playback == nil {
			continue
		}
		got := fc.call.Received()
		if d := firstDiff(got, fs.prompt); d >= 0 {
			t.Errorf("call %s: received %d bytes, prompt %d; first difference at byte %d (%d ms): %s",
				fc.sid, len(got), len(fs.prompt), d, d/8, describeDiff(got, fs.prompt, d))
		}
		if fin.Playback.HeardMs != int64(len(fs.prompt)/8) {
			t.Errorf("call %s: finished with heardMs %d, want %d", fc.sid, fin.Playback.HeardMs, len(fs.prompt)/8)
		}
		st := fc.call.Stats()
		// The race detector slows the workers' pacing loops and the
		// double's echoes alike; the bound is checked at full speed.
		if st.MaxBuffered > 2*time.Second+200*time.Millisecond && !raceEnabled {
			t.Errorf("call %s: %s buffered at Twilio, over the 2 s lead and a message", fc.sid, st.MaxBuffered)
		}
		worst = max(worst, st.UnderrunTime)
	}
	return worst
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// describeDiff says whether what was received at d repeats earlier prompt
// audio or skips some.
func describeDiff(got, want []byte, d int) string {
	if d >= len(got) {
		return "the call received too little"
	}
	if d >= len(want) {
		return "the call received too much"
	}
	frame := got[d:min(d+160, len(got))]
	for off := 0; off+len(frame) <= len(want); off++ {
		if string(want[off:off+len(frame)]) == string(frame) {
			if off < d {
				return fmt.Sprintf("audio from %d ms of the prompt played again", off/8)
			}
			return fmt.Sprintf("%d ms of the prompt skipped", (off-d)/8)
		}
	}
	return "audio not from the prompt"
}

// activeSampler records the most playbacks the workers had active at once.
type activeSampler struct {
	stop chan struct{}
	done chan struct{}
	peak atomic.Int64
	over atomic.Int64 // longest run, in ms, above the limit
}

func sampleActive(workers []*failWorker, limit int) *activeSampler {
	s := &activeSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var since time.Time
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			n := 0
			for _, w := range workers {
				n += w.Active()
			}
			if int64(n) > s.peak.Load() {
				s.peak.Store(int64(n))
			}
			switch {
			case n <= limit:
				since = time.Time{}
			case since.IsZero():
				since = time.Now()
			default:
				if run := time.Since(since).Milliseconds(); run > s.over.Load() {
					s.over.Store(run)
				}
			}
		}
	}()
	return s
}

func (s *activeSampler) finish() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// TestClusterWorkerKilled: a worker serving half of 20 calls is killed
// (its connection and goroutines gone at once, as kill -9 leaves them)
// mid-playback. The other worker takes every one of its playbacks over
// inside the lead: every caller hears the prompt exactly once, no gap.
func TestClusterWorkerKilled(t *testing.T) {
	calltest.CheckGoroutines(t)
	fs := startFaultSystem(t, faultOptions{})
	calls := fs.placeCalls(t, 20)
	fs.waitPlayed(t, calls, 8000)
	victim := fs.workers[0]
	t.Logf("killing %s with %d playbacks", victim.name, victim.Active())
	victim.kill()
	gap := fs.heardExactlyOnce(t, calls, 20*time.Second)
	t.Logf("longest gap a caller heard: %s", gap)
	if gap > 0 && !raceEnabled {
		t.Errorf("a caller heard %s of silence: the hand-over outran the lead", gap)
	}
}

// TestClusterEdgeNodeKilled: the NATS node the edge is connected to goes
// down mid-playback. The edge reconnects to another node and resumes each
// playback from the last byte it relayed: nothing twice, nothing lost, and
// what the callers hear of the outage is bounded.
func TestClusterEdgeNodeKilled(t *testing.T) {
	calltest.CheckGoroutines(t)
	fs := startFaultSystem(t, faultOptions{})
	calls := fs.placeCalls(t, 10)
	fs.waitPlayed(t, calls, 8000)
	s := sampleActive(fs.workers, len(calls))
	t.Cleanup(s.finish)
	fs.cluster.kill(0)
	gap := fs.heardExactlyOnce(t, calls, 20*time.Second)
	t.Logf("longest gap a caller heard: %s; peak active playbacks %d for %d calls, longest run over %d ms", gap, s.peak.Load(), len(calls), s.over.Load())
	if s.over.Load() > 250 {
		t.Errorf("workers held more playbacks than calls for %d ms: superseded attempts ran on", s.over.Load())
	}
	if gap > time.Second {
		t.Errorf("a caller heard %s of silence across the edge's reconnect, limit 1 s", gap)
	}
}

// TestClusterOutage: every NATS node goes down for 5 s mid-playback and
// comes back, with the workers' capacity tight (40 slots for 26 calls).
// Render requests buffered in clients across the outage are refused,
// superseded attempts stop: the workers never hold more playbacks than
// there are calls for long, nobody gets busy, and every caller hears the
// whole prompt exactly once, the outage as one gap.
func TestClusterOutage(t *testing.T) {
	calltest.CheckGoroutines(t)
	fs := startFaultSystem(t, faultOptions{concurrency: 20, promptDur: 6 * time.Second})
	calls := fs.placeCalls(t, 26)
	fs.waitPlayed(t, calls, 8000)
	s := sampleActive(fs.workers, len(calls))
	t.Cleanup(s.finish)
	for i := range 3 {
		fs.cluster.kill(i)
	}
	time.Sleep(5 * time.Second)
	for i := range 3 {
		fs.cluster.start(i)
	}
	fs.cluster.waitRoutes()
	gap := fs.heardExactlyOnce(t, calls, 30*time.Second)
	for _, fc := range calls {
		for _, k := range fc.ev.kinds() {
			if k == bus.EventPlaybackFailed {
				t.Errorf("call %s: events %v", fc.sid, fc.ev.kinds())
				break
			}
		}
	}
	t.Logf("peak active playbacks %d for %d calls, longest run over %d ms; longest gap %s", s.peak.Load(), len(calls), s.over.Load(), gap)
	if s.over.Load() > 250 {
		t.Errorf("workers held more playbacks than calls for %d ms: superseded attempts ran on", s.over.Load())
	}
	if gap > 5*time.Second+2*time.Second {
		t.Errorf("a caller heard %s of silence for a 5 s outage", gap)
	}
}

// TestClusterWorkerDrained: a worker told to shut down (SIGTERM) finishes
// what it plays; every caller hears the prompt exactly once, no gap.
func TestClusterWorkerDrained(t *testing.T) {
	calltest.CheckGoroutines(t)
	fs := startFaultSystem(t, faultOptions{})
	calls := fs.placeCalls(t, 10)
	fs.waitPlayed(t, calls, 4000)
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		drained <- fs.workers[0].shutdown(ctx)
	}()
	gap := fs.heardExactlyOnce(t, calls, 20*time.Second)
	if err := <-drained; err != nil {
		t.Errorf("drain: %v", err)
	}
	if gap > 0 && !raceEnabled {
		t.Errorf("a caller heard %s of silence", gap)
	}
}

// TestClusterOversizedOut: with the servers allowing 16 MB payloads, a
// 16 MB media message on a call's .out (43 minutes of audio) is dropped
// by the edge, and the call plays on untouched.
func TestClusterOversizedOut(t *testing.T) {
	calltest.CheckGoroutines(t)
	fs := startFaultSystem(t, faultOptions{maxPayload: 16 << 20})
	calls := fs.placeCalls(t, 1)
	payload := base64.StdEncoding.EncodeToString(make([]byte, 11<<20))
	msg := []byte(`{"event":"media","media":{"payload":"` + payload + `"}}`)
	if err := fs.nc.Publish(bus.StreamOut(calls[0].sid), msg); err != nil {
		t.Fatal(err)
	}
	if err := fs.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	fs.heardExactlyOnce(t, calls, 20*time.Second)
	if st := calls[0].call.Stats(); st.Bytes != len(fs.prompt) {
		t.Errorf("the call received %d bytes, the prompt is %d", st.Bytes, len(fs.prompt))
	}
}

// TestClusterPlayFlood: 10 000 play requests on one call through the
// workers. The call keeps at most MAX_QUEUED_PLAYBACKS, the rest are
// answered queue_full; another call plays its prompt untouched; hanging
// up the flooded call publishes one event per playback it held.
func TestClusterPlayFlood(t *testing.T) {
	calltest.CheckGoroutines(t)
	fs := startFaultSystem(t, faultOptions{})
	calls := fs.placeCalls(t, 1)
	// The flooded call plays a minute-long prompt meanwhile, so that its
	// queue does not move during the flood.
	flooded := &faultCall{sid: newSid("MZ")}
	flooded.ev = watch(t, fs.nc, flooded.sid)
	flooded.call = dialSpeed(t, fs.system, flooded.sid, "", 1)
	waitForStart(t, fs.system, flooded.sid)
	mustPlay(t, fs.nc, bus.PlayRequest{StreamSid: flooded.sid, Audio: "long.wav"})
	const n = 10000
	inbox := fs.nc.NewRespInbox()
	replies := make(chan *nats.Msg, n)
	sub, err := fs.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	req := []byte(`{"streamSid":"` + flooded.sid + `","audio":"prompt.wav"}`)
	codes := map[string]int{}
	got := 0
	for sent := 0; sent < n || got < sent; {
		// At most 200 in flight: as many as a burst of producers.
		for sent < n && sent-got < 200 {
			if err := fs.nc.PublishRequest(bus.SubjectPlay, inbox, req); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		select {
		case m := <-replies:
			got++
			r, err := bus.DecodePlayReply(m.Data)
			switch {
			case err != nil:
				codes["undecodable"]++
			case r.Error != nil:
				codes[r.Error.Code]++
			default:
				codes["ok"]++
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%d of %d replies; codes %v", got, sent, codes)
		}
	}
	t.Logf("replies to %d play requests: %v", n, codes)
	if codes["ok"] != 100 || codes[bus.CodeQueueFull] != n-100 {
		t.Errorf("codes %v, want 100 ok (the queue's bound) and the rest queue_full", codes)
	}
	// The other call is untouched.
	fs.heardExactlyOnce(t, calls, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := flooded.call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	flooded.ev.wait(t, bus.EventStop, 10*time.Second)
	interrupted := 0
	for _, k := range flooded.ev.kinds() {
		if k == bus.EventPlaybackInterrupted {
			interrupted++
		}
	}
	// 101 held: the one playing and the 100 queued behind it.
	if interrupted != 101 {
		t.Errorf("hanging up published %d playback.interrupted, want one for each of the 101 held", interrupted)
	}
}

// TestClusterLibraryNodeKilled: the node that leads the audio library's
// bucket goes down. The buckets were created with three replicas (the
// automatic NATS_REPLICAS on a three-node cluster), so a prompt uploaded
// before plays after, from workers with no memory cache; while JetStream
// elects a new leader, a play is answered unavailable (retryable), never
// unknown_audio.
func TestClusterLibraryNodeKilled(t *testing.T) {
	calltest.CheckGoroutines(t)
	fs := startFaultSystem(t, faultOptions{jetStream: true})
	// Before the fault, every worker reaches the buckets (one that started
	// while JetStream was still placing peers binds them in the background).
	waitFor(t, "the workers on the buckets", 20*time.Second, func() bool {
		return fs.workers[0].SharedStore() && fs.workers[1].SharedStore()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	js, err := jetstream.New(fs.nc)
	if err != nil {
		t.Fatal(err)
	}
	up, err := library.New(ctx, library.Options{JS: js, MemoryBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	// The buckets' replicas may still be electing their leaders on a
	// cluster this young: an operator would upload again.
	for try := 1; ; try++ {
		pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := up.Put(pctx, "lib/prompt.wav", bytes.NewReader(mulawWAVOf(fs.prompt)))
		pcancel()
		if err == nil {
			break
		}
		if try == 3 {
			t.Fatal(err)
		}
		t.Logf("upload %d: %v", try, err)
	}
	leaders := map[string]string{}
	for _, bucket := range []string{library.AudioBucket, library.CacheBucket} {
		st, err := js.Stream(ctx, "OBJ_"+bucket)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.Replicas != 3 || info.Cluster == nil {
			t.Fatalf("bucket %s: %d replicas, want 3", bucket, info.Config.Replicas)
		}
		leaders[bucket] = info.Cluster.Leader
	}
	leader := leaders[library.AudioBucket]
	node := int(leader[1] - '0')
	t.Logf("bucket leaders %v: killing %s", leaders, leader)
	fs.cluster.kill(node)
	// Clients of the lost node move to the others.
	lost := fs.cluster.clients[node]
	waitFor(t, "the producer and the edge on the other nodes", 10*time.Second, func() bool {
		for _, nc := range []*nats.Conn{fs.nc, fs.edgeNC} {
			if !nc.IsConnected() || nc.ConnectedAddr() == lost {
				return false
			}
		}
		return true
	})

	// A call placed after the loss plays the prompt, byte for byte.
	fc := &faultCall{sid: newSid("MZ")}
	fc.ev = watch(t, fs.nc, fc.sid)
	fc.call = dialSpeed(t, fs.system, fc.sid, "", 1)
	waitForStart(t, fs.system, fc.sid)
	codes := map[string]int{}
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := play(t, fs.nc, bus.PlayRequest{StreamSid: fc.sid, Audio: "lib/prompt.wav"})
		if r.Error == nil {
			fc.playback = r.PlaybackID
			break
		}
		codes[r.Error.Code]++
		if r.Error.Code != bus.CodeUnavailable || time.Now().After(deadline) {
			t.Fatalf("play after the library's node went: %+v (codes so far %v)", r.Error, codes)
		}
		time.Sleep(200 * time.Millisecond)
	}
	fs.heardExactlyOnce(t, []*faultCall{fc}, 20*time.Second)
	t.Logf("play replies before it was taken: %v", codes)
}
