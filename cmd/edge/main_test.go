package main

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/callcast/callcast/internal/calltest"
)

// TestCommandLine runs the edge's command line as a user would and checks
// the exit status and what is printed. None of these cases starts anything.
func TestCommandLine(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr string // a prefix of stderr, or all of it when code is 2
	}{
		{name: "help", args: []string{"-h"}, stdout: []string{"usage:", "edge [flags]", "edge healthcheck", "-nats-listen", "(env NATS_LISTEN)", "-worker-concurrency"}},
		{name: "help command", args: []string{"help"}, stdout: []string{"edge healthcheck"}},
		{name: "healthcheck help", args: []string{"healthcheck", "-h"}, stdout: []string{"usage: edge healthcheck [-addr ADDR]", "(env EDGE_ADDR)"}},
		{name: "unknown command", args: []string{"bogus"}, code: 2, stderr: "edge: unknown command \"bogus\"\nRun 'edge -h' for usage.\n"},
		{name: "argument after flags", args: []string{"-addr", ":0", "bogus"}, code: 2, stderr: "edge: unexpected argument \"bogus\"\nRun 'edge -h' for usage.\n"},
		{name: "unknown flag", args: []string{"-bogus"}, code: 2, stderr: "edge: flag provided but not defined: -bogus\nRun 'edge -h' for usage.\n"},
		{name: "no workers", args: []string{"-worker-concurrency", "0"}, code: 2, stderr: "edge: invalid value 0 for -worker-concurrency (env WORKER_CONCURRENCY): want at least 1\nRun 'edge -h' for usage.\n"},
		{name: "lead out of range", args: []string{"-lead", "10ms"}, code: 2, stderr: "edge: worker: lead 10ms: want 400ms to 1m0s\nRun 'edge -h' for usage.\n"},
		{name: "lead out of range, not all-in-one", args: []string{"-nats", "nats://127.0.0.1:1", "-lead", "2m"}, code: 2, stderr: "edge: the lead must be one the workers take: worker: lead 2m0s: want 400ms to 1m0s\nRun 'edge -h' for usage.\n"},
		{name: "zero lead", args: []string{"-lead", "0"}, code: 2, stderr: "edge: invalid value 0s for -lead (env PLAYBACK_LEAD): want more than 0\nRun 'edge -h' for usage.\n"},
		{name: "bad public url", args: []string{"-public-url", "voice.example.com"}, code: 2, stderr: "edge: PUBLIC_URL \"voice.example.com\" must be an absolute http(s) URL\nRun 'edge -h' for usage.\n"},
		{name: "bad nats listen", args: []string{"-nats-listen", "4222"}, code: 2, stderr: "edge: nats listen address \"4222\": address 4222: missing port in address\nRun 'edge -h' for usage.\n"},
		{name: "bad log level", args: []string{"-log-level", "loud"}, code: 2, stderr: "edge: log level \"loud\": slog: level string \"loud\": unknown name\nRun 'edge -h' for usage.\n"},
		{name: "healthcheck of nothing", args: []string{"healthcheck", "-addr", calltest.FreeAddr(t)}, code: 1, stderr: "edge: healthcheck: Get "},
		{name: "healthcheck argument", args: []string{"healthcheck", "x"}, code: 2, stderr: "edge: unexpected argument \"x\"\nRun 'edge healthcheck -h' for usage.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := program(&stdout, &stderr).Main(context.Background(), tt.args)
			if code != tt.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			for _, w := range tt.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			if tt.code == 2 && stderr.String() != tt.stderr || !strings.HasPrefix(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.stderr)
			}
		})
	}
}

// TestNATSPortInUse: all-in-one with the embedded server's port taken fails
// at once, saying so.
func TestNATSPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	code := program(&stdout, &stderr).Main(context.Background(), []string{
		"-addr", "127.0.0.1:0", "-nats-listen", ln.Addr().String(), "-nats-store-dir", t.TempDir(),
	})
	if code != 1 || !strings.Contains(stderr.String(), "address already in use") || strings.Count(stderr.String(), "edge:") != 1 {
		t.Errorf("exit status %d, stderr %q; want 1 and one line saying the address is in use", code, stderr.String())
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %v to fail", took)
	}
}

// TestCleanRun runs the edge all-in-one until cancelled: it logs the
// embedded server's real address, and shuts down with exit status 0 and no
// warning.
func TestCleanRun(t *testing.T) {
	var stdout bytes.Buffer
	stderr := &calltest.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- program(&stdout, stderr).Main(ctx, []string{
			"-addr", "127.0.0.1:0", "-nats-listen", "127.0.0.1:0", "-nats-store-dir", t.TempDir(),
			"-audio-dir", t.TempDir(), "-default-audio", "none", "-drain-timeout", "5s",
		})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), `msg="edge listening"`) {
		if time.Now().After(deadline) {
			t.Fatalf("not listening after 30 s:\n%s", stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit status %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit 30 s after the signal")
	}
	logs := stderr.String()
	m := regexp.MustCompile(`embedded NATS server running" nats_listen=(nats://127\.0\.0\.1:\d+)`).FindStringSubmatch(logs)
	if m == nil || strings.HasSuffix(m[1], ":4222") {
		t.Fatalf("no embedded server address logged:\n%s", logs)
	}
	if !strings.Contains(logs, `server="in-process `+m[1]+`"`) {
		t.Errorf("the connections' log does not name %s:\n%s", m[1], logs)
	}
	if strings.Contains(logs, "level=WARN msg=\"nats") || strings.Contains(logs, "level=ERROR") {
		t.Errorf("a clean shutdown logged a NATS warning or an error:\n%s", logs)
	}
}
