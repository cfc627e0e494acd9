package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/cli"
)

// RunOptions configures Run: a whole worker process.
type RunOptions struct {
	NATS bus.ConnOptions
	// Worker configures the worker; Run sets its JetStream, Logger and
	// Registerer.
	Worker Config
	// HTTPAddr serves /healthz, /readyz and /metrics. Empty: none.
	HTTPAddr string
	// DrainTimeout bounds how long playbacks in flight may run on after ctx
	// is cancelled. Default 30 s.
	DrainTimeout time.Duration
	// Ready, if set, is called with the HTTP address once serving (nil when
	// HTTPAddr is empty).
	Ready  func(addr net.Addr)
	Logger *slog.Logger
}

// Validate reports a setting Run would refuse, without starting anything.
func (o RunOptions) Validate() error {
	return o.Worker.Validate()
}

// Run runs a worker process until ctx is cancelled, then drains it. It
// checks the options (Validate) before it starts anything.
func Run(ctx context.Context, o RunOptions) error {
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
	o.NATS.Logger = log
	if o.NATS.Name == "" {
		o.NATS.Name = "callcast-worker"
	}
	o.NATS.InboxPrefix = bus.InboxWorker
	log.Info("connecting to NATS", "nats", o.NATS)
	nc, err := bus.Connect(o.NATS)
	if err != nil {
		return err
	}
	defer bus.Close(nc, 5*time.Second)

	reg := cli.NewRegistry()
	o.Worker.Logger, o.Worker.Registerer = log, reg
	o.Worker.JetStream = true
	w, err := New(nc, o.Worker)
	if err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return err
	}

	var hs *http.Server
	serveErr := make(chan error, 1)
	if o.HTTPAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprintln(rw, "ok") })
		mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, _ *http.Request) {
			if !nc.IsConnected() {
				http.Error(rw, "nats: "+nc.Status().String(), http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(rw, "ok")
		})
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		ln, err := net.Listen("tcp", o.HTTPAddr)
		if err != nil {
			_ = w.Shutdown(context.Background())
			return fmt.Errorf("worker: listen: %w", err)
		}
		hs = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { serveErr <- hs.Serve(ln) }()
		log.Info("worker http listening", "addr", ln.Addr().String())
		if o.Ready != nil {
			o.Ready(ln.Addr())
		}
	} else if o.Ready != nil {
		o.Ready(nil)
	}

	select {
	case err := <-serveErr:
		_ = w.Shutdown(context.Background())
		return fmt.Errorf("worker: http: %w", err)
	case <-ctx.Done():
	}
	log.Info("worker draining", "playbacks", w.Active(), "drain_timeout", o.DrainTimeout)
	drainCtx, cancel := context.WithTimeout(context.Background(), o.DrainTimeout)
	defer cancel()
	errs := []error{w.Shutdown(drainCtx)}
	if hs != nil {
		errs = append(errs, hs.Shutdown(drainCtx))
		if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	err = errors.Join(errs...)
	log.Info("worker stopped", "err", err)
	return err
}
