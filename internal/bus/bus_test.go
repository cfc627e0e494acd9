package bus

import (
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/callcast/callcast/internal/twilio"
)

func TestSubjects(t *testing.T) {
	const sid = "MZ0123456789abcdef0123456789abcdef"
	tests := []struct{ name, got, want string }{
		{"out", StreamOut(sid), "callcast.stream." + sid + ".out"},
		{"events", StreamEvents(sid), "callcast.stream." + sid + ".events"},
		{"play", StreamPlay(sid), "callcast.stream." + sid + ".play"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, tt.got, tt.want)
		}
	}
}

func TestDecodeOut(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"media", `{"event":"media","media":{"payload":"/w=="}}`, true},
		{"mark", `{"event":"mark","mark":{"name":"m"}}`, true},
		{"clear", `{"event":"clear"}`, true},
		{"extra fields ignored", `{"event":"clear","streamSid":"x","x":1}`, true},
		{"bad json", `{"event":`, false},
		{"unknown event", `{"event":"stop"}`, false},
		{"media without body", `{"event":"media"}`, false},
		{"unpadded base64", `{"event":"media","media":{"payload":"/w"}}`, false},
		{"url base64", `{"event":"media","media":{"payload":"-_8="}}`, false},
		{"empty payload", `{"event":"media","media":{"payload":""}}`, false},
		{"payload wrong type", `{"event":"media","media":{"payload":5}}`, false},
		{"mark without name", `{"event":"mark","mark":{}}`, false},
		{"mark name too long", `{"event":"mark","mark":{"name":"` + strings.Repeat("x", 257) + `"}}`, false},
		{"too large", `{"event":"clear","pad":"` + strings.Repeat("x", MaxMessageSize) + `"}`, false},
		// The fast path of canonical media is bounded too.
		{"too large media", `{"event":"media","media":{"payload":"` + strings.Repeat("AAAA", MaxMessageSize/4) + `"}}`, false},
		{"media at the limit", `{"event":"media","media":{"payload":"` + strings.Repeat("AAAA", (MaxMessageSize-40)/4) + `"}}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeOut([]byte(tt.in))
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
		})
	}
}

func TestDecodePlayRequest(t *testing.T) {
	tests := []struct {
		name, in, mode string
		ok             bool
	}{
		{"minimal", `{"streamSid":"MZ1","audio":"a.mp3"}`, ModeQueue, true},
		{"typed interrupt", `{"type":"callcast.play.v1","streamSid":"MZ1","audio":"a.mp3","mode":"interrupt","id":"x"}`, ModeInterrupt, true},
		{"wrong version", `{"type":"callcast.play.v2","streamSid":"MZ1","audio":"a.mp3"}`, "", false},
		{"bad mode", `{"streamSid":"MZ1","audio":"a.mp3","mode":"now"}`, "", false},
		{"sid with wildcard", `{"streamSid":"MZ.>","audio":"a.mp3"}`, "", false},
		{"no audio", `{"streamSid":"MZ1"}`, "", false},
		{"audio too long", `{"streamSid":"MZ1","audio":"` + strings.Repeat("a", 300) + `"}`, "", false},
		{"wrong types", `{"streamSid":1,"audio":true}`, "", false},
		{"id too long", `{"streamSid":"MZ1","audio":"a","id":"` + strings.Repeat("i", 200) + `"}`, "", false},
		{"stream pcm", `{"streamSid":"MZ1","stream":{"format":"pcm_s16le","sampleRate":24000,"channels":1},"id":"utt-7"}`, ModeQueue, true},
		{"stream mulaw", `{"streamSid":"MZ1","stream":{"format":"mulaw"},"mode":"interrupt","interruptible":true}`, ModeInterrupt, true},
		{"stream mp3", `{"streamSid":"MZ1","stream":{"format":"mp3"}}`, ModeQueue, true},
		{"stream wav", `{"streamSid":"MZ1","stream":{"format":"wav"}}`, ModeQueue, true},
		{"stream and audio", `{"streamSid":"MZ1","audio":"a.mp3","stream":{"format":"mulaw"}}`, "", false},
		{"stream without format", `{"streamSid":"MZ1","stream":{}}`, "", false},
		{"stream unknown format", `{"streamSid":"MZ1","stream":{"format":"opus"}}`, "", false},
		{"pcm without rate", `{"streamSid":"MZ1","stream":{"format":"pcm_s16le","channels":1}}`, "", false},
		{"pcm rate too high", `{"streamSid":"MZ1","stream":{"format":"pcm_s16le","sampleRate":96000,"channels":1}}`, "", false},
		{"pcm three channels", `{"streamSid":"MZ1","stream":{"format":"pcm_s16le","sampleRate":16000,"channels":3}}`, "", false},
		{"mulaw at 16 kHz", `{"streamSid":"MZ1","stream":{"format":"mulaw","sampleRate":16000}}`, "", false},
		{"mp3 with a rate", `{"streamSid":"MZ1","stream":{"format":"mp3","sampleRate":44100}}`, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodePlayRequest([]byte(tt.in))
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			if err == nil && m.Mode != tt.mode {
				t.Fatalf("mode %q, want %q", m.Mode, tt.mode)
			}
		})
	}
}

func TestPlaybackMarkRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		id   string
		off  int64
		last bool
	}{{"abc", 0, false}, {"abc", 1600, false}, {"x", 24669, true}} {
		name := PlaybackMark(tt.id, tt.off, tt.last)
		id, off, last, ok := ParsePlaybackMark(name)
		if !ok || id != tt.id || off != tt.off || last != tt.last {
			t.Errorf("%q parsed to %q %d %v %v", name, id, off, last, ok)
		}
	}
	for _, bad := range []string{"", "cc:", "cc::1", "cc:a", "cc:a:-1", "cc:a:x", "mine", "cc:a:1:end:end"} {
		if _, _, _, ok := ParsePlaybackMark(bad); ok {
			t.Errorf("%q parsed as a playback mark", bad)
		}
	}
}

func TestEventsRoundTrip(t *testing.T) {
	ev := NewEvent("MZ1", EventPlaybackInterrupted)
	ev.Playback = &Playback{ID: "p", Audio: "a.mp3", SentMs: 1000, HeardMs: 800, Reason: "clear"}
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEvent(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != TypeStreamEvent || *got.Playback != *ev.Playback {
		t.Fatalf("round trip: %+v", got)
	}
	if _, err := DecodeEvent([]byte(`{"type":"callcast.stream.event.v2","event":"mark"}`)); err == nil {
		t.Fatal("a future version decoded as v1")
	}
}

// decoders are every decoder that takes bytes from the bus.
var decoders = map[string]func([]byte) error{
	"StreamStarted": func(b []byte) error { _, err := DecodeStreamStarted(b); return err },
	"Out":           func(b []byte) error { _, err := DecodeOut(b); return err },
	"Event":         func(b []byte) error { _, err := DecodeEvent(b); return err },
	"PlayRequest":   func(b []byte) error { _, err := DecodePlayRequest(b); return err },
	"Enqueue":       func(b []byte) error { _, err := DecodeEnqueue(b); return err },
	"RenderRequest": func(b []byte) error { _, err := DecodeRenderRequest(b); return err },
	"PlayReply":     func(b []byte) error { _, err := DecodePlayReply(b); return err },
}

func FuzzDecoders(f *testing.F) {
	for _, s := range []string{
		`{"event":"media","media":{"payload":"/w=="}}`,
		`{"type":"callcast.play.v1","streamSid":"MZ1","audio":"a.mp3","mode":"interrupt"}`,
		`{"type":"callcast.render.v1","streamSid":"MZ1","playbackId":"p","audio":"a","offset":5,"ahead":[{"playbackId":"q","end":9,"heard":1}],"edgeAlive":"callcast.edge.e1.alive"}`,
		`{"type":"callcast.stream.started.v1","streamSid":"MZ1","customParameters":{"audio":"x"}}`,
		`{"type":"callcast.stream.event.v1","event":"mark","mark":{"name":"cc:p:1600"}}`,
		`{"type":"callcast.stream.event.v1","event":"mark","streamSid":"MZ1","time":"2026-11-23T22:55:48.123456789Z","mark":{"name":"cc:p:1600"}}`,
		`{"type":"callcast.stream.event.v1","event":"mark","streamSid":"MZ1","time":"2026-11-23T23:55:48+01:00","mark":{"name":"<"}}`,
		`{"event":"mark","mark":{"name":"pb:1:1600"}}`,
		`{"type":"callcast.stream.play.v1","playbackId":"p","audio":"a","mode":"queue"}`,
		`{"type":"callcast.play.reply.v1","error":{"code":"bad_request","message":"x"}}`,
		`null`, `[]`, `{"streamSid":{"a":[1,2,{}]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for name, decode := range decoders {
			if err := decode(data); err != nil && !errors.Is(err, ErrBadMessage) {
				t.Fatalf("%s: error %v does not wrap ErrBadMessage", name, err)
			}
		}
		ParsePlaybackMark(string(data))

		// A mark name Twilio echoes is written as encoding/json writes it.
		at := time.Date(2026, 11, 27, 9, 30, 1, len(data), time.UTC)
		ev := NewEvent("MZ1", EventMark)
		ev.Time, ev.Mark = at, &twilio.Mark{Name: string(data)}
		if want, err := json.Marshal(ev); err == nil {
			if got := AppendMarkEvent(nil, "MZ1", at, string(data)); string(got) != string(want) {
				t.Fatalf("AppendMarkEvent(%q) = %s, want %s", data, got, want)
			}
		}

		// The fast paths agree with encoding/json on everything they take.
		if fast, err := DecodeOut(data); err == nil {
			if full, err := decodeOut(data); err != nil || !reflect.DeepEqual(fast, full) {
				t.Fatalf("DecodeOut took %q as %+v; encoding/json: %+v, %v", data, fast, full, err)
			}
		}
		if fast := decodeMarkEvent(data); fast != nil {
			full, err := decodeEvent(data)
			if err != nil || !fast.Time.Equal(full.Time) {
				t.Fatalf("DecodeEvent took %q as %+v; encoding/json: %+v, %v", data, fast, full, err)
			}
			fast.Time, full.Time = time.Time{}, time.Time{}
			if !reflect.DeepEqual(fast, full) {
				t.Fatalf("DecodeEvent took %q as %+v; encoding/json: %+v", data, fast, full)
			}
		}
	})
}

func TestConnOptionsKeepSecretsOutOfLogs(t *testing.T) {
	var buf strings.Builder
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	o := ConnOptions{URL: "nats://edge:hunter2@nats-1:4222,nats://edge:hunter2@nats-2:4222", User: "edge", Password: "pw-secret", Token: "tok-secret", Creds: "/run/secrets/edge.creds"}
	log.Info("connecting", "nats", o)
	out := buf.String()
	for _, secret := range []string{"hunter2", "pw-secret", "tok-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("log line leaks %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, "nats-1:4222") || !strings.Contains(out, "nats-2:4222") {
		t.Errorf("log line lost the servers: %s", out)
	}
}

// TestFastPathsTakeWhatTheProductWrites: the marks workers publish and the
// mark events the edge publishes are decoded without encoding/json.
func TestFastPathsTakeWhatTheProductWrites(t *testing.T) {
	const sid = "MZ0123456789abcdef0123456789abcdef"
	name := PlaybackMark("pb1", 1600, false)
	out, err := json.Marshal(OutMessage{Event: twilio.EventMark, Mark: &twilio.Mark{Name: name}})
	if err != nil {
		t.Fatal(err)
	}
	if rest, ok := strings.CutPrefix(string(out), string(markHead)); !ok || !strings.HasSuffix(rest, string(markTail)) {
		t.Errorf("a worker's mark %s misses the fast path", out)
	}
	ev := NewEvent(sid, EventMark)
	ev.Mark = &twilio.Mark{Name: name}
	data, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	got := decodeMarkEvent(data)
	if got == nil {
		t.Fatalf("the edge's mark event %s misses the fast path", data)
	}
	if !got.Time.Equal(ev.Time) || got.StreamSid != sid || got.Mark.Name != name {
		t.Errorf("decoded %+v, want %+v", got, ev)
	}
}

func TestEdgeAlive(t *testing.T) {
	if s := EdgeAlive("Xh7Vq2"); s != "callcast.edge.Xh7Vq2.alive" || CheckEdgeAlive(s) != nil {
		t.Errorf("EdgeAlive = %q, check %v", s, CheckEdgeAlive(s))
	}
	for _, bad := range []string{"", "callcast.edge..alive", "callcast.edge.a.b.alive", "callcast.edge.*.alive",
		"callcast.edge.>", "callcast.stream.MZ1.out", "callcast.edge.a.alive.x", "_INBOX.abc"} {
		if err := CheckEdgeAlive(bad); !errors.Is(err, ErrBadMessage) {
			t.Errorf("CheckEdgeAlive(%q) = %v, want ErrBadMessage", bad, err)
		}
	}
	req := `{"type":"callcast.render.v1","streamSid":"MZ1","playbackId":"p","audio":"a","edgeAlive":"callcast.stream.MZ1.out"}`
	if _, err := DecodeRenderRequest([]byte(req)); !errors.Is(err, ErrBadMessage) {
		t.Errorf("a render request naming another subject as the edge's: %v", err)
	}
}

// TestAppendMarkEvent: the edge's mark events, written without
// encoding/json, are what encoding/json writes, escapes and all.
func TestAppendMarkEvent(t *testing.T) {
	at := time.Date(2026, 11, 27, 9, 30, 1, 120000000, time.UTC)
	tests := []struct {
		name, sid, mark string
		at              time.Time
	}{
		{name: "playback mark", sid: "MZ0123456789abcdef0123456789abcdef", mark: PlaybackMark("pb1", 1600, false), at: at},
		{name: "last mark", sid: "MZ01", mark: PlaybackMark("pb1", 24000, true), at: at},
		{name: "whole second", sid: "MZ01", mark: "x", at: at.Truncate(time.Second)},
		{name: "nanoseconds", sid: "MZ01", mark: "x", at: at.Add(7)},
		{name: "producer mark with escapes", sid: "MZ01", mark: `a"b\c<d>&é` + "\n\u2028", at: at},
		{name: "empty mark", sid: "MZ01", mark: "", at: at},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := NewEvent(tt.sid, EventMark)
			ev.Time, ev.Mark = tt.at, &twilio.Mark{Name: tt.mark}
			want, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			if got := AppendMarkEvent([]byte("x"), tt.sid, tt.at, tt.mark); string(got) != "x"+string(want) {
				t.Errorf("got  %s\nwant x%s", got, want)
			}
		})
	}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = AppendMarkEvent(buf[:0], "MZ01", at, "cc:pb1:1600") }); n != 0 {
		t.Errorf("%v allocations per mark event, want 0", n)
	}
}
