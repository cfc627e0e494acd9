package edge

import (
	"bytes"
	"encoding/base64"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/twilio"
	"github.com/callcast/callcast/internal/vad"
)

// BenchmarkRelayMedia is the edge's per-message hot path: a worker's 100 ms
// media message from the bus, checked and re-encoded for Twilio.
func BenchmarkRelayMedia(b *testing.B) {
	payload := base64.StdEncoding.EncodeToString(make([]byte, 800))
	msg := []byte(`{"event":"media","media":{"payload":"` + payload + `"}}`)
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	b.SetBytes(800)
	for b.Loop() {
		out, err := bus.DecodeOut(msg)
		if err != nil {
			b.Fatal(err)
		}
		buf = twilio.AppendMediaBase64(buf[:0], "MZ0123456789abcdef0123456789abcdef", out.Media.Payload)
	}
}

// BenchmarkParseCallerMedia is what an inbound caller media message costs
// when decoded in full (the read loop skips it once the stream has started).
func BenchmarkParseCallerMedia(b *testing.B) {
	msg := []byte(`{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"` +
		base64.StdEncoding.EncodeToString(make([]byte, 160)) + `"},"streamSid":"MZ0123456789abcdef0123456789abcdef"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := twilio.ParseMessage(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// benchCaller is a started session's caller audio without a socket or a
// bus: for what reading caller media costs.
func benchCaller(tb testing.TB, vadOn bool) (*callerAudio, []byte) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		tb.Fatal(err)
	}
	sid := strings.Clone("MZ0123456789abcdef0123456789abcdef") // a call's own, as read from its start
	ss := &session{srv: &Server{metrics: m}, sid: sid, log: slog.New(slog.DiscardHandler)}
	c := &ss.callerMem // as startCaller lays it out
	*c = callerAudio{ss: ss, max: frameBytes}
	c.setSid(sid)
	if vadOn {
		c.det.Init(vad.Config{})
		c.vad = &c.det
	}
	// Quiet room noise: the VAD has to look at every sample.
	ulaw := make([]byte, frameBytes)
	for i := range ulaw {
		ulaw[i] = 0xF0 | byte(i%7)
	}
	msg := []byte(`{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"` +
		base64.StdEncoding.EncodeToString(ulaw) + `"},"streamSid":"` + sid + `"}`)
	return c, msg
}

// BenchmarkCallerMedia is what one caller media message costs the edge
// once read from the socket, with nobody listening: cut out of its JSON,
// base64-decoded into a reused buffer, and, with VAD=on, run through the
// detector. With VAD=off and no listener the read loop does not even get
// here (it skips the message unread).
func BenchmarkCallerMedia(b *testing.B) {
	for _, vadOn := range []bool{false, true} {
		name := "vad=off"
		if vadOn {
			name = "vad=on"
		}
		b.Run(name, func(b *testing.B) {
			c, msg := benchCaller(b, vadOn)
			scratch := getCallerScratch()
			b.ReportAllocs()
			for b.Loop() {
				c.take(msg, scratch)
			}
		})
	}
}

// BenchmarkCallerMediaCalls is BenchmarkCallerMedia/vad=on as an edge sees
// it under load, read from the socket's reader: each message goes to the
// next of many calls in turn, in an order the prefetcher cannot guess, so
// that what a call holds has left the core's caches by the time its next
// frame comes, as it has with hundreds of calls between one caller frame
// and the next.
func BenchmarkCallerMediaCalls(b *testing.B) {
	const calls = 10000
	cs := make([]*callerAudio, calls)
	var msg []byte
	for i := range cs {
		cs[i], msg = benchCaller(b, true)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(cs), func(i, j int) { cs[i], cs[j] = cs[j], cs[i] })
	head, rest := msg[:len(mediaPrefix)], msg[len(mediaPrefix):]
	r := bytes.NewReader(nil)
	b.ReportAllocs()
	k := 0
	for b.Loop() {
		r.Reset(rest)
		cs[k].prefetch() // as the read loop does once a message has begun
		if err := cs[k].read(head, r); err != nil {
			b.Fatal(err)
		}
		if k++; k == calls {
			k = 0
		}
	}
}

// BenchmarkCallerMediaPublish is one caller media message once read,
// published on .in (CALLER_AUDIO=on, 20 ms batches) to an in-process NATS
// server over loopback, with the VAD: what a call someone listens to costs
// the edge per frame, short of the socket. nats.go encodes the two headers
// anew for every message: two of the allocations; the in-process server
// makes the third.
func BenchmarkCallerMediaPublish(b *testing.B) {
	c, msg := benchCaller(b, true)
	c.always = true
	c.subject = bus.StreamIn(c.ss.sid)
	c.ss.srv.nc = connect(b, runNATS(b))
	scratch := getCallerScratch()
	b.ReportAllocs()
	for b.Loop() {
		c.take(msg, scratch)
	}
}

func TestCallerMediaAllocs(t *testing.T) {
	c, msg := benchCaller(t, true)
	scratch := getCallerScratch()
	if n := testing.AllocsPerRun(100, func() { c.take(msg, scratch) }); n != 0 {
		t.Fatalf("caller media with VAD: %v allocations per message, want 0", n)
	}
	r := bytes.NewReader(nil)
	if n := testing.AllocsPerRun(100, func() {
		r.Reset(msg[len(mediaPrefix):])
		_ = c.read(msg[:len(mediaPrefix)], r)
	}); n != 0 {
		t.Fatalf("reading caller media: %v allocations per message, want 0", n)
	}
}

// TestReadMessage: a message read in pieces of any size comes out whole,
// after what the buffer held, into the buffer when it fits.
func TestReadMessage(t *testing.T) {
	msg := bytes.Repeat([]byte("0123456789"), 500)
	for _, tc := range []struct {
		name  string
		piece int
		cap   int
	}{
		{"one read, room", 5000, 8192},
		{"one read, no room", 5000, 0},
		{"bytes", 1, 16},
		{"uneven pieces", 333, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := append(make([]byte, 0, tc.cap), "head"...)
			before := &b[:1][0]
			got, err := readMessage(b, &pieceReader{r: bytes.NewReader(msg), n: tc.piece})
			if err != nil {
				t.Fatal(err)
			}
			if want := append([]byte("head"), msg...); !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(want))
			}
			if tc.cap >= len(msg)+4 && &got[0] != before {
				t.Fatal("grew a buffer with room for the message")
			}
		})
	}
	if _, err := readMessage(nil, iotest.ErrReader(io.ErrUnexpectedEOF)); err != io.ErrUnexpectedEOF {
		t.Fatalf("error %v, want the reader's", err)
	}
}

// pieceReader reads at most n bytes at a time.
type pieceReader struct {
	r io.Reader
	n int
}

func (p *pieceReader) Read(b []byte) (int, error) { return p.r.Read(b[:min(len(b), p.n)]) }

// TestCallerReadOutsized: a caller media message far larger than Twilio's
// 20 ms is read and decoded whole, and the scratch it grew is not kept for
// the next message.
func TestCallerReadOutsized(t *testing.T) {
	c, _ := benchCaller(t, true)
	audio := bytes.Repeat([]byte{0xF1, 0x72}, 4000) // a second
	msg := []byte(`{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"` +
		base64.StdEncoding.EncodeToString(audio) + `"},"streamSid":"` + c.ss.sid + `"}`)
	var got []byte
	callerReadHook = func(ulaw []byte, _ time.Time) { got = append([]byte(nil), ulaw...) }
	t.Cleanup(func() { callerReadHook = nil })
	if err := c.read(msg[:len(mediaPrefix)], bytes.NewReader(msg[len(mediaPrefix):])); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, audio) {
		t.Fatalf("decoded %d bytes, want the %d sent", len(got), len(audio))
	}
	s := getCallerScratch()
	defer putCallerScratch(s)
	if cap(s.msg) > maxKeptBuf || cap(s.ulaw) > maxKeptBuf {
		t.Fatalf("the next message got the outsized scratch: %d and %d bytes", cap(s.msg), cap(s.ulaw))
	}
}
