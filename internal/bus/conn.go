package bus

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Inbox prefixes of the product's roles (ConnOptions.InboxPrefix): an
// edge's or a worker's replies arrive under its own prefix, so that the
// NATS permissions of each role (deploy/nats/auth.conf) can allow only its
// own replies, not every client's "_INBOX.>".
const (
	InboxEdge   = "_INBOX_callcast_edge"
	InboxWorker = "_INBOX_callcast_worker"
)

// ConnOptions says how to reach NATS. The zero value connects to
// nats.DefaultURL with no credentials.
type ConnOptions struct {
	// URL is one NATS URL or a comma-separated list of seed URLs.
	URL string
	// Name identifies the connection in NATS monitoring (e.g. "callcast-edge").
	Name string
	// Creds is a path to a NATS credentials file; User/Password and Token are
	// the alternatives. Empty means none.
	Creds    string
	User     string
	Password string
	Token    string
	// InboxPrefix replaces "_INBOX" as the prefix of the subjects replies
	// to this connection's requests go to (InboxEdge, InboxWorker), so that
	// NATS permissions can let each role read only its own replies. Empty:
	// "_INBOX".
	InboxPrefix string
	// InProcess, when set, connects to this embedded server without a socket
	// and URL is ignored.
	InProcess *server.Server
	// Logger receives connection state changes. Nil discards them.
	Logger *slog.Logger
	// OnDisconnect, OnReconnect are called after the logger on those
	// state changes (e.g. to flip readiness). Optional.
	OnDisconnect func()
	OnReconnect  func()
}

// LogValue keeps secrets out of logs.
func (o ConnOptions) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", redactURL(o.URL)),
		slog.String("name", o.Name),
		slog.Bool("creds", o.Creds != ""),
		slog.Bool("user", o.User != ""),
		slog.Bool("token", o.Token != ""),
		slog.Bool("in_process", o.InProcess != nil),
	)
}

// Connect opens a NATS connection that never gives up: if the server is not
// there yet it keeps trying in the background (the returned connection is
// usable and buffers publishes meanwhile), and it reconnects forever.
func Connect(o ConnOptions) (*nats.Conn, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	url := o.URL
	if url == "" {
		url = nats.DefaultURL
	}
	// serverOf names the server nc is connected to. An in-process
	// connection's URL is nats.go's placeholder, not the server's address.
	serverOf := func(nc *nats.Conn) string {
		if o.InProcess != nil {
			return "in-process " + o.InProcess.ClientURL()
		}
		return nc.ConnectedUrlRedacted()
	}
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(8 << 20),
		nats.ConnectHandler(func(nc *nats.Conn) {
			log.Info("nats connected", "name", o.Name, "server", serverOf(nc))
			if o.OnReconnect != nil {
				o.OnReconnect()
			}
		}),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				// Closed (or drained) on purpose: nothing to reconnect.
				log.Debug("nats connection closed", "server", serverOf(nc))
			} else {
				log.Warn("nats disconnected; reconnecting", "err", err)
			}
			if o.OnDisconnect != nil {
				o.OnDisconnect()
			}
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			// Closed by the client library itself, not by Close: say why.
			if err := nc.LastError(); err != nil {
				log.Warn("nats connection closed", "name", o.Name, "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "name", o.Name, "server", serverOf(nc))
			if o.OnReconnect != nil {
				o.OnReconnect()
			}
		}),
		nats.ReconnectErrHandler(func(nc *nats.Conn, err error) {
			log.Warn("nats not reachable yet; retrying", "url", redactURL(url), "err", err)
		}),
		nats.ErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("nats async error", "subject", subject, "err", err)
		}),
	}
	switch {
	case o.Creds != "":
		opts = append(opts, nats.UserCredentials(o.Creds))
	case o.User != "":
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	case o.Token != "":
		opts = append(opts, nats.Token(o.Token))
	}
	if o.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(o.InboxPrefix))
	}
	if o.InProcess != nil {
		opts = append(opts, nats.InProcessServer(o.InProcess))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("bus: connect: %w", err)
	}
	return nc, nil
}

// Close drains nc (finishing in-flight handlers and flushing publishes) and
// waits, up to timeout, until it is closed.
func Close(nc *nats.Conn, timeout time.Duration) error {
	if nc == nil || nc.IsClosed() {
		return nil
	}
	closed := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(closed) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		if errors.Is(err, nats.ErrConnectionClosed) {
			return nil
		}
		return fmt.Errorf("bus: drain: %w", err)
	}
	select {
	case <-closed:
		return nil
	case <-time.After(timeout):
		nc.Close()
		return fmt.Errorf("bus: drain: timed out after %s", timeout)
	}
}

func redactURL(url string) string {
	parts := strings.Split(url, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if s := strings.Index(p, "://"); s >= 0 && s < at {
				parts[i] = p[:s+3] + "[redacted]" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}
