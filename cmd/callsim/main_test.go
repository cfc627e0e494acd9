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
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

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
