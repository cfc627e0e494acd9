package edge

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/calltest"
	"github.com/callcast/callcast/internal/twilio"
)

func runNATS(t testing.TB) string {
	t.Helper()
	return calltest.NATS(t, bus.ServerOptions{}).ClientURL()
}

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := bus.Connect(bus.ConnOptions{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// serve runs an edge on loopback and returns its address and a producer
// connection. It checks on cleanup that the edge's goroutines are gone.
func serve(t *testing.T, cfg Config) (string, *nats.Conn) {
	t.Helper()
	url := runNATS(t)
	srv, err := New(connect(t, url), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: sessions end, the edge shuts down, then
	// nothing of it runs at all.
	t.Cleanup(func() {
		waitFor(t, "every edge goroutine to exit", func() bool { return len(edgeStacks(true)) == 0 })
	})
	addr := calltest.Serve(t, "edge", srv)
	t.Cleanup(func() {
		// Every socket's goroutines end with its socket.
		waitFor(t, "session goroutines to exit", func() bool { return srv.Streams() == 0 && sessionGoroutines() == 0 })
	})
	return addr, connect(t, url)
}

// sessionGoroutines counts goroutines running session code. fasthttp keeps
// its own workers alive between connections, so a plain count would not do.
// The edge-wide play request server (playRequests) lives until Shutdown.
func sessionGoroutines() int { return len(edgeStacks(false)) }

// edgeStacks returns the stacks of goroutines running edge code: per
// session only, or all of them.
func edgeStacks(all bool) []string {
	buf := make([]byte, 4<<20)
	var found []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "playRequests") && !all {
			continue
		}
		if strings.Contains(g, "internal/edge.(*session)") || strings.Contains(g, "internal/edge.(*Server).handleSocket") ||
			all && strings.Contains(g, "internal/edge.(*Server)") {
			found = append(found, g)
		}
	}
	return found
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; edge goroutines:\n%s", what, strings.Join(edgeStacks(true), "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type peer struct {
	t    *testing.T
	conn *websocket.Conn
	sid  string
	seq  int
}

func dialPeer(t *testing.T, addr string) *peer {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws://"+addr+PathMediaStream, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &peer{t: t, conn: conn, sid: "MZ" + strings.Repeat("ab", 16)}
}

func (p *peer) sendRaw(mt int, data string) {
	p.t.Helper()
	if err := p.conn.WriteMessage(mt, []byte(data)); err != nil {
		p.t.Fatal(err)
	}
}

func (p *peer) send(m twilio.Message) {
	p.t.Helper()
	if m.Event != twilio.EventConnected {
		p.seq++
		m.SequenceNumber = itoa(p.seq)
		if m.StreamSid == "" {
			m.StreamSid = p.sid
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		p.t.Fatal(err)
	}
	p.sendRaw(websocket.TextMessage, string(b))
}

func itoa(n int) string { return strconv.Itoa(n) }

func (p *peer) start(params map[string]string) {
	p.send(twilio.Message{Event: twilio.EventConnected, Protocol: "Call", Version: "1.0.0"})
	p.send(twilio.Message{Event: twilio.EventStart, Start: &twilio.Start{
		StreamSid: p.sid, AccountSid: "AC" + strings.Repeat("0", 32), CallSid: "CA" + strings.Repeat("1", 32),
		Tracks: []string{"inbound"}, CustomParameters: params,
		MediaFormat: twilio.MediaFormat{Encoding: twilio.Encoding, SampleRate: 8000, Channels: 1},
	}})
}

// read returns the next text message from the edge.
func (p *peer) read() string {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	mt, data, err := p.conn.ReadMessage()
	if err != nil {
		p.t.Fatalf("read: %v", err)
	}
	if mt != websocket.TextMessage {
		p.t.Fatalf("edge sent message type %d, want text", mt)
	}
	return string(data)
}

// closed reports whether the edge closed the socket within timeout.
func (p *peer) closed(timeout time.Duration) bool {
	_ = p.conn.SetReadDeadline(time.Now().Add(timeout))
	for {
		if _, _, err := p.conn.ReadMessage(); err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

// sub collects messages on a subject.
type sub struct {
	mu   sync.Mutex
	msgs [][]byte
}

func subscribe(t *testing.T, nc *nats.Conn, subject string) *sub {
	t.Helper()
	s := &sub{}
	_, err := nc.Subscribe(subject, func(m *nats.Msg) {
		s.mu.Lock()
		s.msgs = append(s.msgs, m.Data)
		s.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *sub) wait(t *testing.T, n int) [][]byte {
	t.Helper()
	waitFor(t, "bus messages", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.msgs) >= n })
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.msgs...)
}

func (s *sub) events(t *testing.T, n int) []bus.Event {
	t.Helper()
	var out []bus.Event
	for _, m := range s.wait(t, n) {
		ev, err := bus.DecodeEvent(m)
		if err != nil {
			t.Fatalf("event %s: %v", m, err)
		}
		out = append(out, *ev)
	}
	return out
}

func TestStreamLifecycle(t *testing.T) {
	addr, nc := serve(t, Config{ID: "edge-1"})
	p := dialPeer(t, addr)
	started := subscribe(t, nc, bus.SubjectStreamStarted)
	events := subscribe(t, nc, bus.StreamEvents(p.sid))
	p.start(map[string]string{"audio": "x.mp3"})

	var st bus.StreamStarted
	if err := json.Unmarshal(started.wait(t, 1)[0], &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != bus.TypeStreamStarted || st.StreamSid != p.sid || st.CallSid != "CA"+strings.Repeat("1", 32) ||
		st.CustomParameters["audio"] != "x.mp3" || st.Edge != "edge-1" || st.MediaFormat.SampleRate != 8000 || st.Time.IsZero() {
		t.Fatalf("stream.started = %+v", st)
	}

	// Relay: each bus message arrives as Twilio's exact outbound JSON.
	// (Producer media is a playback the edge paces, with marks of its own
	// around it: skipped here.)
	payload := base64.StdEncoding.EncodeToString([]byte{0xff, 0x7f, 0x00, 0x80})
	out := bus.StreamOut(p.sid)
	for _, tt := range []struct{ pub, want string }{
		{`{"event":"media","media":{"payload":"` + payload + `"}}`, `{"event":"media","streamSid":"` + p.sid + `","media":{"payload":"` + payload + `"}}`},
		{`{"event":"mark","mark":{"name":"m-1"}}`, `{"event":"mark","streamSid":"` + p.sid + `","mark":{"name":"m-1"}}`},
		{`{"event":"clear"}`, `{"event":"clear","streamSid":"` + p.sid + `"}`},
	} {
		if err := nc.Publish(out, []byte(tt.pub)); err != nil {
			t.Fatal(err)
		}
		got := p.read()
		for strings.Contains(got, `"name":"cc:out-`) {
			got = p.read()
		}
		if got != tt.want {
			t.Fatalf("relayed %s\nwant    %s", got, tt.want)
		}
		if _, err := twilio.ParseOutbound([]byte(got)); err != nil {
			t.Fatalf("Twilio would reject %s: %v", got, err)
		}
	}

	// Call events reach the bus.
	p.send(twilio.Message{Event: twilio.EventMedia, Media: &twilio.Media{Track: "inbound", Chunk: "1", Timestamp: "20", Payload: payload}})
	p.send(twilio.Message{Event: twilio.EventMark, Mark: &twilio.Mark{Name: "m-1"}})
	p.send(twilio.Message{Event: twilio.EventDTMF, DTMF: &twilio.DTMF{Track: "inbound_track", Digit: "7"}})
	p.send(twilio.Message{Event: twilio.EventStop, Stop: &twilio.Stop{AccountSid: "AC", CallSid: "CA"}})
	// The call's events; the producer media's playback.* events aside.
	var evs []bus.Event
	waitFor(t, "call events", func() bool {
		evs = nil
		for _, m := range events.wait(t, 0) {
			if ev, err := bus.DecodeEvent(m); err == nil && !strings.HasPrefix(ev.Event, "playback.") {
				evs = append(evs, *ev)
			}
		}
		return len(evs) >= 4
	})
	kinds := []string{}
	for _, ev := range evs {
		kinds = append(kinds, ev.Event)
		if ev.StreamSid != p.sid || ev.Type != bus.TypeStreamEvent {
			t.Errorf("event %+v", ev)
		}
	}
	if strings.Join(kinds, ",") != "clear,mark,dtmf,stop" {
		t.Fatalf("events %v, want clear,mark,dtmf,stop", kinds)
	}
	if evs[1].Mark.Name != "m-1" || evs[2].DTMF.Digit != "7" || evs[3].Stop.Reason != bus.StopReasonTwilio {
		t.Fatalf("event bodies: %+v", evs)
	}
	if !p.closed(5 * time.Second) {
		t.Fatal("edge kept the socket open after stop")
	}
}

func TestHostileInput(t *testing.T) {
	addr, nc := serve(t, Config{ReadLimit: 4096})
	events := subscribe(t, nc, bus.SubjectStreamStarted)

	// A bystander call that must be unaffected by everything below.
	good := dialPeer(t, addr)
	good.sid = "MZgood"
	good.start(nil)
	events.wait(t, 1)

	p := dialPeer(t, addr)
	p.sendRaw(websocket.BinaryMessage, "\x00\x01binary")
	p.sendRaw(websocket.TextMessage, "{not json")
	p.sendRaw(websocket.TextMessage, `{"event":"bogus","streamSid":"MZx"}`)
	p.sendRaw(websocket.TextMessage, `{"event":"media","streamSid":"MZx","media":{"payload":"AA=="}}`) // before start
	p.sendRaw(websocket.TextMessage, `{"event":"start","streamSid":"bad.sid*>","start":{"callSid":"CA"}}`)
	p.sendRaw(websocket.TextMessage, `{"event":"start","streamSid":"MZx","start":{"callSid":"CA","mediaFormat":{"encoding":"audio/x-wav","sampleRate":44100,"channels":2}}}`)
	p.start(nil)
	p.sid = "MZother"
	p.start(nil) // a second start is ignored
	msgs := events.wait(t, 2)
	time.Sleep(100 * time.Millisecond) // let any wrongly accepted start arrive
	if n := len(events.wait(t, 2)); n != 2 {
		t.Fatalf("%d stream starts published, want 2: %s", n, msgs)
	}

	// The bystander still relays.
	if err := nc.Publish(bus.StreamOut("MZgood"), []byte(`{"event":"mark","mark":{"name":"ok"}}`)); err != nil {
		t.Fatal(err)
	}
	if got := good.read(); !strings.Contains(got, `"name":"ok"`) {
		t.Fatalf("bystander got %s", got)
	}

	// An oversized message closes only that socket. The edge may close it
	// before the whole message is written, so the write may fail.
	_ = p.conn.WriteMessage(websocket.TextMessage, []byte(`{"event":"media","pad":"`+strings.Repeat("x", 8192)+`"}`))
	if !p.closed(5 * time.Second) {
		t.Fatal("oversized message did not close the socket")
	}
	if err := nc.Publish(bus.StreamOut("MZgood"), []byte(`{"event":"mark","mark":{"name":"still"}}`)); err != nil {
		t.Fatal(err)
	}
	if got := good.read(); !strings.Contains(got, `"name":"still"`) {
		t.Fatalf("bystander got %s", got)
	}
}

func TestBadBusMessagesAreDropped(t *testing.T) {
	addr, nc := serve(t, Config{})
	p := dialPeer(t, addr)
	started := subscribe(t, nc, bus.SubjectStreamStarted)
	p.start(nil)
	started.wait(t, 1)
	out := bus.StreamOut(p.sid)
	for _, m := range []string{
		`not json`,
		`{"event":"stop"}`,
		`{"event":"media"}`,
		`{"event":"media","media":{"payload":"not base64!"}}`,
		`{"event":"media","media":{"payload":"AA"}}`,
		`{"event":"mark","mark":{"name":""}}`,
		`{"event":"mark","mark":{"name":"` + strings.Repeat("n", 300) + `"}}`,
		`{"event":"media","media":{"payload":123}}`,
		`{"event":"mark","mark":{"name":"after"}}`,
	} {
		if err := nc.Publish(out, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if got := p.read(); got != `{"event":"mark","streamSid":"`+p.sid+`","mark":{"name":"after"}}` {
		t.Fatalf("first relayed message %s: invalid ones were not dropped", got)
	}
}

func TestStartTimeout(t *testing.T) {
	addr, _ := serve(t, Config{StartTimeout: 200 * time.Millisecond})
	p := dialPeer(t, addr)
	p.send(twilio.Message{Event: twilio.EventConnected, Protocol: "Call", Version: "1.0.0"})
	if !p.closed(5 * time.Second) {
		t.Fatal("a socket without start stayed open")
	}
}

// TestReadTimeout: a started stream stays open while Twilio keeps sending
// (caller audio every 20 ms, for several read timeouts) and is closed once
// it goes silent for ReadTimeout (less the quarter timeout between re-arms).
func TestReadTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	addr, nc := serve(t, Config{ReadTimeout: timeout})
	p := dialPeer(t, addr)
	events := subscribe(t, nc, bus.StreamEvents(p.sid))
	p.start(nil)
	media := twilio.Message{Event: twilio.EventMedia, Media: &twilio.Media{Track: "inbound", Chunk: "1", Timestamp: "0",
		Payload: base64.StdEncoding.EncodeToString(make([]byte, 160))}}
	for range 4 * timeout / (20 * time.Millisecond) {
		p.send(media)
		time.Sleep(20 * time.Millisecond)
	}
	events.mu.Lock()
	early := append([][]byte(nil), events.msgs...)
	events.mu.Unlock()
	if len(early) != 0 {
		t.Fatalf("stream ended while the peer was sending: %s", early[0])
	}
	silent := time.Now()
	evs := events.events(t, 1)
	if evs[0].Event != bus.EventStop || evs[0].Stop.Reason != bus.StopReasonError {
		t.Fatalf("event %+v, want stop with reason error", evs[0])
	}
	if d := time.Since(silent); d < timeout/2 || d > timeout+2*time.Second {
		t.Errorf("silent stream closed after %v, want about %v", d, timeout)
	}
}

func TestSlowPeerIsClosed(t *testing.T) {
	addr, nc := serve(t, Config{SendQueue: 4, SendTimeout: 200 * time.Millisecond, WriteTimeout: 500 * time.Millisecond, Lead: 500 * time.Millisecond, SlowPeerAfter: 300 * time.Millisecond})
	p := dialPeer(t, addr)
	events := subscribe(t, nc, bus.StreamEvents(p.sid))
	started := subscribe(t, nc, bus.SubjectStreamStarted)
	p.start(nil)
	started.wait(t, 1)
	// The peer never reads (nor echoes): the edge must close it instead of
	// buffering without bound. The producer's media (80 s of it, within
	// the stream's bus buffer) is a playback the edge paces, by the wall
	// clock since no mark comes back, so the peer falls behind real time.
	// (A flood past MaxStreamAhead is refused as too_large instead, and
	// then nothing is sent.)
	payload := base64.StdEncoding.EncodeToString(make([]byte, 16<<10))
	msg := []byte(`{"event":"media","media":{"payload":"` + payload + `"}}`)
	for range 40 {
		if err := nc.Publish(bus.StreamOut(p.sid), msg); err != nil {
			t.Fatal(err)
		}
	}
	var stop *bus.Event
	waitFor(t, "the stop event", func() bool {
		for _, m := range events.wait(t, 0) {
			if ev, err := bus.DecodeEvent(m); err == nil && ev.Event == bus.EventStop {
				stop = ev
				return true
			}
		}
		return false
	})
	if r := stop.Stop.Reason; r != bus.StopReasonSlowPeer {
		t.Fatalf("stop %+v, want reason slow_peer", stop.Stop)
	}
}

func TestIncomingCallTwiML(t *testing.T) {
	nc := connect(t, runNATS(t))
	tests := []struct {
		name    string
		cfg     Config
		method  string
		host    string // default edge.test
		target  string
		body    string
		headers map[string]string
		want    []string
		status  int
	}{
		{name: "request host", method: "GET", target: "/incoming-call?audio=hold.mp3",
			want: []string{`<Connect><Stream url="wss://edge.test/media-stream"><Parameter name="audio" value="hold.mp3"/></Stream></Connect>`}},
		{name: "plain http to a public host is a tunnel: wss", method: "POST", host: "abc123.ngrok-free.app", target: "/incoming-call",
			want: []string{`url="wss://abc123.ngrok-free.app/media-stream"`}},
		{name: "plain http to a host with a port: wss", method: "GET", host: "192.0.2.7:8080", target: "/incoming-call",
			want: []string{`url="wss://192.0.2.7:8080/media-stream"`}},
		{name: "loopback address: ws", method: "GET", host: "127.0.0.1:8080", target: "/incoming-call",
			want: []string{`url="ws://127.0.0.1:8080/media-stream"`}},
		{name: "localhost: ws", method: "GET", host: "localhost:8080", target: "/incoming-call",
			want: []string{`url="ws://localhost:8080/media-stream"`}},
		{name: "ipv6 loopback: ws", method: "GET", host: "[::1]:8080", target: "/incoming-call",
			want: []string{`url="ws://[::1]:8080/media-stream"`}},
		{name: "public url", cfg: Config{PublicURL: "https://voice.example.com/base/"}, method: "GET", target: "/incoming-call",
			want: []string{`<Stream url="wss://voice.example.com/base/media-stream"/>`}},
		{name: "public url over plain http is taken as written", cfg: Config{PublicURL: "http://voice.example.com"}, method: "GET", target: "/incoming-call",
			want: []string{`<Stream url="ws://voice.example.com/media-stream"/>`}},
		{name: "form value and say", cfg: Config{PublicURL: "https://voice.example.com", Say: "Hello & welcome"}, method: "POST", target: "/incoming-call",
			body: "CallSid=CA1&audio=a%26b.mp3", headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			want: []string{`<Say>Hello &amp; welcome</Say><Connect>`, `<Parameter name="audio" value="a&amp;b.mp3"/>`}},
		{name: "forwarded headers ignored", method: "GET", host: "localhost:8080", target: "/incoming-call",
			headers: map[string]string{"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
			want:    []string{`url="ws://localhost:8080/media-stream"`}},
		{name: "forwarded headers trusted", cfg: Config{TrustProxy: true}, method: "GET", target: "/incoming-call",
			headers: map[string]string{"X-Forwarded-Host": "voice.example.com, proxy.internal", "X-Forwarded-Proto": "https"},
			want:    []string{`url="wss://voice.example.com/media-stream"`}},
		{name: "forwarded plain http to a public host: wss", cfg: Config{TrustProxy: true}, method: "GET", host: "localhost:8080", target: "/incoming-call",
			headers: map[string]string{"X-Forwarded-Host": "voice.example.com", "X-Forwarded-Proto": "http"},
			want:    []string{`url="wss://voice.example.com/media-stream"`}},
		{name: "parameter too long", method: "GET", target: "/incoming-call?audio=" + strings.Repeat("a", 600), status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := New(nc, tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			host := tt.host
			if host == "" {
				host = "edge.test"
			}
			req := httptest.NewRequest(tt.method, "http://"+host+tt.target, strings.NewReader(tt.body))
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := srv.App().Test(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			want := tt.status
			if want == 0 {
				want = 200
			}
			if resp.StatusCode != want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, want, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(body), w) {
					t.Errorf("TwiML %s\nlacks %s", body, w)
				}
			}
			if want == 200 && resp.Header.Get("Content-Type") != "application/xml; charset=utf-8" {
				t.Errorf("content type %q", resp.Header.Get("Content-Type"))
			}
		})
	}
}

// TestStreamURLLoggedOnce: the first webhook logs the stream URL it hands
// out, and where its host came from; later ones do not.
func TestStreamURLLoggedOnce(t *testing.T) {
	nc := connect(t, runNATS(t))
	tests := []struct {
		name  string
		host  string
		level string
		want  string
	}{
		{"tunnel", "abc123.ngrok-free.app", "INFO", "stream_url=wss://abc123.ngrok-free.app/media-stream from=\"request Host\""},
		{"loopback", "127.0.0.1:8080", "WARN", "stream_url=ws://127.0.0.1:8080/media-stream from=\"request Host\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs calltest.SyncBuffer
			srv, err := New(nc, Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				resp, err := srv.App().Test(httptest.NewRequest("POST", "http://"+tt.host+PathIncomingCall, nil))
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("webhook: %v %v", resp, err)
				}
			}
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			var found []string
			for _, l := range lines {
				if strings.Contains(l, "stream_url=") {
					found = append(found, l)
				}
			}
			if len(found) != 1 || !strings.Contains(found[0], "level="+tt.level) || !strings.Contains(found[0], tt.want) {
				t.Errorf("log lines with the stream URL:\n%s\nwant one at %s with %s", strings.Join(found, "\n"), tt.level, tt.want)
			}
		})
	}
}

func TestBadPublicURL(t *testing.T) {
	nc := connect(t, runNATS(t))
	for _, u := range []string{"voice.example.com", "ftp://x", "https://"} {
		if _, err := New(nc, Config{PublicURL: u}); err == nil {
			t.Errorf("PUBLIC_URL %q accepted", u)
		}
	}
}

func TestDrainingRefusesNewCalls(t *testing.T) {
	nc := connect(t, runNATS(t))
	srv, err := New(nc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	addr := ln.Addr().String()

	// A call in progress keeps running while the edge drains.
	p := dialPeer(t, addr)
	started := subscribe(t, nc, bus.SubjectStreamStarted)
	p.start(nil)
	started.wait(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	waitFor(t, "draining", func() bool { return srv.draining.Load() })

	resp, err := srv.App().Test(httptest.NewRequest("GET", "/incoming-call", nil))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 503 {
		t.Errorf("webhook while draining: %d, want 503", resp.StatusCode)
	}
	if _, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+PathMediaStream, nil); err == nil || resp == nil || resp.StatusCode != 503 {
		t.Errorf("upgrade while draining: %v %v, want 503", err, resp)
	}
	if err := nc.Publish(bus.StreamOut(p.sid), []byte(`{"event":"mark","mark":{"name":"during-drain"}}`)); err != nil {
		t.Fatal(err)
	}
	if got := p.read(); !strings.Contains(got, "during-drain") {
		t.Fatalf("call in progress got %s", got)
	}
	// The drain deadline passes: the call is closed and Shutdown returns.
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !p.closed(time.Second) {
		t.Fatal("call still open after the drain deadline")
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

func TestWebhookRefusesWhileNATSIsDown(t *testing.T) {
	ns, err := bus.RunServer(bus.ServerOptions{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	nc := connect(t, ns.ClientURL())
	srv, err := New(nc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	call := func() int {
		resp, err := srv.App().Test(httptest.NewRequest("POST", "/incoming-call", nil))
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	if got := call(); got != 200 {
		t.Fatalf("webhook with NATS up: %d, want 200", got)
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	waitFor(t, "NATS disconnected", func() bool { return !nc.IsConnected() })
	// Twilio takes the number's fallback URL on a 503, instead of
	// connecting a call that would stay silent.
	if got := call(); got != 503 {
		t.Fatalf("webhook with NATS down: %d, want 503", got)
	}
}

// TestSlowReaderIsClosed: a peer that reads, but at half real time, is
// never stuck on a full send queue; it falls further behind by its mark
// echoes and is closed with stop reason slow_peer once it has been more
// than the lead behind for SlowPeerAfter. A peer that keeps up is not.
func TestSlowReaderIsClosed(t *testing.T) {
	const lead, after = 500 * time.Millisecond, 2 * time.Second
	for _, tt := range []struct {
		name  string
		speed float64 // of real time
		slow  bool
	}{
		{"half speed", 0.5, true},
		{"real time", 1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, nc := serve(t, Config{Lead: lead, SlowPeerAfter: after})
			p := dialPeer(t, addr)
			events := subscribe(t, nc, bus.StreamEvents(p.sid))
			started := subscribe(t, nc, bus.SubjectStreamStarted)
			p.start(nil)
			started.wait(t, 1)

			// A producer sends 200 ms of audio and a mark every 200 ms,
			// as the workers do, for up to 8 s.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			defer func() { close(stop); wg.Wait() }()
			wg.Go(func() {
				media := []byte(`{"event":"media","media":{"payload":"` + base64.StdEncoding.EncodeToString(make([]byte, 1600)) + `"}}`)
				tick := time.NewTicker(200 * time.Millisecond)
				defer tick.Stop()
				for i := range 40 {
					_ = nc.Publish(bus.StreamOut(p.sid), media)
					_ = nc.Publish(bus.StreamOut(p.sid), []byte(`{"event":"mark","mark":{"name":"m`+itoa(i)+`"}}`))
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			})
			// The peer plays what it reads at its speed and echoes each
			// mark when the audio before it has played.
			begin := time.Now()
			var played time.Duration
			closedAt := time.Duration(0)
			for time.Since(begin) < 7*time.Second {
				_ = p.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				_, data, err := p.conn.ReadMessage()
				if err != nil {
					closedAt = time.Since(begin)
					break
				}
				var m twilio.Message
				if err := json.Unmarshal(data, &m); err != nil {
					t.Fatal(err)
				}
				switch m.Event {
				case twilio.EventMedia:
					played += 200 * time.Millisecond
					if d := time.Duration(float64(played)/tt.speed) - time.Since(begin); d > 0 {
						time.Sleep(d)
					}
				case twilio.EventMark:
					echo, _ := json.Marshal(twilio.Message{Event: twilio.EventMark, StreamSid: p.sid, Mark: &twilio.Mark{Name: m.Mark.Name}})
					if err := p.conn.WriteMessage(websocket.TextMessage, echo); err != nil {
						closedAt = time.Since(begin)
					}
				}
				if closedAt != 0 {
					break
				}
			}
			if !tt.slow {
				if closedAt != 0 {
					t.Fatalf("a peer keeping up was closed after %s", closedAt)
				}
				return
			}
			if closedAt == 0 {
				t.Fatal("a peer at half speed was not closed in 7 s")
			}
			var stopEv *bus.Event
			waitFor(t, "stop event", func() bool {
				for _, m := range events.wait(t, 0) {
					if ev, err := bus.DecodeEvent(m); err == nil && ev.Event == bus.EventStop {
						stopEv = ev
						return true
					}
				}
				return false
			})
			if stopEv.Stop.Reason != bus.StopReasonSlowPeer {
				t.Fatalf("stop %+v, want reason slow_peer", stopEv.Stop)
			}
			// Behind by more than lead+1s from about 3 s in, cut 2 s later.
			t.Logf("half-speed peer closed after %s", closedAt.Round(time.Millisecond))
		})
	}
}

func TestPendingLimitIsSizedToTheLead(t *testing.T) {
	got := pendingLimit(2 * time.Second)
	if got < bus.MaxMessageSize || got > bus.MaxMessageSize+256<<10 {
		t.Fatalf("pending limit for a 2 s lead: %d bytes, want the largest message and a few leads (not 64 MiB)", got)
	}
}
