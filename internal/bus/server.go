package bus

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerOptions configures the embedded NATS server. The zero value listens
// on 127.0.0.1:4222 without JetStream.
type ServerOptions struct {
	// Listen is host:port for client connections; "" means 127.0.0.1:4222,
	// and port 0 (or "-1") picks a free port. Set NoListen to accept only
	// in-process connections.
	Listen   string
	NoListen bool
	// JetStream enables JetStream, storing under StoreDir (a temporary
	// directory when empty).
	JetStream bool
	StoreDir  string
	// Debug turns on the server's own logging to stderr.
	Debug bool
}

// RunServer starts an embedded NATS server and waits until it accepts
// connections. Stop it with Shutdown then WaitForShutdown.
func RunServer(o ServerOptions) (*server.Server, error) {
	opts := &server.Options{
		ServerName: "callcast-embedded",
		NoSigs:     true,
		NoLog:      !o.Debug,
		JetStream:  o.JetStream,
		StoreDir:   o.StoreDir,
	}
	if o.NoListen {
		opts.DontListen = true
	} else {
		listen := o.Listen
		if listen == "" {
			listen = "127.0.0.1:4222"
		}
		host, portStr, err := net.SplitHostPort(listen)
		if err != nil {
			return nil, fmt.Errorf("bus: nats listen address %q: %w", listen, err)
		}
		port, err := strconv.Atoi(portStr)
		if err != nil {
			return nil, fmt.Errorf("bus: nats listen port %q: %w", portStr, err)
		}
		if port == 0 {
			port = server.RANDOM_PORT
		} else {
			// The server reports a failed listen only in its own log, and
			// then never gets ready: try the address first, so that a port
			// in use is said at once, in so many words.
			ln, err := net.Listen("tcp", net.JoinHostPort(host, portStr))
			if err != nil {
				return nil, fmt.Errorf("bus: nats server: %w", err)
			}
			ln.Close()
		}
		opts.Host, opts.Port = host, port
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("bus: nats server: %w", err)
	}
	if o.Debug {
		ns.ConfigureLogger()
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("bus: nats server not ready (listen %s)", o.Listen)
	}
	return ns, nil
}
