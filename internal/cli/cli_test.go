package cli

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestFlagsFallBackToEnvironment(t *testing.T) {
	t.Setenv("T_ADDR", ":9999")
	t.Setenv("T_ON", "true")
	t.Setenv("T_N", "7")
	t.Setenv("T_D", "3s")
	var (
		addr, other string
		on          bool
		n           int
		d           time.Duration
	)
	f := NewFlags("t")
	f.String(&addr, "addr", "T_ADDR", ":8080", "")
	f.String(&other, "other", "T_UNSET_OTHER", "def", "")
	f.Bool(&on, "on", "T_ON", false, "")
	f.Int(&n, "n", "T_N", 1, "")
	f.Duration(&d, "d", "T_D", time.Second, "")
	if err := f.Parse([]string{"-n", "9"}); err != nil {
		t.Fatal(err)
	}
	if addr != ":9999" || other != "def" || !on || n != 9 || d != 3*time.Second {
		t.Fatalf("got %q %q %v %d %v", addr, other, on, n, d)
	}
}

func TestFlagsRejectBadEnvironment(t *testing.T) {
	for _, tt := range []struct{ env, val string }{{"T_BOOL", "maybe"}, {"T_INT", "seven"}, {"T_DUR", "3"}} {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(tt.env, tt.val)
			var (
				b bool
				n int
				d time.Duration
			)
			f := NewFlags("t")
			f.Bool(&b, "b", "T_BOOL", false, "")
			f.Int(&n, "n", "T_INT", 0, "")
			f.Duration(&d, "d", "T_DUR", 0, "")
			err := f.Parse(nil)
			if err == nil || !strings.Contains(err.Error(), tt.env) {
				t.Fatalf("err = %v, want one naming %s", err, tt.env)
			}
		})
	}
}

func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := Log{Level: "warn", Format: "json"}.Logger(&buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", "v")
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.Contains(out, `"k":"v"`) {
		t.Fatalf("log output %q", out)
	}
	if _, err := (Log{Level: "loud"}).Logger(&buf); err == nil {
		t.Error("bad level accepted")
	}
	if _, err := (Log{Level: "info", Format: "xml"}).Logger(&buf); err == nil {
		t.Error("bad format accepted")
	}
}

func TestHealthcheck(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" || !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	if err := Healthcheck(context.Background(), ":"+port); err != nil {
		t.Fatalf("healthy: %v", err)
	}
	healthy.Store(false)
	if err := Healthcheck(context.Background(), ":"+port); err == nil {
		t.Fatal("unhealthy answered as healthy")
	}
	srv.Close()
	if err := Healthcheck(context.Background(), ":"+port); err == nil {
		t.Fatal("nothing listening answered as healthy")
	}
}

func TestHealthcheckCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	cmd := HealthcheckCommand("addr", "T_SVC_ADDR", ":1")
	if err := cmd.Run(context.Background(), []string{"-addr", ":" + port}); err != nil {
		t.Fatalf("healthcheck against a healthy server: %v", err)
	}
	t.Setenv("T_SVC_ADDR", ":"+port)
	if err := cmd.Run(context.Background(), nil); err != nil {
		t.Fatalf("healthcheck of the address in the environment: %v", err)
	}
	if err := cmd.Run(context.Background(), []string{"extra"}); !errors.Is(err, ErrUsage) {
		t.Fatalf("extra argument: %v, want a usage error", err)
	}
}

func TestServiceStart(t *testing.T) {
	var buf bytes.Buffer
	svc := Service{Log: Log{Level: "info", Format: "json"}}
	if log, err := svc.Start(&buf); log == nil || err != nil {
		t.Fatalf("start: log %v, err %v", log, err)
	}
	svc.Log.Format = "xml"
	if _, err := svc.Start(&buf); !errors.Is(err, ErrUsage) {
		t.Fatalf("bad log format: %v, want a usage error", err)
	}
}
