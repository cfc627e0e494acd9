// Package edge terminates Twilio Media Streams WebSockets and bridges them to
// the bus: it serves the TwiML webhook that opens a stream, publishes every
// start on bus.SubjectStreamStarted, relays what arrives on the stream's
// bus.StreamOut subject down its socket as Twilio's outbound JSON, and
// publishes the call's events (mark echoes, dtmf, stop) on bus.StreamEvents.
// It queues the call's own audio itself at start (Config.DefaultAudio), and
// plays the file playbacks whose μ-law it holds from an earlier playback
// itself, without a worker (audiocache.go).
package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twilio/twilio-go/client"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/library"
	"github.com/callcast/callcast/internal/twilio"
)

// Paths served by the edge.
const (
	PathStatus       = "/"
	PathIncomingCall = "/incoming-call"
	PathMediaStream  = "/media-stream"
	PathHealthz      = "/healthz"
	PathReadyz       = "/readyz"
	PathMetrics      = "/metrics"
)

// Config configures a Server. Zero values mean the documented defaults.
type Config struct {
	// ID names this edge in bus messages and logs. Default: hostname-pid.
	ID string
	// PublicURL is the edge's public base URL (https://voice.example.com),
	// used to build the stream URL in the TwiML. Empty: the request's host,
	// with wss:// unless it is a loopback host reached over plain HTTP.
	PublicURL string
	// TrustProxy honours X-Forwarded-Host and X-Forwarded-Proto when
	// PublicURL is empty. Only enable it behind a proxy you run.
	TrustProxy bool
	// Say, when set, is spoken by Twilio before the stream connects.
	Say string
	// AuthToken is the Twilio account's auth token. When set, the webhook
	// and the WebSocket upgrade must carry a valid X-Twilio-Signature,
	// else they are answered 403. Empty: nothing is verified.
	AuthToken string
	// ReadLimit caps one inbound WebSocket message. Default 64 KiB.
	ReadLimit int64
	// SendQueue is the number of outbound messages buffered per socket.
	// Default 64 (6.4 s of 200 ms media messages and their marks).
	SendQueue int
	// SendTimeout is how long a relay waits on a full send queue before the
	// socket is judged dead and closed. Default 5 s.
	SendTimeout time.Duration
	// Lead is how far playbacks may run ahead of what the caller has heard
	// (PLAYBACK_LEAD). It sizes the per-stream bus buffer and the slow-peer
	// rule, and paces the playbacks the edge sends itself (streamed
	// playbacks, producer media on .out). Default 2 s.
	Lead time.Duration
	// SlowPeerAfter is how long a peer may stay more than Lead (and a
	// second's slack) behind real time, by its mark echoes, before it is
	// closed with stop reason slow_peer. Default 10 s.
	SlowPeerAfter time.Duration
	// StartTimeout is how long a new socket may go without a start. Default 10 s.
	StartTimeout time.Duration
	// ReadTimeout is how long an started socket may go without a message
	// (Twilio sends caller audio every 20 ms). Default 30 s.
	ReadTimeout time.Duration
	// WriteTimeout bounds one WebSocket write. Default 10 s.
	WriteTimeout time.Duration
	// RenderTimeout is how long a worker may take to accept a playback, and
	// how long it may go silent mid-playback before another worker takes
	// over from the last byte relayed. Default 2 s.
	RenderTimeout time.Duration
	// RenderAttempts bounds the workers tried for one playback. Default 3.
	RenderAttempts int
	// MaxQueuedPlaybacks bounds the playbacks waiting on one call behind
	// the one playing (MAX_QUEUED_PLAYBACKS). A play request past it is
	// answered queue_full and changes nothing. Default 100.
	MaxQueuedPlaybacks int
	// StreamIdleTimeout fails a streamed playback (code stalled) whose
	// producer sent neither audio nor the end for this long
	// (STREAM_IDLE_TIMEOUT). Default 10 s.
	StreamIdleTimeout time.Duration
	// StreamBufferBytes bounds the bytes all streamed playbacks (and
	// producer media on .out) hold ahead of playout on this edge, undecoded
	// and μ-law (STREAM_BUFFER_BYTES): a playback whose audio would take
	// more fails with bus.CodeTooLarge. Default DefaultStreamBufferBytes;
	// negative: no bound but each playback's own.
	StreamBufferBytes int64
	// CallerAudio says when a call's audio is published on bus.StreamIn:
	// CallerAudioListen (the default, ""), CallerAudioOn or CallerAudioOff.
	CallerAudio string
	// CallerAudioBatch is how much caller audio one bus.StreamIn message
	// holds at most: 20 ms (the default, one Twilio frame) to 200 ms.
	CallerAudioBatch time.Duration
	// ListenLease is the lease a bus.StreamListen request gets when it asks
	// for no length. Default 10 s; 1 s to 1 min.
	ListenLease time.Duration
	// DefaultAudio is the call's own audio when its start names none
	// (customParameters.audio); NoAudio plays nothing. When set, the edge
	// queues the call's own audio itself at start, and tells the workers so
	// (bus.StreamStarted.AudioByEdge). Empty: the edge leaves it to a
	// worker, which queues it on the edge through bus.StreamPlay.
	DefaultAudio string
	// AudioCacheBytes bounds the edge's cache of the μ-law of audio it has
	// played (EDGE_CACHE_BYTES): a file playback whose audio is in it is
	// played by the edge itself, without a worker. 0: no cache.
	AudioCacheBytes int64
	// AudioCacheTTL is how long a cached audio is played after it was
	// filled (EDGE_CACHE_TTL); after it, the next playback of that audio
	// goes to a worker again, and fills the cache anew. Default 30 s. A
	// change to the library's object of that name, which the edge hears on
	// library.AudioChanges, drops it sooner.
	AudioCacheTTL time.Duration
	// VAD, "on" (the default, "") or "off", runs a voice-activity detector
	// on every call's audio: speech.* events and barge-in.
	VAD string
	// Logger receives the edge's logs. Nil discards them.
	Logger *slog.Logger
	// Registerer receives the edge's metrics; Gatherer serves /metrics.
	// Nil: a private registry.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
}

// Validate reports a setting New would refuse, without starting anything.
func (c Config) Validate() error {
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return fmt.Errorf("edge: PUBLIC_URL %q must be an absolute http(s) URL", c.PublicURL)
		}
	}
	return c.checkCallerConfig()
}

func (c *Config) setDefaults() {
	if c.ReadLimit <= 0 {
		c.ReadLimit = 64 << 10
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 64
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 5 * time.Second
	}
	if c.Lead <= 0 {
		c.Lead = 2 * time.Second
	}
	if c.SlowPeerAfter <= 0 {
		c.SlowPeerAfter = 10 * time.Second
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 10 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.RenderTimeout <= 0 {
		c.RenderTimeout = 2 * time.Second
	}
	if c.RenderAttempts <= 0 {
		c.RenderAttempts = 3
	}
	if c.MaxQueuedPlaybacks <= 0 {
		c.MaxQueuedPlaybacks = 100
	}
	if c.StreamIdleTimeout <= 0 {
		c.StreamIdleTimeout = 10 * time.Second
	}
	if c.StreamBufferBytes == 0 {
		c.StreamBufferBytes = DefaultStreamBufferBytes
	}
	if c.AudioCacheTTL <= 0 {
		c.AudioCacheTTL = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		reg := prometheus.NewRegistry()
		c.Registerer, c.Gatherer = reg, reg
	}
	if c.Gatherer == nil {
		c.Gatherer = prometheus.DefaultGatherer
	}
}

// Server is an edge. Create it with New, serve with Serve, stop with Shutdown.
type Server struct {
	cfg       Config
	nc        *nats.Conn
	log       *slog.Logger
	app       *fiber.App
	metrics   *metrics
	validator *client.RequestValidator // nil: signatures not checked
	cache     *audioCache              // nil: none

	draining atomic.Bool
	mu       sync.Mutex
	sessions map[*session]struct{}
	streams  map[string]*session // by streamSid, once started
	idle     chan struct{}       // closed when sessions becomes empty while draining
	wg       sync.WaitGroup

	// Play requests of every stream arrive on one channel, served by one
	// goroutine started with the first stream.
	plays chan *nats.Msg
	// alive is this process's bus.EdgeAlive subject, subscribed from New
	// to the end of Shutdown: workers check there that it still runs.
	alive    string
	aliveSub *nats.Subscription
	// changesSub hears library.AudioChanges while there is a cache.
	changesSub *nats.Subscription
	callsSub   *nats.Subscription // bus.SubjectCalls (calls.go)
	playsOnce  sync.Once
	playsQuit  chan struct{}
	// streamURLOnce logs the first stream URL the webhook hands out.
	streamURLOnce sync.Once
	playsDone     chan struct{}
}

// New returns an edge that uses nc for the bus.
func New(nc *nats.Conn, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if err := cfg.checkCallerConfig(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	cache, err := newAudioCache(cfg.AudioCacheBytes, cfg.AudioCacheTTL, cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		nc:        nc,
		log:       cfg.Logger,
		metrics:   m,
		sessions:  make(map[*session]struct{}),
		streams:   make(map[string]*session),
		validator: newValidator(cfg.AuthToken),
		cache:     cache,
		alive:     bus.EdgeAlive(nuid.Next()),
	}
	// Its messages need no answer: that the subscription exists is what
	// the workers ask NATS.
	if s.aliveSub, err = nc.Subscribe(s.alive, func(*nats.Msg) {}); err != nil {
		return nil, fmt.Errorf("edge: subscribe %s: %w", s.alive, err)
	}
	if err := s.subscribeCalls(); err != nil {
		_ = s.aliveSub.Unsubscribe()
		return nil, err
	}
	if cache != nil {
		// Changes to the library's audio drop what the cache holds of it.
		if s.changesSub, err = nc.Subscribe(library.AudioChanges, s.audioChanged); err != nil {
			_ = s.aliveSub.Unsubscribe()
			_ = s.callsSub.Unsubscribe()
			return nil, fmt.Errorf("edge: subscribe %s: %w", library.AudioChanges, err)
		}
	}
	// The server has the subscriptions before the edge serves: a request
	// on callcast.calls made once it is up finds it. (Without the server,
	// they are registered when the connection is.)
	_ = nc.FlushTimeout(2 * time.Second)
	if s.validator == nil {
		s.log.Warn("TWILIO_AUTH_TOKEN is not set: webhook and media stream requests are NOT verified to come from Twilio; anyone who finds this edge can open streams")
	}
	s.app = fiber.New(fiber.Config{
		DisableStartupMessage: true,
		ReadTimeout:           15 * time.Second,
		WriteTimeout:          15 * time.Second,
		IdleTimeout:           60 * time.Second,
		BodyLimit:             64 << 10,
		ErrorHandler:          s.httpError,
	})
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	s.app.Get(PathStatus, s.status)
	s.app.Get(PathHealthz, func(c *fiber.Ctx) error { return c.SendString("ok\n") })
	s.app.Get(PathReadyz, s.readyz)
	s.app.Get(PathMetrics, adaptor.HTTPHandler(promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{})))
	s.app.Get(PathIncomingCall, s.verifyTwilio, s.incomingCall)
	s.app.Post(PathIncomingCall, s.verifyTwilio, s.incomingCall)
	s.app.Get(PathMediaStream, s.upgradeGate, s.verifyTwilio, websocket.New(s.handleSocket, websocket.Config{
		HandshakeTimeout: 10 * time.Second,
		RecoverHandler:   s.recoverSocket,
	}))
}

// App returns the edge's Fiber application (for tests that serve it on an
// in-memory listener).
func (s *Server) App() *fiber.App { return s.app }

// Serve accepts connections on ln until Shutdown. It returns nil after a
// Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.app.Listener(ln)
	if s.draining.Load() {
		return nil
	}
	return err
}

// Shutdown stops taking new calls (the webhook and upgrade answer 503, so
// Twilio can fail over), lets the calls in progress run until they end or
// ctx is done, then closes the rest and stops the HTTP server.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.draining.Swap(true) {
		s.idle = make(chan struct{})
		if len(s.sessions) == 0 {
			close(s.idle)
		}
	}
	idle := s.idle
	n := len(s.sessions)
	s.mu.Unlock()
	s.log.Info("edge draining", "streams", n)

	select {
	case <-idle:
	case <-ctx.Done():
		s.mu.Lock()
		left := make([]*session, 0, len(s.sessions))
		for ss := range s.sessions {
			left = append(left, ss)
		}
		s.mu.Unlock()
		s.log.Warn("edge drain deadline passed; closing calls", "streams", len(left))
		for _, ss := range left {
			ss.abort(errShutdown)
		}
	}
	s.wg.Wait()
	if s.plays != nil {
		// Not close(s.plays): a send from NATS's reader must never panic.
		close(s.playsQuit)
		<-s.playsDone
	}
	// Every call has ended: workers may now learn that this edge is gone.
	err := s.aliveSub.Unsubscribe()
	if errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrBadSubscription) {
		err = nil // gone from the bus already, or shut down before
	}
	_ = s.callsSub.Unsubscribe()
	if s.changesSub != nil {
		_ = s.changesSub.Unsubscribe()
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if herr := s.app.ShutdownWithContext(shutCtx); herr != nil {
		return fmt.Errorf("edge: shutdown http: %w", herr)
	}
	if err != nil {
		return fmt.Errorf("edge: unsubscribe %s: %w", s.alive, err)
	}
	return nil
}

// Streams returns the number of sockets open now.
func (s *Server) Streams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *Server) httpError(c *fiber.Ctx, err error) error {
	code := fiber.StatusInternalServerError
	var fe *fiber.Error
	if errors.As(err, &fe) {
		code = fe.Code
	}
	if code >= 500 {
		s.log.Error("http request failed", "path", c.Path(), "status", code, "err", err)
	}
	return c.Status(code).SendString(fmt.Sprintf("%d %s\n", code, fiber.ErrInternalServerError.Message))
}

func (s *Server) status(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{
		"service": "callcast-edge",
		"edge":    s.cfg.ID,
		"streams": s.Streams(),
		"nats":    s.nc.Status().String(),
		"ready":   s.ready(),
	})
}

func (s *Server) ready() bool { return !s.draining.Load() && s.nc.IsConnected() }

func (s *Server) readyz(c *fiber.Ctx) error {
	switch {
	case s.draining.Load():
		return c.Status(fiber.StatusServiceUnavailable).SendString("draining\n")
	case !s.nc.IsConnected():
		return c.Status(fiber.StatusServiceUnavailable).SendString("nats: " + s.nc.Status().String() + "\n")
	}
	return c.SendString("ok\n")
}

// incomingCall answers Twilio's voice webhook with TwiML that connects the
// call to this edge's media stream.
func (s *Server) incomingCall(c *fiber.Ctx) error {
	// A call connected to an edge that cannot reach the bus would stay
	// silent: a 503 lets Twilio take the number's fallback URL instead.
	switch {
	case s.draining.Load():
		return c.Status(fiber.StatusServiceUnavailable).SendString("draining\n")
	case !s.nc.IsConnected():
		s.metrics.errors.WithLabelValues("webhook_no_nats").Inc()
		return c.Status(fiber.StatusServiceUnavailable).SendString("nats: " + s.nc.Status().String() + "\n")
	}
	params := map[string]string{}
	audio := c.FormValue("audio")
	if audio == "" {
		audio = c.Query("audio")
	}
	if audio != "" {
		params["audio"] = audio
	}
	streamURL := s.streamURL(c)
	doc, err := twilio.ConnectStream(streamURL, params, s.cfg.Say)
	if err != nil {
		return fiber.NewError(fiber.StatusBadRequest, err.Error())
	}
	s.logStreamURL(c, streamURL)
	c.Set(fiber.HeaderContentType, "application/xml; charset=utf-8")
	return c.SendString(doc)
}

// publicBase is the scheme and host (and PUBLIC_URL's path prefix) Twilio
// uses to reach this edge: PUBLIC_URL when set, else the request's (with
// TrustProxy, its X-Forwarded-* headers).
func (s *Server) publicBase(c *fiber.Ctx) string {
	if s.cfg.PublicURL != "" {
		return strings.TrimSuffix(s.cfg.PublicURL, "/")
	}
	host := string(c.Request().Host())
	proto := "http"
	if c.Context().IsTLS() {
		proto = "https"
	}
	if s.cfg.TrustProxy {
		if h := firstValue(c.Get(fiber.HeaderXForwardedHost)); h != "" {
			host = h
		}
		if p := firstValue(c.Get(fiber.HeaderXForwardedProto)); p != "" {
			proto = strings.ToLower(p)
		}
	}
	return proto + "://" + host
}

// streamURL is the URL of this edge's media stream as Twilio must see it.
// Twilio connects media streams only over wss://, so the scheme is wss://
// unless the public base is plain http:// and either PUBLIC_URL says so or,
// without PUBLIC_URL, the host is a loopback one (where only a local test
// double connects). A request over plain HTTP for any other host came
// through a tunnel or proxy that terminates TLS (ngrok, cloudflared).
func (s *Server) streamURL(c *fiber.Ctx) string {
	base := s.publicBase(c)
	if rest, ok := strings.CutPrefix(base, "https://"); ok {
		return "wss://" + rest + PathMediaStream
	}
	rest := strings.TrimPrefix(base, "http://")
	if s.cfg.PublicURL == "" && !loopbackHost(rest) {
		return "wss://" + rest + PathMediaStream
	}
	return "ws://" + rest + PathMediaStream
}

// loopbackHost reports whether host (with or without a port) is localhost
// or a loopback address.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// logStreamURL logs, once per edge, the stream URL the webhook hands out
// and where its host came from, so a first call that stays silent can be
// told from a wrong address at a glance.
func (s *Server) logStreamURL(c *fiber.Ctx, streamURL string) {
	s.streamURLOnce.Do(func() {
		from := "request Host"
		switch {
		case s.cfg.PublicURL != "":
			from = "PUBLIC_URL"
		case s.cfg.TrustProxy && c.Get(fiber.HeaderXForwardedHost) != "":
			from = "X-Forwarded-Host"
		}
		if strings.HasPrefix(streamURL, "ws://") {
			s.log.Warn("webhook answered: media streams are sent to a ws:// URL, which Twilio does not connect to (local test doubles only); set PUBLIC_URL to the https address Twilio reaches",
				"stream_url", streamURL, "from", from)
			return
		}
		s.log.Info("webhook answered: media streams are sent to this URL", "stream_url", streamURL, "from", from)
	})
}

func firstValue(h string) string {
	if i := strings.IndexByte(h, ','); i >= 0 {
		h = h[:i]
	}
	return strings.TrimSpace(h)
}

// upgradeGate runs before the WebSocket upgrade.
func (s *Server) upgradeGate(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return fiber.NewError(fiber.StatusUpgradeRequired, "websocket upgrade required")
	}
	if s.draining.Load() {
		return c.Status(fiber.StatusServiceUnavailable).SendString("draining\n")
	}
	return c.Next()
}

// recoverSocket replaces contrib/websocket's default, which writes a JSON
// error to the peer: Twilio rejects any message it does not know.
func (s *Server) recoverSocket(c *websocket.Conn) {
	if r := recover(); r != nil {
		s.metrics.errors.WithLabelValues("panic").Inc()
		s.log.Error("panic in media stream handler; socket closed", "panic", r)
		_ = c.Close()
	}
}

// track registers a new session, or refuses it while draining.
func (s *Server) track(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		return false
	}
	s.sessions[ss] = struct{}{}
	s.wg.Add(1)
	s.metrics.sockets.Inc()
	return true
}

func (s *Server) untrack(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss)
	if ss.sid != "" && s.streams[ss.sid] == ss {
		delete(s.streams, ss.sid)
	}
	if s.draining.Load() && len(s.sessions) == 0 {
		select {
		case <-s.idle:
		default:
			close(s.idle)
		}
	}
	s.mu.Unlock()
	s.metrics.sockets.Dec()
	s.wg.Done()
}

// playRequests returns the channel the streams' play subscriptions feed,
// starting its server on first use.
func (s *Server) playRequests() chan *nats.Msg {
	s.playsOnce.Do(func() {
		s.plays = make(chan *nats.Msg, 1024)
		s.playsQuit = make(chan struct{})
		s.playsDone = make(chan struct{})
		go func() {
			defer close(s.playsDone)
			for {
				select {
				case msg := <-s.plays:
					s.servePlay(msg)
				case <-s.playsQuit:
					return
				}
			}
		}()
	})
	return s.plays
}

// servePlay hands a play request to the controller of its stream.
func (s *Server) servePlay(msg *nats.Msg) {
	if strings.HasSuffix(msg.Subject, ".listen") {
		s.serveListen(msg) // bus.StreamListen requests share the channel
		return
	}
	sid := strings.TrimSuffix(strings.TrimPrefix(msg.Subject, "callcast.stream."), ".play")
	s.mu.Lock()
	ss := s.streams[sid]
	s.mu.Unlock()
	if ss == nil || ss.ctl == nil {
		data, _ := json.Marshal(bus.ErrorReply(bus.CodeUnknownStream, "the stream has ended"))
		_ = msg.Respond(data)
		return
	}
	ss.ctl.onEnqueue(msg)
}

// claim records ss as the holder of sid; false if another socket holds it.
func (s *Server) claim(ss *session, sid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.streams[sid]; taken {
		return false
	}
	s.streams[sid] = ss
	return true
}
