package callsim

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/callcast/callcast/internal/twilio"
)

// This file holds the server side of the tests: a tiny WebSocket server in
// the role of the product, which reads what the simulated call sends and
// sends media, mark and clear back.

// testServer accepts simulated calls and hands each to the test as a peer.
type testServer struct {
	srv   *httptest.Server
	url   string
	peers chan *peer
	wg    sync.WaitGroup

	mu  sync.Mutex
	all []*peer
}

func newTestServer(t *testing.T, tlsServer bool) *testServer {
	t.Helper()
	s := &testServer{peers: make(chan *peer, 100)}
	up := websocket.Upgrader{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/media-stream" {
			http.NotFound(w, r)
			return
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		p := &peer{ws: ws, header: r.Header.Clone(), frames: make(chan frame, 1<<14), lastSeq: 1}
		s.mu.Lock()
		s.all = append(s.all, p)
		s.mu.Unlock()
		s.wg.Add(1)
		s.peers <- p
		defer s.wg.Done()
		p.readLoop()
	})
	s.srv = quietServer(h, tlsServer)
	if tlsServer {
		s.url = "wss" + strings.TrimPrefix(s.srv.URL, "https") + "/media-stream"
	} else {
		s.url = "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/media-stream"
	}
	t.Cleanup(func() {
		s.mu.Lock()
		for _, p := range s.all {
			p.ws.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		s.srv.Close()
	})
	return s
}

// accept returns the next connected peer.
func (s *testServer) accept(t *testing.T) *peer {
	t.Helper()
	select {
	case p := <-s.peers:
		return p
	case <-time.After(5 * time.Second):
		t.Fatal("no call connected")
		return nil
	}
}

// frame is one WebSocket message received by the server, parsed with the
// product's parser when it is text.
type frame struct {
	typ  int
	data []byte
	at   time.Time
	msg  *twilio.Message
	err  error
}

// peer is the server's end of one call. The test goroutine is its only
// writer; readLoop, run by the handler, is its reader.
type peer struct {
	ws     *websocket.Conn
	header http.Header
	frames chan frame

	closeErr error // set before frames is closed

	mu      sync.Mutex
	seqErr  []string
	lastSeq int // start is 1
}

func (p *peer) readLoop() {
	defer close(p.frames)
	for {
		typ, data, err := p.ws.ReadMessage()
		if err != nil {
			p.closeErr = err
			return
		}
		f := frame{typ: typ, data: data, at: time.Now()}
		if typ == websocket.TextMessage {
			f.msg, f.err = twilio.ParseMessage(data)
			if f.msg != nil && f.msg.Event != twilio.EventConnected && f.msg.Event != twilio.EventStart {
				// Every message after start continues one sequence.
				p.mu.Lock()
				if f.msg.SequenceNumber != strconv.Itoa(p.lastSeq+1) {
					p.seqErr = append(p.seqErr, f.msg.SequenceNumber+" after "+strconv.Itoa(p.lastSeq))
				}
				p.lastSeq, _ = strconv.Atoi(f.msg.SequenceNumber)
				p.mu.Unlock()
			}
		}
		p.frames <- f
	}
}

// next returns the next frame; ok is false once the socket is closed.
func (p *peer) next(t *testing.T) (f frame, ok bool) {
	t.Helper()
	select {
	case f, ok = <-p.frames:
		if ok && f.err != nil {
			t.Errorf("product parser rejects %s: %v", f.data, f.err)
		}
		return f, ok
	case <-time.After(5 * time.Second):
		t.Fatal("no message from the call within 5 s")
		return frame{}, false
	}
}

// expect returns the next message with event ev, skipping caller media
// (unless ev is media). Any other event in between fails the test.
func (p *peer) expect(t *testing.T, ev string) frame {
	t.Helper()
	for {
		f, ok := p.next(t)
		if !ok {
			t.Fatalf("socket closed while waiting for %s (%v)", ev, p.closeErr)
		}
		if f.msg == nil {
			t.Fatalf("unexpected frame %q", f.data)
		}
		if f.msg.Event == ev {
			return f
		}
		if f.msg.Event != twilio.EventMedia {
			t.Fatalf("got %s while waiting for %s", f.data, ev)
		}
	}
}

// handshake reads connected and start and returns start.
func (p *peer) handshake(t *testing.T) *twilio.Message {
	t.Helper()
	if f := p.expect(t, twilio.EventConnected); f.typ != websocket.TextMessage {
		t.Fatal("connected not in a text frame")
	}
	return p.expect(t, twilio.EventStart).msg
}

// checkSeq fails the test if sequence numbers were not consecutive.
func (p *peer) checkSeq(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.seqErr {
		t.Errorf("sequenceNumber %s", e)
	}
}

func (p *peer) send(t *testing.T, s string) time.Time {
	t.Helper()
	now := time.Now()
	if err := p.ws.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		t.Fatalf("server send: %v", err)
	}
	return now
}

func (p *peer) sendMedia(t *testing.T, sid string, ulaw []byte) time.Time {
	return p.send(t, string(twilio.AppendMedia(nil, sid, ulaw)))
}

func (p *peer) sendMark(t *testing.T, sid, name string) time.Time {
	return p.send(t, string(twilio.AppendMark(nil, sid, name)))
}

func (p *peer) sendClear(t *testing.T, sid string) time.Time {
	return p.send(t, string(twilio.AppendClear(nil, sid)))
}

// keys returns the JSON object in data decoded generically, so tests can
// check field types and that no field is missing or extra.
func keys(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", data, err)
	}
	return m
}

// tone returns n bytes of a recognisable μ-law pattern.
func tone(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*13) | 0x10
	}
	return b
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial starts a call to s and makes sure it is closed at the end.
func dial(t *testing.T, cfg Config) *Call {
	t.Helper()
	c, err := Dial(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serveClip plays the product's part without a *testing.T, for use in a
// goroutine: it takes the next call, waits for start, sends audio (if any)
// and a mark (if named), then reads until the call ends. Failures show up
// in what the call recorded.
func serveClip(s *testServer, audio []byte, mark string) {
	p := <-s.peers
	var sid string
	for f := range p.frames {
		if f.msg != nil && f.msg.Event == twilio.EventStart {
			sid = f.msg.StreamSid
			break
		}
	}
	if sid != "" && audio != nil {
		_ = p.ws.WriteMessage(websocket.TextMessage, twilio.AppendMedia(nil, sid, audio))
	}
	if sid != "" && mark != "" {
		_ = p.ws.WriteMessage(websocket.TextMessage, twilio.AppendMark(nil, sid, mark))
	}
	for range p.frames {
	}
}

// quietServer starts an httptest server that does not log (the TLS tests
// provoke handshake errors on purpose).
func quietServer(h http.Handler, tlsServer bool) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if tlsServer {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	return srv
}
