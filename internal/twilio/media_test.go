package twilio

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

const testSid = "MZ0123456789abcdef0123456789abcdef"

func TestCutMedia(t *testing.T) {
	payload := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xFF, 0x7F}, 80))
	for _, tc := range []struct {
		name string
		msg  string
		ok   bool
	}{
		{"twilio's order", `{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"` + payload + `"},"streamSid":"` + testSid + `"}`, true},
		{"streamSid first", `{"event":"media","sequenceNumber":"2","streamSid":"` + testSid + `","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"` + payload + `"}}`, true},
		{"spaces", `{"event": "media","sequenceNumber":"2","streamSid":"` + testSid + `","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"` + payload + `"}}`, false},
		{"escaped payload", `{"event":"media","sequenceNumber":"2","streamSid":"` + testSid + `","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"\/w=="}}`, false},
		{"negative chunk", `{"event":"media","sequenceNumber":"2","streamSid":"` + testSid + `","media":{"track":"inbound","chunk":"-1","timestamp":"52","payload":"` + payload + `"}}`, false},
		{"bad sid", `{"event":"media","sequenceNumber":"2","streamSid":"MZ.1","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"` + payload + `"}}`, false},
		{"trailing", `{"event":"media","sequenceNumber":"2","streamSid":"` + testSid + `","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"` + payload + `"}} `, false},
		{"extra field", `{"event":"media","sequenceNumber":"2","streamSid":"` + testSid + `","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"` + payload + `","x":1}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := CutMedia([]byte(tc.msg))
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if string(m.StreamSid) != testSid || string(m.Track) != "inbound" || m.Chunk != 1 || m.Timestamp != 52 || string(m.Payload) != payload {
				t.Fatalf("cut %+v", m)
			}
			full, err := ParseMessage([]byte(tc.msg))
			if err != nil {
				t.Fatal(err)
			}
			fm, err := MediaOf(full)
			if err != nil || !sameMedia(fm, m) {
				t.Fatalf("MediaOf: %+v, %v; CutMedia: %+v", fm, err, m)
			}
		})
	}
}

func sameMedia(a, b InboundMedia) bool {
	return bytes.Equal(a.StreamSid, b.StreamSid) && bytes.Equal(a.Track, b.Track) && a.Chunk == b.Chunk &&
		a.Timestamp == b.Timestamp && bytes.Equal(a.Payload, b.Payload)
}

func TestCutMediaAllocs(t *testing.T) {
	msg := []byte(`{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"/w=="},"streamSid":"` + testSid + `"}`)
	if n := testing.AllocsPerRun(100, func() {
		if _, ok := CutMedia(msg); !ok {
			t.Fatal("not cut")
		}
	}); n != 0 {
		t.Fatalf("%v allocations, want 0", n)
	}
}

func FuzzCutMedia(f *testing.F) {
	for _, s := range []string{
		`{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"/w=="},"streamSid":"MZ1"}`,
		`{"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"/w=="}}`,
		`{"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{"track":"in\u0062ound","chunk":"1","timestamp":"52","payload":"/w=="}}`,
		`{"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{"track":"inbound","chunk":"999999999999999999","timestamp":"0","payload":"x"}}`,
		`{"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"//////7+\/w=="}}`,
		`{"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"///////\"/w=="}}`,
		`{"event":"media","sequenceNumber":"2","streamSid":"MZ1","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"////////\u002f=="}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, ok := CutMedia(data)
		if !ok {
			return
		}
		// encoding/json reads the same message.
		full, err := parseMessage(data)
		if err != nil {
			t.Fatalf("CutMedia took %q, encoding/json refused it: %v", data, err)
		}
		fm, err := MediaOf(full)
		if err != nil || !sameMedia(fm, m) {
			t.Fatalf("CutMedia took %q as %+v; encoding/json: %+v, %v", data, m, fm, err)
		}
		if strconv.FormatInt(m.Chunk, 10) == "" {
			t.Fatal("unreachable")
		}
		_, _ = json.Marshal(full)
	})
}

// TestPayloadChars: a byte outside the alphabet is found wherever it is,
// in the eight-byte steps or the tail.
func TestPayloadChars(t *testing.T) {
	for n := range 20 {
		p := []byte(strings.Repeat("A", n))
		if !payloadChars(p) {
			t.Fatalf("%q refused", p)
		}
		for i := range n {
			for _, c := range []byte{'"', '\\', '-', '_', 0, 0x80, 0xFF, '\n'} {
				q := bytes.Clone(p)
				q[i] = c
				if payloadChars(q) {
					t.Fatalf("%q taken", q)
				}
			}
		}
	}
	if !payloadChars([]byte("azAZ09+/=")) {
		t.Fatal("the alphabet refused")
	}
}
