package callsim

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/callcast/callcast/internal/calltest"
	"github.com/callcast/callcast/internal/twilio"
)

var (
	streamSidRE  = regexp.MustCompile(`^MZ[0-9a-f]{32}$`)
	callSidRE    = regexp.MustCompile(`^CA[0-9a-f]{32}$`)
	accountSidRE = regexp.MustCompile(`^AC[0-9a-f]{32}$`)
)

func TestConnectedStartAndCallerMedia(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := newTestServer(t, false)
	c := dial(t, Config{
		URL:        s.url,
		Header:     http.Header{"X-Twilio-Signature": {"c2lnbmF0dXJl"}},
		Parameters: map[string]string{"audio": "sample.mp3", "token": "t0k"},
	})
	p := s.accept(t)
	if got := p.header.Get("X-Twilio-Signature"); got != "c2lnbmF0dXJl" {
		t.Errorf("X-Twilio-Signature = %q", got)
	}

	f, _ := p.next(t)
	if f.typ != websocket.TextMessage || string(f.data) != `{"event":"connected","protocol":"Call","version":"1.0.0"}` {
		t.Fatalf("first message = %d %s", f.typ, f.data)
	}

	f, _ = p.next(t)
	if f.typ != websocket.TextMessage || f.msg == nil || f.msg.Event != twilio.EventStart {
		t.Fatalf("second message = %s", f.data)
	}
	start := keys(t, f.data)
	body, _ := start["start"].(map[string]any)
	wantTypes := map[string]any{
		"event":          "start",
		"sequenceNumber": "1",
		"streamSid":      c.StreamSid(),
		"start": map[string]any{
			"streamSid":        c.StreamSid(),
			"accountSid":       c.AccountSid(),
			"callSid":          c.CallSid(),
			"tracks":           []any{"inbound"},
			"mediaFormat":      map[string]any{"encoding": "audio/x-mulaw", "sampleRate": 8000.0, "channels": 1.0},
			"customParameters": map[string]any{"audio": "sample.mp3", "token": "t0k"},
		},
	}
	if !reflect.DeepEqual(start, wantTypes) {
		t.Errorf("start =\n%v\nwant\n%v", start, wantTypes)
	}
	if body == nil {
		t.Fatal("start has no body")
	}
	for sid, re := range map[string]*regexp.Regexp{c.StreamSid(): streamSidRE, c.CallSid(): callSidRE, c.AccountSid(): accountSidRE} {
		if !re.MatchString(sid) {
			t.Errorf("SID %q does not match %v", sid, re)
		}
	}

	// Caller media: 160 bytes of silence every 20 ms, counted from 2 in
	// the shared sequence and from 1 per chunk. A frame whose time passed
	// while the writer waited for a core (a loaded machine) is dropped,
	// as Twilio drops what it cannot send: its chunk is skipped, not its
	// sequence number, and Stats counts it.
	const n = 26
	var first, last frame
	prevTS := -1
	chunk := 0
	for i := 1; i <= n; i++ {
		f := p.expect(t, twilio.EventMedia)
		m := keys(t, f.data)
		media, _ := m["media"].(map[string]any)
		if len(m) != 4 || len(media) != 4 {
			t.Fatalf("media fields: %s", f.data)
		}
		for _, k := range []string{"sequenceNumber", "streamSid"} {
			if _, ok := m[k].(string); !ok {
				t.Errorf("%s is not a string: %s", k, f.data)
			}
		}
		for _, k := range []string{"track", "chunk", "timestamp", "payload"} {
			if _, ok := media[k].(string); !ok {
				t.Errorf("media.%s is not a string: %s", k, f.data)
			}
		}
		got, err := strconv.Atoi(f.msg.Media.Chunk)
		if media["track"] != "inbound" || err != nil || got <= chunk || m["sequenceNumber"] != strconv.Itoa(i+1) {
			t.Errorf("media %d after chunk %d: %s", i, chunk, f.data)
		}
		chunk = got
		ts, err := strconv.Atoi(f.msg.Media.Timestamp)
		if err != nil || ts < prevTS || ts != (chunk-1)*20 {
			t.Errorf("media %d (chunk %d) timestamp %q after %d", i, chunk, f.msg.Media.Timestamp, prevTS)
		}
		prevTS = ts
		payload, err := base64.StdEncoding.DecodeString(f.msg.Media.Payload)
		if err != nil || !bytes.Equal(payload, bytes.Repeat([]byte{0xFF}, FrameBytes)) {
			t.Errorf("media %d payload %q", i, f.msg.Media.Payload)
		}
		if i == 1 {
			first = f
		}
		last = f
	}
	// 25 intervals of 20 ms; allow for a loaded machine.
	if d := last.at.Sub(first.at); d < 400*time.Millisecond || d > 2*time.Second {
		t.Errorf("%d media messages took %v, want about 500ms", n, d)
	}
	ts1, _ := strconv.Atoi(first.msg.Media.Timestamp)
	tsN, _ := strconv.Atoi(last.msg.Media.Timestamp)
	if d := tsN - ts1; d < 400 || d > 2000 {
		t.Errorf("timestamps advanced %d ms over %d messages, want about 500", d, n)
	}
	if err := c.Hangup(testCtx(t)); err != nil {
		t.Fatalf("Hangup: %v", err)
	}
	p.checkSeq(t)
	if st := c.Stats(); st.CallerMedia < n || st.CallerDropped < chunk-n {
		t.Errorf("stats %+v: %d chunks in %d messages", st, chunk, n)
	}
}

func TestGivenSidsAndCallerAudio(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := newTestServer(t, false)
	caller := tone(300)
	c := dial(t, Config{
		URL:         s.url,
		StreamSid:   "MZ11111111111111111111111111111111",
		CallSid:     "CA22222222222222222222222222222222",
		AccountSid:  "AC33333333333333333333333333333333",
		CallerAudio: bytes.NewReader(caller),
	})
	p := s.accept(t)
	start := p.handshake(t)
	if start.StreamSid != c.StreamSid() || c.StreamSid() != "MZ11111111111111111111111111111111" ||
		start.Start.CallSid != "CA22222222222222222222222222222222" ||
		start.Start.AccountSid != "AC33333333333333333333333333333333" ||
		start.Start.CustomParameters == nil {
		t.Errorf("start = %+v %+v", start, start.Start)
	}
	want := [][]byte{
		caller[:160],
		append(append([]byte(nil), caller[160:]...), bytes.Repeat([]byte{0xFF}, 20)...),
		bytes.Repeat([]byte{0xFF}, 160),
		bytes.Repeat([]byte{0xFF}, 160),
	}
	for i, w := range want {
		f := p.expect(t, twilio.EventMedia)
		got, _ := base64.StdEncoding.DecodeString(f.msg.Media.Payload)
		if !bytes.Equal(got, w) {
			t.Errorf("frame %d = %x, want %x", i+1, got, w)
		}
	}
	if err := c.Hangup(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestMarkEchoedAfterAudioPlayed(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := newTestServer(t, false)
	c := dial(t, Config{URL: s.url, Speed: 20})
	p := s.accept(t)
	sid := p.handshake(t).StreamSid

	audio := tone(BytesPerSecond) // 1 s: 50 ms at speed 20
	sent := p.sendMedia(t, sid, audio)
	p.sendMark(t, sid, "clip-1:end")
	f := p.expect(t, twilio.EventMark)
	if d := f.at.Sub(sent); d < 50*time.Millisecond {
		t.Errorf("mark echoed %v after its audio was sent; 1 s of audio at speed 20 takes 50ms", d)
	}
	m := keys(t, f.data)
	mark, _ := m["mark"].(map[string]any)
	if len(m) != 4 || len(mark) != 1 || m["streamSid"] != sid || mark["name"] != "clip-1:end" {
		t.Errorf("echo = %s", f.data)
	}
	if _, ok := m["sequenceNumber"].(string); !ok {
		t.Errorf("echo sequenceNumber is not a string: %s", f.data)
	}
	if err := c.WaitMark(testCtx(t), "clip-1:end"); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.Played(), audio) || !bytes.Equal(c.Received(), audio) {
		t.Errorf("played %d bytes, received %d, want %d each", len(c.Played()), len(c.Received()), len(audio))
	}
	st := c.Stats()
	if st.Media != 1 || st.Bytes != len(audio) || st.Marks != 1 || st.Echoed != 1 || st.Played != len(audio) ||
		st.FirstMedia <= 0 || st.MaxBuffered != time.Second || st.Underruns != 0 || st.Errors != 0 {
		t.Errorf("stats %+v", st)
	}
	if got := c.Marks(); !reflect.DeepEqual(got, []string{"clip-1:end"}) {
		t.Errorf("Marks = %q", got)
	}
	if msgs := c.Messages(); len(msgs) != 2 || msgs[0].Event != "media" || msgs[1].Event != "mark" {
		t.Errorf("Messages = %+v", msgs)
	}
	if err := c.Hangup(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	p.checkSeq(t)
}

func TestMarksInOrderAndImmediateWhenEmpty(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := newTestServer(t, false)
	c := dial(t, Config{URL: s.url, Speed: 20})
	p := s.accept(t)
	sid := p.handshake(t).StreamSid

	// Nothing buffered: echoed at once.
	sent := p.sendMark(t, sid, "empty")
	if f := p.expect(t, twilio.EventMark); f.msg.Mark.Name != "empty" || f.at.Sub(sent) > time.Second {
		t.Errorf("echo %s after %v", f.data, f.at.Sub(sent))
	}
	names := []string{"a", `quote"d`, "c\\d", "é"}
	for _, n := range names {
		p.sendMedia(t, sid, tone(800)) // 100 ms, 5 ms at speed 20
		p.sendMark(t, sid, n)
	}
	for _, n := range names {
		if f := p.expect(t, twilio.EventMark); f.msg.Mark.Name != n {
			t.Errorf("echo %q, want %q", f.msg.Mark.Name, n)
		}
	}
	if got, want := c.Marks(), append([]string{"empty"}, names...); !reflect.DeepEqual(got, want) {
		t.Errorf("Marks = %q, want %q", got, want)
	}
	if got := c.Stats().Played; got != 4*800 {
		t.Errorf("played %d bytes", got)
	}
	if err := c.Hangup(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	p.checkSeq(t)
}

func TestClearDropsAudioAndEchoesPendingMarks(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := newTestServer(t, false)
	c := dial(t, Config{URL: s.url})
	p := s.accept(t)
	sid := p.handshake(t).StreamSid
	ctx := testCtx(t)

	total := 0
	for i := range 10 { // 10 s in real time
		p.sendMedia(t, sid, tone(BytesPerSecond))
		total += BytesPerSecond
		if i == 4 {
			p.sendMark(t, sid, "half")
		}
	}
	p.sendMark(t, sid, "end")
	if err := c.WaitPlayed(ctx, 1600); err != nil {
		t.Fatal(err)
	}
	sent := p.sendClear(t, sid)
	for _, n := range []string{"half", "end"} {
		f := p.expect(t, twilio.EventMark)
		if f.msg.Mark.Name != n {
			t.Errorf("echo %q, want %q", f.msg.Mark.Name, n)
		}
		if d := f.at.Sub(sent); d > time.Second {
			t.Errorf("echo of %q %v after clear", n, d)
		}
	}
	st := c.Stats()
	if st.Clears != 1 || st.Played+st.Cleared != total || st.Played > 3*BytesPerSecond || st.Bytes != total {
		t.Errorf("stats after clear %+v", st)
	}

	// Audio after a clear plays; the silence before it is no underrun.
	after := tone(800)
	p.sendMedia(t, sid, after)
	p.sendMark(t, sid, "after")
	if err := c.WaitMark(ctx, "after"); err != nil {
		t.Fatal(err)
	}
	played := c.Played()
	if !bytes.HasSuffix(played, after) || len(played) != st.Played+len(after) {
		t.Errorf("played %d bytes after clear, want %d ending with the new audio", len(played), st.Played+len(after))
	}
	if st := c.Stats(); st.Underruns != 0 {
		t.Errorf("underruns %d after clear", st.Underruns)
	}
	if err := c.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	p.checkSeq(t)
}

func TestProtocolViolationsRecorded(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := newTestServer(t, false)
	c := dial(t, Config{URL: s.url, Speed: 20})
	p := s.accept(t)
	sid := p.handshake(t).StreamSid
	other := "MZ" + strings.Repeat("0", 32)

	if err := p.ws.WriteMessage(websocket.BinaryMessage, twilio.AppendMedia(nil, sid, tone(160))); err != nil {
		t.Fatal(err)
	}
	bad := []string{
		`{"event":"media","streamSid":"` + sid + `","media":{"payload":"/w==","track":"outbound"}}`,
		`{"event":"clear","streamSid":"` + sid + `","sequenceNumber":"1"}`,
		string(twilio.AppendClear(nil, other)),
		`{"event":"media","streamSid":"` + sid + `","media":{}}`,
		`{"event":"stop","streamSid":"` + sid + `"}`,
		`not json`,
		`{"event":"mark","streamSid":"` + sid + `","mark":{"name":""}}`,
	}
	for _, b := range bad {
		p.send(t, b)
	}
	p.sendMark(t, sid, "still-alive")
	if f := p.expect(t, twilio.EventMark); f.msg.Mark.Name != "still-alive" {
		t.Fatalf("echo %s", f.data)
	}
	want := []error{ErrBinaryFrame, twilio.ErrUnexpectedData, twilio.ErrUnexpectedData, ErrWrongStream,
		twilio.ErrMissingField, twilio.ErrUnknownEvent, twilio.ErrBadJSON, twilio.ErrMissingField}
	errs := c.Errs()
	if len(errs) != len(want) {
		t.Fatalf("Errs = %v, want %d", errs, len(want))
	}
	for i, err := range errs {
		if !errors.Is(err, want[i]) || !errors.Is(err, twilio.ErrProtocol) {
			t.Errorf("error %d = %v, want %v", i, err, want[i])
		}
	}
	st := c.Stats()
	if st.Errors != len(want) || st.Media != 0 || st.Clears != 0 || st.Marks != 1 {
		t.Errorf("stats %+v", st)
	}
	if msgs := c.Messages(); len(msgs) != 1 || msgs[0].Mark == nil || msgs[0].Mark.Name != "still-alive" {
		t.Errorf("Messages = %+v", msgs)
	}
	if err := c.Hangup(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestUnderrunCounted(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := newTestServer(t, false)
	c := dial(t, Config{URL: s.url, Speed: 10})
	p := s.accept(t)
	sid := p.handshake(t).StreamSid
	ctx := testCtx(t)

	p.sendMedia(t, sid, tone(800)) // 100 ms of audio, 10 ms at speed 10
	if err := c.WaitPlayed(ctx, 800); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // a 500 ms hole in stream time
	p.sendMedia(t, sid, tone(800))
	p.sendMark(t, sid, "end")
	if err := c.WaitMark(ctx, "end"); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.Underruns != 1 || st.UnderrunTime < 450*time.Millisecond || st.UnderrunTime > 10*time.Second || st.Played != 1600 {
		t.Errorf("stats %+v, want one underrun of about 500ms", st)
	}
	if err := c.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDTMF(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := newTestServer(t, false)
	c := dial(t, Config{URL: s.url})
	p := s.accept(t)
	sid := p.handshake(t).StreamSid
	for _, d := range []string{"", "12", "a", "A"} {
		if err := c.SendDTMF(d); !errors.Is(err, ErrBadDigit) {
			t.Errorf("SendDTMF(%q) = %v", d, err)
		}
	}
	for _, d := range []string{"5", "#", "*", "0"} {
		if err := c.SendDTMF(d); err != nil {
			t.Fatal(err)
		}
		f := p.expect(t, twilio.EventDTMF)
		m := keys(t, f.data)
		dtmf, _ := m["dtmf"].(map[string]any)
		want := map[string]any{"track": "inbound_track", "digit": d}
		if len(m) != 4 || m["streamSid"] != sid || !reflect.DeepEqual(dtmf, want) {
			t.Errorf("dtmf = %s", f.data)
		}
	}
	if err := c.Hangup(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.SendDTMF("1"); !errors.Is(err, ErrClosed) {
		t.Errorf("SendDTMF after Hangup = %v", err)
	}
	p.checkSeq(t)
}

func TestHangupSendsStopAndCloses(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := newTestServer(t, false)
	c := dial(t, Config{URL: s.url, Speed: 5})
	p := s.accept(t)
	sid := p.handshake(t).StreamSid
	p.expect(t, twilio.EventMedia)
	p.sendMedia(t, sid, tone(8000)) // still playing at hang-up
	p.sendMark(t, sid, "never")

	if err := c.Hangup(testCtx(t)); err != nil {
		t.Fatalf("Hangup: %v", err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after Hangup")
	}
	stop := p.expect(t, twilio.EventStop)
	m := keys(t, stop.data)
	want := map[string]any{
		"event":          "stop",
		"sequenceNumber": stop.msg.SequenceNumber,
		"streamSid":      sid,
		"stop":           map[string]any{"accountSid": c.AccountSid(), "callSid": c.CallSid()},
	}
	if !reflect.DeepEqual(m, want) {
		t.Errorf("stop = %v, want %v", m, want)
	}
	if f, ok := p.next(t); ok {
		t.Errorf("message after stop: %s", f.data)
	}
	if !websocket.IsCloseError(p.closeErr, websocket.CloseNormalClosure) {
		t.Errorf("server saw %v, want a normal close", p.closeErr)
	}
	p.checkSeq(t)
	if err := c.Err(); err != nil {
		t.Errorf("Err = %v", err)
	}
	st := c.Stats()
	if st.ServerClosed || st.Echoed != 0 {
		t.Errorf("stats %+v", st)
	}
	if err := c.Hangup(testCtx(t)); err != nil {
		t.Errorf("second Hangup: %v", err)
	}
	if err := c.WaitMark(testCtx(t), "never"); !errors.Is(err, ErrClosed) {
		t.Errorf("WaitMark after Hangup = %v", err)
	}
}

func TestServerCloseNoticed(t *testing.T) {
	tests := []struct {
		name    string
		close   func(p *peer) error
		wantErr bool
	}{
		{"close frame", func(p *peer) error {
			return p.ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "done"))
		}, false},
		{"connection dropped", func(p *peer) error { return p.ws.NetConn().Close() }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calltest.CheckGoroutines(t)
			s := newTestServer(t, false)
			c := dial(t, Config{URL: s.url})
			p := s.accept(t)
			p.handshake(t)
			if err := tt.close(p); err != nil {
				t.Fatal(err)
			}
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("server close not noticed")
			}
			if err := c.Err(); (err != nil) != tt.wantErr {
				t.Errorf("Err = %v, want error %v", err, tt.wantErr)
			}
			if !c.Stats().ServerClosed {
				t.Error("ServerClosed not set")
			}
			if err := c.WaitPlayed(testCtx(t), 1); !errors.Is(err, ErrClosed) {
				t.Errorf("WaitPlayed after close = %v", err)
			}
			if err := c.Hangup(testCtx(t)); err != nil {
				t.Errorf("Hangup after server close = %v", err)
			}
		})
	}
}

func TestCloseDropsWithoutStop(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := newTestServer(t, false)
	c := dial(t, Config{URL: s.url})
	p := s.accept(t)
	p.handshake(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for {
		f, ok := p.next(t)
		if !ok {
			break
		}
		if f.msg == nil || f.msg.Event != twilio.EventMedia {
			t.Errorf("message at close: %s", f.data)
		}
	}
	if c.Err() != nil || c.Stats().ServerClosed {
		t.Errorf("Err = %v, stats %+v", c.Err(), c.Stats())
	}
}

func TestWSS(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := newTestServer(t, true)
	pool := x509.NewCertPool()
	pool.AddCert(s.srv.Certificate())
	c := dial(t, Config{URL: s.url, TLSConfig: &tls.Config{RootCAs: pool}, Speed: 20})
	p := s.accept(t)
	sid := p.handshake(t).StreamSid
	p.sendMedia(t, sid, tone(800))
	p.sendMark(t, sid, "tls")
	if err := c.WaitMark(testCtx(t), "tls"); err != nil {
		t.Fatal(err)
	}
	if err := c.Hangup(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	s.srv.CloseClientConnections()
}

func TestDialErrors(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := newTestServer(t, false)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "ws://" + l.Addr().String() + "/media-stream"
	l.Close()
	untrusted := quietServer(http.NotFoundHandler(), true)
	defer untrusted.Close()

	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no url", Config{}, "no URL"},
		{"negative speed", Config{URL: s.url, Speed: -1}, "speed"},
		{"bad stream sid", Config{URL: s.url, StreamSid: "MZ.*"}, "stream SID"},
		{"not found", Config{URL: strings.TrimSuffix(s.url, "/media-stream") + "/other"}, "HTTP 404"},
		{"refused", Config{URL: closed}, "dial"},
		{"untrusted certificate", Config{URL: "wss" + strings.TrimPrefix(untrusted.URL, "https")}, "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Dial(testCtx(t), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Dial = %v, %v; want an error with %q", c, err, tt.want)
			}
			if c != nil {
				c.Close()
			}
		})
	}
}

func TestWaitIdleAndRun(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := newTestServer(t, false)
	audio := tone(1600)
	go serveClip(s, audio, "last")
	start := time.Now()
	c, err := Run(testCtx(t), Config{URL: s.url, Speed: 10}, Until{Quiet: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Run returned an open call")
	}
	if !bytes.Equal(c.Played(), audio) || !reflect.DeepEqual(c.Marks(), []string{"last"}) {
		t.Errorf("played %d bytes, marks %q", len(c.Played()), c.Marks())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v", d)
	}
}

func TestRunDuration(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := newTestServer(t, false)
	start := time.Now()
	go serveClip(s, nil, "")
	c, err := Run(testCtx(t), Config{URL: s.url}, Until{Duration: 200 * time.Millisecond, Quiet: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("Run took %v, want about 200ms", d)
	}
	if st := c.Stats(); st.CallerMedia < 5 || st.Media != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestBufferCapDiscardsAndWarnsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 10 minutes of audio")
	}
	calltest.CheckGoroutines(t)
	s := newTestServer(t, false)
	c := dial(t, Config{URL: s.url})
	p := s.accept(t)
	sid := p.handshake(t).StreamSid
	p.sendMedia(t, sid, make([]byte, maxBufferedBytes)) // 10 minutes: full
	p.sendMedia(t, sid, tone(30*BytesPerSecond))        // more than can play meanwhile: refused
	p.sendMedia(t, sid, tone(30*BytesPerSecond))        // refused again, no second warning
	p.sendMark(t, sid, "m")
	ctx := testCtx(t)
	if err := c.wait(ctx, func() bool { return c.st.Marks == 1 }); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if st.Discarded != 60*BytesPerSecond || st.Errors != 1 || st.MaxBuffered != MaxBuffered {
		t.Errorf("stats %+v", st)
	}
	if errs := c.Errs(); len(errs) != 1 || !errors.Is(errs[0], ErrBufferFull) {
		t.Errorf("Errs = %v", errs)
	}
	if err := c.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestHangupWhenServerNeverAnswersClose(t *testing.T) {
	calltest.CheckGoroutines(t)
	release := make(chan struct{})
	started := make(chan struct{})
	srv := quietServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		for range 2 { // connected, start; then stop reading
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
		close(started)
		<-release
	}), false)
	defer srv.Close()
	defer close(release)
	c := dial(t, Config{URL: "ws" + strings.TrimPrefix(srv.URL, "http")})
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	begin := time.Now()
	if err := c.Hangup(ctx); err != nil {
		t.Errorf("Hangup = %v", err)
	}
	if d := time.Since(begin); d > closeWait {
		t.Errorf("Hangup took %v with a 200ms context", d)
	}
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed")
	}
}

func TestAppendCallerMediaIsWhatEncodingJSONWrites(t *testing.T) {
	const sid = "MZ0123456789abcdef0123456789abcdef"
	for _, ulaw := range [][]byte{tone(FrameBytes), bytes.Repeat([]byte{0xFF}, FrameBytes), tone(1), tone(2)} {
		want, err := json.Marshal(twilio.Message{
			Event: twilio.EventMedia, SequenceNumber: "12", StreamSid: sid,
			Media: &twilio.Media{Track: "inbound", Chunk: "11", Timestamp: "220", Payload: base64.StdEncoding.EncodeToString(ulaw)},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendCallerMedia(nil, 12, sid, 11, 220, ulaw); !bytes.Equal(got, want) {
			t.Errorf("appendCallerMedia:\n%s\nencoding/json:\n%s", got, want)
		}
	}
}

// TestCountOnly: a call that keeps no audio counts and plays out exactly as
// one that does, including payloads ending in base64 padding.
func TestCountOnly(t *testing.T) {
	calltest.CheckGoroutines(t)
	s := newTestServer(t, false)
	c := dial(t, Config{URL: s.url, Speed: 20, CountOnly: true})
	p := s.accept(t)
	sid := p.handshake(t).StreamSid
	p.sendMedia(t, sid, tone(BytesPerSecond/2+1)) // payload ends "=="
	p.sendMedia(t, sid, tone(BytesPerSecond/2+2)) // "="
	p.sendMark(t, sid, "end")
	p.expect(t, twilio.EventMark)
	if err := c.WaitMark(testCtx(t), "end"); err != nil {
		t.Fatal(err)
	}
	const n = BytesPerSecond + 3
	st := c.Stats()
	if st.Media != 2 || st.Bytes != n || st.Played != n || st.Marks != 1 || st.Echoed != 1 || st.Errors != 0 {
		t.Errorf("stats %+v, want 2 messages and %d bytes played", st, n)
	}
	if len(c.Received()) != 0 || len(c.Played()) != 0 || len(c.Messages()) != 0 {
		t.Errorf("kept %d bytes received, %d played, %d messages", len(c.Received()), len(c.Played()), len(c.Messages()))
	}
	if err := c.Hangup(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	p.checkSeq(t)
}
