package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/callcast/callcast/internal/calltest"
	"github.com/callcast/callcast/internal/twilio"
)

func TestParseFlags(t *testing.T) {
	t.Setenv("CALLSIM_SPEED", "3")
	t.Setenv("CALLSIM_PARAMS", "a=1,b=2")
	cfg, err := parseFlags([]string{
		"-url", "ws://127.0.0.1:9/media-stream", "-param", "audio=sample.mp3", "-param", "b=x=y",
		"-header", "X-Twilio-Signature: abc=", "-o", "out.wav", "-duration", "30s", "-calls", "4", "-rate", "2.5",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.url != "ws://127.0.0.1:9/media-stream" || cfg.out != "out.wav" || cfg.duration != 30*time.Second ||
		cfg.quiet != 2*time.Second || cfg.speed != 3 || cfg.calls != 4 || cfg.rate != 2.5 {
		t.Errorf("config %+v", cfg)
	}
	if want := map[string]string{"a": "1", "b": "x=y", "audio": "sample.mp3"}; !reflect.DeepEqual(cfg.params, want) {
		t.Errorf("params %v, want %v", cfg.params, want)
	}
	if got := cfg.header.Get("X-Twilio-Signature"); got != "abc=" {
		t.Errorf("header %q", got)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	tests := []struct {
		name string
		env  [2]string
		args []string
	}{
		{"bad param", [2]string{}, []string{"-param", "novalue"}},
		{"bad header", [2]string{}, []string{"-header", "novalue"}},
		{"no calls", [2]string{}, []string{"-calls", "0"}},
		{"extra argument", [2]string{}, []string{"extra"}},
		{"bad env speed", [2]string{"CALLSIM_SPEED", "fast"}, nil},
		{"bad env duration", [2]string{"CALLSIM_DURATION", "long"}, nil},
		{"bad env params", [2]string{"CALLSIM_PARAMS", "=1"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env[0] != "" {
				t.Setenv(tt.env[0], tt.env[1])
			}
			if _, err := parseFlags(tt.args); err == nil {
				t.Error("no error")
			}
		})
	}
}

// server plays the product's part: after start it sends one second of
// audio and a mark, then extra (if any), then closes once the mark is back.
func server(t *testing.T, extra func(ws *websocket.Conn, sid string)) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			m, err := twilio.ParseMessage(data)
			if err != nil {
				continue
			}
			switch m.Event {
			case twilio.EventStart:
				ws.WriteMessage(websocket.TextMessage, twilio.AppendMedia(nil, m.StreamSid, bytes.Repeat([]byte{0x55}, 8000)))
				ws.WriteMessage(websocket.TextMessage, twilio.AppendMark(nil, m.StreamSid, "end"))
				if extra != nil {
					extra(ws, m.StreamSid)
				}
			case twilio.EventMark:
				ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			}
		}
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/media-stream"
}

func TestRunWritesWAV(t *testing.T) {
	out := filepath.Join(t.TempDir(), "call.wav")
	cfg := config{url: server(t, nil), out: out, speed: 20, calls: 1, quiet: time.Second, duration: 5 * time.Second}
	var stdout bytes.Buffer
	if err := run(context.Background(), cfg, slog.New(slog.DiscardHandler), &stdout); err != nil {
		t.Fatalf("run: %v\n%s", err, stdout.String())
	}
	if first, _, _ := strings.Cut(stdout.String(), "\n"); !regexp.MustCompile(`^calling      ws://\S+ as stream MZ[0-9a-f]{32} \(call CA[0-9a-f]{32}\)$`).MatchString(first) {
		t.Errorf("first line %q does not name the stream before the call", first)
	}
	for _, want := range []string{"8000 bytes (1s)", "1 received, 1 echoed", "server closed", "protocol     0 errors", "wrote"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}
	wav, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(wav) != 58+8000 || string(wav[:4]) != "RIFF" || !bytes.Equal(wav[58:], bytes.Repeat([]byte{0x55}, 8000)) {
		t.Errorf("WAV of %d bytes", len(wav))
	}
}

func TestRunFailsOnProtocolError(t *testing.T) {
	url := server(t, func(ws *websocket.Conn, sid string) {
		ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3})
	})
	cfg := config{url: url, speed: 20, calls: 1, quiet: time.Second, duration: 5 * time.Second}
	var stdout bytes.Buffer
	err := run(context.Background(), cfg, slog.New(slog.DiscardHandler), &stdout)
	if err == nil || !strings.Contains(err.Error(), "1 protocol errors") {
		t.Errorf("run = %v", err)
	}
	if !strings.Contains(stdout.String(), "binary frame") {
		t.Errorf("output lacks the violation:\n%s", stdout.String())
	}
}

func TestRunLoad(t *testing.T) {
	cfg := config{url: server(t, nil), speed: 20, calls: 3, rate: 50, quiet: time.Second, duration: 5 * time.Second}
	var stdout bytes.Buffer
	if err := run(context.Background(), cfg, slog.New(slog.DiscardHandler), &stdout); err != nil {
		t.Fatalf("run: %v\n%s", err, stdout.String())
	}
	if !strings.Contains(stdout.String(), "calls        3") || !strings.Contains(stdout.String(), "p95") {
		t.Errorf("output:\n%s", stdout.String())
	}
}

// TestCommandLine checks the exit status and messages of the command line.
func TestCommandLine(t *testing.T) {
	url := server(t, nil)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string // all of stderr for status 2, its start for 1
	}{
		{name: "help", args: []string{"-h"}, stdout: "(env CALLSIM_URL)"},
		{name: "unknown command", args: []string{"bogus"}, code: 2, stderr: "callsim: unknown command \"bogus\"\nRun 'callsim -h' for usage.\n"},
		{name: "no calls", args: []string{"-calls", "0"}, code: 2, stderr: "callsim: -calls 0: want at least 1\nRun 'callsim -h' for usage.\n"},
		{name: "bad log format", args: []string{"-log-format", "xml"}, code: 2, stderr: "callsim: log format \"xml\": want text or json\nRun 'callsim -h' for usage.\n"},
		{name: "call", args: []string{"-url", url, "-speed", "20", "-quiet", "1s", "-duration", "5s"}, stdout: "protocol     0 errors"},
		{name: "nothing there", args: []string{"-url", "ws://" + calltest.FreeAddr(t) + "/media-stream"}, code: 1, stderr: "callsim: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := program(&stdout, &stderr).Main(context.Background(), tt.args)
			if code != tt.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, stdout.String())
			}
			if tt.code == 1 && !strings.HasPrefix(stderr.String(), tt.stderr) || tt.code == 2 && stderr.String() != tt.stderr {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.stderr)
			}
		})
	}
}

// TestSubcommands checks the floor and compare commands' command lines.
func TestSubcommands(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "help lists them", args: []string{"-h"}, stdout: "callsim compare"},
		{name: "floor help", args: []string{"floor", "-h"}, stdout: "usage: callsim floor [-addr ADDR] [-audio FILE] [-lead D]"},
		{name: "compare help", args: []string{"help", "compare"}, stdout: "ratios to the floor"},
		{name: "floor without clip", args: []string{"floor", "-addr", "127.0.0.1:0", "-audio", "/nonexistent.mp3"}, code: 1, stderr: "callsim: clip: open /nonexistent.mp3: no such file or directory\n"},
		{name: "compare metrics without url", args: []string{"compare", "-metrics", "http://127.0.0.1:1/metrics"}, code: 2, stderr: "callsim: -metrics or -pid without -url: the callcast started here is measured by its own\nRun 'callsim compare -h' for usage.\n"},
		{name: "compare without clip", args: []string{"compare", "-audio", "/nonexistent.mp3"}, code: 2, stderr: "callsim: stat /nonexistent.mp3: no such file or directory\nRun 'callsim compare -h' for usage.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := program(&stdout, &stderr).Main(context.Background(), tt.args)
			if code != tt.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, stdout.String())
			}
			if tt.code != 0 && stderr.String() != tt.stderr {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.stderr)
			}
		})
	}
}
