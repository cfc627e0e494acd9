package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/cli"
	"github.com/callcast/callcast/internal/worker"
)

// Options configures Run: a whole edge process.
type Options struct {
	// Addr is the HTTP listen address (EDGE_ADDR). Ignored when Listener is set.
	Addr     string
	Listener net.Listener
	// NATS says how to reach the bus. An empty NATS.URL runs all-in-one: an
	// embedded NATS server listening on NATSListen, with JetStream storing
	// under NATSStoreDir, plus an in-process worker pool configured by
	// Worker (with Worker.JetStream set: the Object Store audio library and
	// a transcode cache that survives restarts).
	NATS       bus.ConnOptions
	NATSListen string
	// NATSStoreDir is the embedded server's JetStream directory. Default:
	// DefaultStoreDir(), which persists across reboots. If another process
	// holds it, Run fails with an error wrapping ErrStoreLocked that names
	// that process.
	NATSStoreDir string
	Worker       worker.Config
	// Edge configures the edge itself.
	Edge Config
	// DrainTimeout bounds how long calls in progress may run on after ctx is
	// cancelled. Default 30 s.
	DrainTimeout time.Duration
	// Ready, if set, is called with the HTTP address once serving.
	Ready func(addr net.Addr)
	// Logger receives the process's logs. Nil discards them.
	Logger *slog.Logger
}

// allInOne reports whether Run embeds the NATS server and the workers.
func (o Options) allInOne() bool { return o.NATS.URL == "" && o.NATS.InProcess == nil }

// Validate reports a setting Run would refuse, without starting anything:
// the edge's, and all-in-one the embedded server's address and the
// workers'.
func (o Options) Validate() error {
	if err := o.Edge.Validate(); err != nil {
		return err
	}
	if !o.allInOne() {
		// The edge paces its own playbacks to the lead, as the workers do:
		// the same bounds apply.
		if o.Edge.Lead != 0 {
			if err := (worker.Config{Lead: o.Edge.Lead}).Validate(); err != nil {
				return fmt.Errorf("edge: the lead must be one the workers take: %w", err)
			}
		}
		return nil
	}
	if o.NATSListen != "" {
		if _, _, err := net.SplitHostPort(o.NATSListen); err != nil {
			return fmt.Errorf("edge: nats listen address %q: %w", o.NATSListen, err)
		}
	}
	return o.Worker.Validate()
}

// Run runs an edge until ctx is cancelled, then drains it and returns. It
// checks the options (Validate) before it starts anything.
func Run(ctx context.Context, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	reg := cli.NewRegistry()
	o.Edge.Registerer, o.Edge.Gatherer, o.Edge.Logger = reg, reg, log

	var ns *server.Server
	allInOne := o.allInOne()
	if allInOne {
		storeDir := o.NATSStoreDir
		if storeDir == "" {
			var err error
			if storeDir, err = DefaultStoreDir(); err != nil {
				return err
			}
		}
		release, err := lockStoreDir(storeDir)
		if err != nil {
			return err
		}
		defer release()
		ns, err = bus.RunServer(bus.ServerOptions{Listen: o.NATSListen, JetStream: true, StoreDir: storeDir})
		if err != nil {
			return err
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		o.NATS.InProcess = ns
		log.Info("all-in-one: embedded NATS server running", "nats_listen", ns.ClientURL(), "store_dir", storeDir)
	}
	o.NATS.Logger = log
	if o.NATS.Name == "" {
		o.NATS.Name = "callcast-edge"
	}
	o.NATS.InboxPrefix = bus.InboxEdge
	log.Info("connecting to NATS", "nats", o.NATS)
	nc, err := bus.Connect(o.NATS)
	if err != nil {
		return err
	}
	defer bus.Close(nc, 5*time.Second)

	var w *worker.Worker
	if allInOne {
		wopts := o.NATS
		wopts.Name = "callcast-worker"
		wopts.InboxPrefix = bus.InboxWorker
		wnc, err := bus.Connect(wopts)
		if err != nil {
			return err
		}
		defer bus.Close(wnc, 5*time.Second)
		o.Worker.Logger, o.Worker.Registerer = log, reg
		o.Worker.JetStream = true
		w, err = worker.New(wnc, o.Worker)
		if err != nil {
			return err
		}
		if err := w.Start(); err != nil {
			return err
		}
	}

	srv, err := New(nc, o.Edge)
	if err != nil {
		return err
	}
	ln := o.Listener
	if ln == nil {
		ln, err = net.Listen("tcp", o.Addr)
		if err != nil {
			return fmt.Errorf("edge: listen: %w", err)
		}
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("edge listening", "addr", ln.Addr().String(), "public_url", o.Edge.PublicURL, "all_in_one", allInOne)
	if o.Ready != nil {
		o.Ready(ln.Addr())
	}

	select {
	case err := <-serveErr:
		if w != nil {
			_ = w.Shutdown(context.Background())
		}
		return fmt.Errorf("edge: serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", "drain_timeout", o.DrainTimeout)
	drainCtx, cancel := context.WithTimeout(context.Background(), o.DrainTimeout)
	defer cancel()
	errs := []error{srv.Shutdown(drainCtx)}
	if w != nil {
		errs = append(errs, w.Shutdown(drainCtx))
	}
	if err := <-serveErr; err != nil {
		errs = append(errs, err)
	}
	err = errors.Join(errs...)
	log.Info("edge stopped", "err", err)
	return err
}
