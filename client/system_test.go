package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/callsim"
	"github.com/callcast/callcast/internal/edge"
	"github.com/callcast/callcast/internal/worker"
)

// natsURL is the NATS server of the product the examples run against.
var natsURL string

// exampleCalls are the live calls of the examples: stream SID, the
// customer parameter, playout speed.
var exampleCalls = []struct {
	sid, customer string
	speed         float64
}{
	{"MZplay01", "ada", 20},
	{"MZstream01", "grace", 20},
	{"MZevents01", "alan", 20},
	{"MZclear01", "barbara", 1},
	{"MZlisten01", "edsger", 20},
	{"MZlibrary01", "frances", 20},
}

// promptFile is a 1.5 s μ-law WAV file outside the worker's audio
// directory, which ExampleLibrary uploads to the shared audio library.
var promptFile string

func TestMain(m *testing.M) {
	stop, err := startSystem()
	if err != nil {
		fmt.Fprintln(os.Stderr, "client tests: start the product:", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, "client tests: stop the product:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// startSystem runs NATS, a worker, an edge and the examples' calls, and
// returns what stops them all.
func startSystem() (stop func() error, err error) {
	var stops []func() error
	stop = func() error {
		var errs []error
		for i := len(stops) - 1; i >= 0; i-- {
			if err := stops[i](); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			_ = stop()
		}
	}()

	dir, err := os.MkdirTemp("", "callcast-client-")
	if err != nil {
		return nil, err
	}
	stops = append(stops, func() error { return os.RemoveAll(dir) })
	for name, d := range map[string]time.Duration{"hello.wav": time.Second, "long.wav": 20 * time.Second} {
		if err := writeToneWAV(filepath.Join(dir, name), d); err != nil {
			return nil, err
		}
	}
	promptFile = filepath.Join(dir, "prompt", "thanks.wav")
	if err := os.Mkdir(filepath.Dir(promptFile), 0o755); err != nil {
		return nil, err
	}
	if err := writeToneWAV(promptFile, 1500*time.Millisecond); err != nil {
		return nil, err
	}

	// JetStream for the shared audio library (ExampleLibrary).
	ns, err := bus.RunServer(bus.ServerOptions{Listen: "127.0.0.1:0", JetStream: true, StoreDir: filepath.Join(dir, "jetstream")})
	if err != nil {
		return nil, err
	}
	stops = append(stops, func() error { ns.Shutdown(); ns.WaitForShutdown(); return nil })
	natsURL = ns.ClientURL()
	connect := func(name, inbox string) (*nats.Conn, error) {
		nc, err := bus.Connect(bus.ConnOptions{URL: natsURL, Name: name, InboxPrefix: inbox})
		if err != nil {
			return nil, err
		}
		stops = append(stops, func() error { return bus.Close(nc, 5*time.Second) })
		return nc, nil
	}

	wnc, err := connect("worker", bus.InboxWorker)
	if err != nil {
		return nil, err
	}
	w, err := worker.New(wnc, worker.Config{ID: "worker-1", AudioDir: dir, DefaultAudio: worker.NoDefaultAudio, JetStream: true})
	if err != nil {
		return nil, err
	}
	if err := w.Start(); err != nil {
		return nil, err
	}
	stops = append(stops, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return w.Shutdown(ctx)
	})

	enc, err := connect("edge", bus.InboxEdge)
	if err != nil {
		return nil, err
	}
	srv, err := edge.New(enc, edge.Config{ID: "edge-1"})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	stops = append(stops, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return errors.Join(srv.Shutdown(ctx), <-served)
	})

	// The calls, one at a time, so that they start in this order.
	pnc, err := connect("watcher", "")
	if err != nil {
		return nil, err
	}
	started, err := pnc.SubscribeSync(bus.SubjectStreamStarted)
	if err != nil {
		return nil, err
	}
	if err := pnc.Flush(); err != nil {
		return nil, err
	}
	for _, ec := range exampleCalls {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		call, err := callsim.Dial(ctx, callsim.Config{
			URL: "ws://" + ln.Addr().String() + edge.PathMediaStream, StreamSid: ec.sid,
			Parameters: map[string]string{"customer": ec.customer}, Speed: ec.speed,
		})
		cancel()
		if err != nil {
			return nil, err
		}
		stops = append(stops, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = call.Hangup(ctx)
			if errs := call.Errs(); len(errs) > 0 {
				return fmt.Errorf("call %s: protocol violations: %v", ec.sid, errs)
			}
			return nil
		})
		msg, err := started.NextMsg(10 * time.Second)
		if err != nil {
			return nil, fmt.Errorf("call %s did not start: %w", ec.sid, err)
		}
		var st bus.StreamStarted
		if err := json.Unmarshal(msg.Data, &st); err != nil || st.StreamSid != ec.sid {
			return nil, fmt.Errorf("started %s, want %s", msg.Data, ec.sid)
		}
	}
	return stop, nil
}

// writeToneWAV writes d of a 440 Hz tone as a μ-law WAV file.
func writeToneWAV(path string, d time.Duration) error {
	ulaw := make([]byte, int(d.Seconds()*8000))
	for i := range ulaw {
		ulaw[i] = audio.EncodeMulaw(int16(6000 * math.Sin(2*math.Pi*440*float64(i)/8000)))
	}
	var b bytes.Buffer
	if err := callsim.WriteWAV(&b, ulaw); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
