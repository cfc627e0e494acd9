package edge

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/fasthttp/websocket"

	"github.com/callcast/callcast/internal/calltest"
	"github.com/callcast/callcast/internal/twilio"
)

const token = "test-auth-token"

func TestWebhookSignature(t *testing.T) {
	nc := connect(t, runNATS(t))
	form := url.Values{"CallSid": {"CA123"}, "From": {"+14158675310"}, "audio": {"hold.mp3"}}
	formParams := map[string]string{"CallSid": "CA123", "From": "+14158675310", "audio": "hold.mp3"}
	tests := []struct {
		name      string
		publicURL string
		method    string
		target    string
		sign      func() string
		status    int
	}{
		{name: "signed POST", publicURL: "https://voice.example.com", method: "POST", target: "/incoming-call",
			sign: func() string { return twilio.Sign(token, "https://voice.example.com/incoming-call", formParams) }, status: 200},
		{name: "signed GET with query", publicURL: "https://voice.example.com", method: "GET", target: "/incoming-call?audio=a.mp3",
			sign: func() string { return twilio.Sign(token, "https://voice.example.com/incoming-call?audio=a.mp3", nil) }, status: 200},
		{name: "request host when no public url", method: "GET", target: "/incoming-call",
			sign: func() string { return twilio.Sign(token, "http://edge.test/incoming-call", nil) }, status: 200},
		{name: "https through a tunnel when no public url", method: "POST", target: "/incoming-call",
			sign: func() string { return twilio.Sign(token, "https://edge.test/incoming-call", formParams) }, status: 200},
		{name: "https through a tunnel, another host", method: "POST", target: "/incoming-call",
			sign: func() string { return twilio.Sign(token, "https://evil.example/incoming-call", formParams) }, status: 403},
		{name: "unsigned", publicURL: "https://voice.example.com", method: "POST", target: "/incoming-call",
			sign: func() string { return "" }, status: 403},
		{name: "wrong token", publicURL: "https://voice.example.com", method: "POST", target: "/incoming-call",
			sign: func() string { return twilio.Sign("other", "https://voice.example.com/incoming-call", formParams) }, status: 403},
		{name: "tampered parameter", publicURL: "https://voice.example.com", method: "POST", target: "/incoming-call",
			sign: func() string {
				return twilio.Sign(token, "https://voice.example.com/incoming-call", map[string]string{"CallSid": "CA123", "From": "+14158675310", "audio": "other.mp3"})
			}, status: 403},
		{name: "signed for another host", publicURL: "https://voice.example.com", method: "POST", target: "/incoming-call",
			sign: func() string { return twilio.Sign(token, "https://evil.example/incoming-call", formParams) }, status: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := New(nc, Config{AuthToken: token, PublicURL: tt.publicURL})
			if err != nil {
				t.Fatal(err)
			}
			var body string
			if tt.method == "POST" {
				body = form.Encode()
			}
			req := httptest.NewRequest(tt.method, "http://edge.test"+tt.target, strings.NewReader(body))
			if tt.method == "POST" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if sig := tt.sign(); sig != "" {
				req.Header.Set(twilio.HeaderSignature, sig)
			}
			resp, err := srv.App().Test(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}

func TestUpgradeSignature(t *testing.T) {
	addr, _ := serve(t, Config{AuthToken: token})
	streamURL := "ws://" + addr + PathMediaStream
	tests := []struct {
		name   string
		sig    string
		status int
	}{
		{"signed", twilio.Sign(token, streamURL, nil), http.StatusSwitchingProtocols},
		{"signed with trailing slash", twilio.Sign(token, streamURL+"/", nil), http.StatusSwitchingProtocols},
		{"unsigned", "", http.StatusForbidden},
		{"wrong token", twilio.Sign("other", streamURL, nil), http.StatusForbidden},
		{"signed for another path", twilio.Sign(token, "ws://"+addr+"/other", nil), http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.sig != "" {
				h.Set(twilio.HeaderSignature, tt.sig)
			}
			conn, resp, err := websocket.DefaultDialer.Dial(streamURL, h)
			if conn != nil {
				conn.Close()
			}
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, tt.status, err)
			}
		})
	}
}

func TestPublicURLSignsUpgradeAsWSS(t *testing.T) {
	tests := []struct {
		name, publicURL, host, signed string
	}{
		{"public url", "https://voice.example.com", "", "wss://voice.example.com/media-stream"},
		// A tunnel forwards Twilio's wss:// upgrade over plain HTTP with its
		// own host: the edge handed out wss://<host>, and that is signed.
		{"tunnel host, no public url", "", "abc123.ngrok-free.app", "wss://abc123.ngrok-free.app/media-stream"},
	}
	nc := connect(t, runNATS(t))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, err := New(nc, Config{AuthToken: token, PublicURL: tt.publicURL})
			if err != nil {
				t.Fatal(err)
			}
			addr := calltest.Serve(t, "edge", srv)
			h := http.Header{}
			if tt.host != "" {
				h.Set("Host", tt.host)
			}
			h.Set(twilio.HeaderSignature, twilio.Sign(token, tt.signed, nil))
			conn, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+PathMediaStream, h)
			if err != nil {
				t.Fatalf("upgrade signed over %s refused: %v %v", tt.signed, err, resp)
			}
			conn.Close()
		})
	}
}
