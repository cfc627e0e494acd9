package callsim

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"

	"github.com/callcast/callcast/internal/twilio"
)

// FloorConfig configures a Floor. Zero values mean the documented defaults.
type FloorConfig struct {
	// Clip is the audio every call gets: G.711 μ-law, 8000 Hz, mono.
	Clip []byte
	// Chunk is the audio per media message, each followed by a mark.
	// Default 200 ms, as the workers send.
	Chunk time.Duration
	// Lead is how far sending may run ahead of the mark echoes. Default 2 s,
	// as PLAYBACK_LEAD.
	Lead time.Duration
	// Gatherer, if set, is served on /metrics (process CPU and memory, for
	// Load's Metrics).
	Gatherer prometheus.Gatherer
	// Logger receives one line per failed socket. Nil discards.
	Logger *slog.Logger
}

// Floor is the least a server can do for a Twilio media stream, the
// reference callcast's figures are compared with: on start it sends the
// clip, encoded in advance, in Chunk media messages each followed by a
// mark, at once up to Lead ahead of the mark echoes and then one chunk per
// echo. It has no bus, no worker and no transcoding; each socket is served
// by one goroutine, which skips caller media after its first 17 bytes as
// the edge does. It serves any path (WebSocket upgrades) and /metrics.
type Floor struct {
	cfg      FloorConfig
	payloads []string // base64 of each chunk
	ends     []int    // byte offset at the end of each chunk
	srv      *fasthttp.Server
	upgrader websocket.FastHTTPUpgrader
	metrics  fasthttp.RequestHandler

	mu     sync.Mutex
	conns  map[*websocket.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewFloor returns a floor serving cfg.Clip.
func NewFloor(cfg FloorConfig) (*Floor, error) {
	if len(cfg.Clip) == 0 {
		return nil, errors.New("callsim: floor: no clip")
	}
	if cfg.Chunk <= 0 {
		cfg.Chunk = 200 * time.Millisecond
	}
	if cfg.Lead <= 0 {
		cfg.Lead = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Floor{
		cfg:      cfg,
		conns:    map[*websocket.Conn]struct{}{},
		upgrader: websocket.FastHTTPUpgrader{ReadBufferSize: 1024, WriteBufferSize: 1024, CheckOrigin: func(*fasthttp.RequestCtx) bool { return true }},
	}
	step := int(cfg.Chunk.Seconds() * 8000)
	for off := 0; off < len(cfg.Clip); off += step {
		end := min(off+step, len(cfg.Clip))
		f.payloads = append(f.payloads, base64.StdEncoding.EncodeToString(cfg.Clip[off:end]))
		f.ends = append(f.ends, end)
	}
	if cfg.Gatherer != nil {
		f.metrics = fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	f.srv = &fasthttp.Server{Handler: f.handle, NoDefaultServerHeader: true}
	return f, nil
}

// Serve accepts connections on ln until Shutdown; it then returns nil.
func (f *Floor) Serve(ln net.Listener) error {
	err := f.srv.Serve(ln)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	return err
}

// Shutdown stops accepting, closes the sockets in progress and waits for
// their goroutines, or for ctx.
func (f *Floor) Shutdown(ctx context.Context) error {
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		// Close is a no-op on fasthttp's hijacked connections (they are
		// closed when their handler returns): a deadline in the past ends
		// the handler's read instead.
		_ = c.NetConn().SetDeadline(time.Unix(1, 0))
	}
	f.mu.Unlock()
	err := f.srv.ShutdownWithContext(ctx)
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return err
}

func (f *Floor) handle(ctx *fasthttp.RequestCtx) {
	if string(ctx.Path()) == "/metrics" && f.metrics != nil {
		f.metrics(ctx)
		return
	}
	if !websocket.FastHTTPIsWebSocketUpgrade(ctx) {
		ctx.Error("media stream: WebSocket upgrade required", fasthttp.StatusUpgradeRequired)
		return
	}
	// The upgrade hands the socket to serve after this handler returns:
	// count it now, so that Shutdown waits for it.
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		ctx.Error("shutting down", fasthttp.StatusServiceUnavailable)
		return
	}
	f.wg.Add(1)
	f.mu.Unlock()
	err := f.upgrader.Upgrade(ctx, func(c *websocket.Conn) {
		defer f.wg.Done()
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			_ = c.Close()
			return
		}
		f.conns[c] = struct{}{}
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			delete(f.conns, c)
			f.mu.Unlock()
			_ = c.Close()
		}()
		if err := f.serve(c); err != nil {
			f.cfg.Logger.Info("floor: socket ended", "err", err)
		}
	})
	if err != nil {
		f.wg.Done()
	}
}

// floorMark prefixes the floor's mark names, followed by the chunk's index.
const floorMark = "floor:"

// serve plays the clip into one call, paced by its mark echoes, until the
// caller stops or the socket closes.
func (f *Floor) serve(c *websocket.Conn) error {
	var (
		sid        string
		next       int // index of the next chunk to send
		heard      int // bytes the caller has heard, by the echoes
		buf        []byte
		head       [len(mediaPrefix)]byte
		leadBytes  = int(f.cfg.Lead.Seconds() * 8000)
		readBuffer bytes.Buffer
	)
	send := func() error {
		for next < len(f.payloads) {
			start := 0
			if next > 0 {
				start = f.ends[next-1]
			}
			if start-heard >= leadBytes {
				return nil
			}
			buf = twilio.AppendMediaBase64(buf[:0], sid, f.payloads[next])
			if err := c.WriteMessage(websocket.TextMessage, buf); err != nil {
				return err
			}
			buf = twilio.AppendMark(buf[:0], sid, floorMark+strconv.Itoa(next))
			if err := c.WriteMessage(websocket.TextMessage, buf); err != nil {
				return err
			}
			next++
		}
		return nil
	}
	for {
		mt, r, err := c.NextReader()
		if err != nil {
			if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
				return nil
			}
			return err
		}
		if mt != websocket.TextMessage {
			continue
		}
		// Caller media, 50 a second: skipped after its first bytes.
		n, _ := io.ReadFull(r, head[:])
		if sid != "" && n == len(head) && string(head[:]) == mediaPrefix {
			continue
		}
		readBuffer.Reset()
		readBuffer.Write(head[:n])
		if _, err := readBuffer.ReadFrom(r); err != nil {
			return err
		}
		m, err := twilio.ParseMessage(readBuffer.Bytes())
		if err != nil {
			continue
		}
		switch m.Event {
		case twilio.EventStart:
			if sid != "" {
				continue
			}
			sid = m.StreamSid
			if err := send(); err != nil {
				return err
			}
		case twilio.EventMark:
			i, err := strconv.Atoi(strings.TrimPrefix(m.Mark.Name, floorMark))
			if err != nil || i < 0 || i >= len(f.ends) {
				continue
			}
			heard = max(heard, f.ends[i])
			if err := send(); err != nil {
				return err
			}
		case twilio.EventStop:
			return nil
		}
	}
}

// mediaPrefix starts every media message Twilio sends.
const mediaPrefix = `{"event":"media",`
