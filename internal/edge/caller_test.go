package edge

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/callsim"
	"github.com/callcast/callcast/internal/twilio"
)

// inMsg is one caller audio message as a subscriber sees it.
type inMsg struct {
	subject string
	seq, ts int64
	data    []byte
	at      time.Time
}

// inSub collects caller audio messages.
type inSub struct {
	mu   sync.Mutex
	msgs []inMsg
}

func subscribeIn(t *testing.T, nc *nats.Conn, subject string) *inSub {
	t.Helper()
	s := &inSub{}
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		seq, err1 := strconv.ParseInt(m.Header.Get(bus.HeaderSeq), 10, 64)
		ts, err2 := strconv.ParseInt(m.Header.Get(bus.HeaderTimestamp), 10, 64)
		if err1 != nil || err2 != nil {
			t.Errorf("caller audio headers %v", m.Header)
		}
		s.mu.Lock()
		s.msgs = append(s.msgs, inMsg{subject: m.Subject, seq: seq, ts: ts, data: m.Data, at: time.Now()})
		s.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *inSub) snapshot() []inMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]inMsg(nil), s.msgs...)
}

func (s *inSub) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// sendMedia sends one caller frame as Twilio does.
func (p *peer) sendMedia(chunk, ts int64, ulaw []byte) {
	p.t.Helper()
	p.send(twilio.Message{Event: twilio.EventMedia, Media: &twilio.Media{
		Track: "inbound", Chunk: strconv.FormatInt(chunk, 10), Timestamp: strconv.FormatInt(ts, 10),
		Payload: base64.StdEncoding.EncodeToString(ulaw),
	}})
}

func frame(b byte) []byte { return bytes.Repeat([]byte{b}, frameBytes) }

// dialCall places a callsim call to the edge at addr saying audio.
func dialCall(t *testing.T, addr string, audio []byte, params map[string]string) *callsim.Call {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := callsim.Dial(ctx, callsim.Config{URL: "ws://" + addr + PathMediaStream, CallerAudio: bytes.NewReader(audio), Parameters: params})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Hangup(ctx)
	})
	return c
}

// TestCallerAudioByteExact: 50 concurrent calls asking for their audio with
// callerAudio=on each get exactly what their caller said on .in, in order,
// with consecutive Seq headers.
func TestCallerAudioByteExact(t *testing.T) {
	addr, nc := serve(t, Config{VAD: "off"})
	in := subscribeIn(t, nc, "callcast.stream.*.in")
	const calls = 50
	const frames = 25 // half a second each
	said := map[string][]byte{}
	var cs []*callsim.Call
	for i := range calls {
		audio := make([]byte, frames*frameBytes)
		r := rand.New(rand.NewPCG(uint64(i), 7))
		for j := range audio {
			audio[j] = byte(r.IntN(255)) // never 0xFF, the silence after
		}
		c := dialCall(t, addr, audio, map[string]string{ParamCallerAudio: "on"})
		said[bus.StreamIn(c.StreamSid())] = audio
		cs = append(cs, c)
	}
	heard := func() map[string][]inMsg {
		m := map[string][]inMsg{}
		for _, msg := range in.snapshot() {
			m[msg.subject] = append(m[msg.subject], msg)
		}
		return m
	}
	waitFor(t, "every caller's audio on .in", func() bool {
		h := heard()
		for subj, audio := range said {
			n := 0
			for _, m := range h[subj] {
				n += len(m.data)
			}
			if n < len(audio)+frameBytes {
				return false
			}
		}
		return true
	})
	dropped := 0
	for _, c := range cs {
		dropped += c.Stats().CallerDropped
	}
	missing := 0
	for subj, msgs := range heard() {
		audio := said[subj]
		next := int64(1)
		for i, m := range msgs {
			if len(m.data) != frameBytes {
				t.Fatalf("%s: message %d holds %d bytes, want one frame", subj, i, len(m.data))
			}
			// callsim drops a frame whose time passed while its socket
			// was backed up, as Twilio does: a gap in Seq, never a
			// frame out of place.
			if m.seq < next {
				t.Fatalf("%s: message %d has Seq %d after %d", subj, i, m.seq, next-1)
			}
			missing += int(m.seq - next)
			next = m.seq + 1
			if i > 0 && m.ts <= msgs[i-1].ts {
				t.Fatalf("%s: timestamps %d then %d", subj, msgs[i-1].ts, m.ts)
			}
			want := frame(0xFF)
			if off := int(m.seq-1) * frameBytes; off < len(audio) {
				want = audio[off : off+frameBytes]
			}
			if !bytes.Equal(m.data, want) {
				t.Fatalf("%s: frame %d on .in differs from what the caller said", subj, m.seq)
			}
		}
	}
	if missing > dropped {
		t.Fatalf("%d frames missing on .in, callers dropped %d", missing, dropped)
	}
	t.Logf("%d frames dropped by the callers' sockets", dropped)
	if len(heard()) != calls {
		t.Fatalf("audio of %d calls, want %d", len(heard()), calls)
	}
}

// listen requests a lease on sid's audio.
func listen(t *testing.T, nc *nats.Conn, sid string, leaseMs int64) bus.ListenReply {
	t.Helper()
	body, _ := json.Marshal(bus.ListenRequest{Type: bus.TypeListenRequest, LeaseMs: leaseMs})
	resp, err := nc.Request(bus.StreamListen(sid), body, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var r bus.ListenReply
	if err := json.Unmarshal(resp.Data, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestListenLease: without a lease nothing is published; a lease publishes
// until it runs out, unless renewed.
func TestListenLease(t *testing.T) {
	addr, nc := serve(t, Config{VAD: "off", CallerAudioBatch: 100 * time.Millisecond})
	started := subscribe(t, nc, bus.SubjectStreamStarted)
	c := dialCall(t, addr, nil, nil)
	in := subscribeIn(t, nc, bus.StreamIn(c.StreamSid()))
	started.wait(t, 1)
	// Twilio's frames flow; nobody listens: nothing on .in.
	time.Sleep(300 * time.Millisecond)
	if n := in.len(); n != 0 {
		t.Fatalf("%d messages on .in before any lease", n)
	}

	r := listen(t, nc, c.StreamSid(), 1500)
	granted := time.Now()
	if r.Error != nil || r.LeaseMs != 1500 || r.Subject != bus.StreamIn(c.StreamSid()) || r.Type != bus.TypeListenReply {
		t.Fatalf("listen reply %+v", r)
	}
	waitFor(t, "caller audio under the lease", func() bool { return in.len() >= 3 })
	// Renew once: the lease runs 1.5 s from the renewal.
	time.Sleep(500 * time.Millisecond)
	if r := listen(t, nc, c.StreamSid(), 1500); r.Error != nil {
		t.Fatalf("renewal: %+v", r.Error)
	}
	renewed := time.Now()
	expiry := renewed.Add(1500 * time.Millisecond)
	waitFor(t, "the lease to run out", func() bool { return time.Now().After(expiry.Add(500 * time.Millisecond)) })
	msgs := in.snapshot()
	last := msgs[len(msgs)-1]
	if last.at.After(expiry.Add(250 * time.Millisecond)) {
		t.Fatalf("caller audio published %v after the lease ran out", last.at.Sub(expiry))
	}
	if last.at.Before(expiry.Add(-250 * time.Millisecond)) {
		t.Fatalf("caller audio stopped %v before the lease ran out", expiry.Sub(last.at))
	}
	// About 2 s of audio, in messages of up to 100 ms of consecutive
	// frames (fewer where callsim dropped a late frame).
	var total int
	for i, m := range msgs[:len(msgs)-1] {
		total += len(m.data)
		if len(m.data) > 800 || len(m.data)%frameBytes != 0 || msgs[i+1].seq < m.seq+int64(len(m.data)/frameBytes) {
			t.Fatalf("message %d: %d bytes, Seq %d then %d", i, len(m.data), m.seq, msgs[i+1].seq)
		}
	}
	if got := time.Duration(total/8) * time.Millisecond; got < expiry.Sub(granted)-500*time.Millisecond {
		t.Fatalf("%v of audio published under a %v lease", got, expiry.Sub(granted))
	}
	n := in.len()
	time.Sleep(300 * time.Millisecond)
	if in.len() != n {
		t.Fatal("caller audio published after the lease ran out")
	}
}

// TestListenErrors: bad requests, unknown streams and CALLER_AUDIO=off.
func TestListenErrors(t *testing.T) {
	addr, nc := serve(t, Config{VAD: "off", CallerAudio: CallerAudioOff})
	started := subscribe(t, nc, bus.SubjectStreamStarted)
	c := dialCall(t, addr, nil, map[string]string{ParamCallerAudio: "on"})
	in := subscribeIn(t, nc, bus.StreamIn(c.StreamSid()))
	started.wait(t, 1)
	if r := listen(t, nc, c.StreamSid(), 0); r.Error == nil || r.Error.Code != bus.CodeUnavailable {
		t.Fatalf("CALLER_AUDIO=off: listen reply %+v", r)
	}
	resp, err := nc.Request(bus.StreamListen(c.StreamSid()), []byte(`{"leaseMs":"x"}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var r bus.ListenReply
	if err := json.Unmarshal(resp.Data, &r); err != nil || r.Error == nil || r.Error.Code != bus.CodeBadRequest {
		t.Fatalf("bad request: reply %s", resp.Data)
	}
	if _, err := nc.Request(bus.StreamListen("MZnone"), nil, 2*time.Second); err != nats.ErrNoResponders {
		t.Fatalf("listen on no call: %v, want no responders", err)
	}
	time.Sleep(200 * time.Millisecond)
	if in.len() != 0 {
		t.Fatal("CALLER_AUDIO=off published caller audio")
	}
	if _, err := New(nc, Config{CallerAudio: "sometimes"}); err == nil {
		t.Fatal("CALLER_AUDIO=sometimes accepted")
	}
	if _, err := New(nc, Config{CallerAudioBatch: time.Second}); err == nil {
		t.Fatal("CALLER_AUDIO_BATCH=1s accepted")
	}
}

// TestCallerAudioGaps: lost, repeated and reordered frames start new
// messages, so that the headers show them.
func TestCallerAudioGaps(t *testing.T) {
	addr, nc := serve(t, Config{VAD: "off", CallerAudio: CallerAudioOn, CallerAudioBatch: 60 * time.Millisecond})
	p := dialPeer(t, addr)
	started := subscribe(t, nc, bus.SubjectStreamStarted)
	in := subscribeIn(t, nc, bus.StreamIn(p.sid))
	p.start(nil)
	started.wait(t, 1)
	type sent struct {
		chunk int64
		size  int
	}
	for _, f := range []sent{{1, 160}, {2, 160}, {3, 160}, {5, 160}, {4, 160}, {6, 160}, {7, 160}, {8, 160}, {8, 160}, {9, 80}, {10, 160}, {11, 160}, {12, 160}} {
		p.sendMedia(f.chunk, f.chunk*20, frame(byte(f.chunk))[:f.size])
	}
	type want struct {
		seq    int64
		chunks []byte
	}
	wants := []want{
		{1, []byte{1, 2, 3}}, // a full batch
		{5, []byte{5}},       // 4 is missing: 5 does not follow 3
		{4, []byte{4}},       // 4 comes late
		{6, []byte{6, 7, 8}},
		{8, []byte{8}},           // 8 again
		{9, []byte{9}},           // 80 bytes: alone
		{10, []byte{10, 11, 12}}, // and on
	}
	got := func() []inMsg { return in.snapshot() }
	waitFor(t, "caller audio", func() bool { return len(got()) >= len(wants) })
	msgs := got()
	for i, w := range wants {
		m := msgs[i]
		var data []byte
		for _, c := range w.chunks {
			f := frame(c)
			if c == 9 {
				f = f[:80]
			}
			data = append(data, f...)
		}
		if m.seq != w.seq || m.ts != w.seq*20 || !bytes.Equal(m.data, data) {
			t.Fatalf("message %d: Seq %d, timestamp %d, %d bytes; want Seq %d, timestamp %d, chunks %v", i, m.seq, m.ts, len(m.data), w.seq, w.seq*20, w.chunks)
		}
	}
	// The stream's end flushes a partial batch.
	p.sendMedia(13, 260, frame(13))
	p.send(twilio.Message{Event: twilio.EventStop, Stop: &twilio.Stop{}})
	waitFor(t, "the last frame", func() bool { return len(got()) == len(wants)+1 })
	if m := got()[len(wants)]; m.seq != 13 || !bytes.Equal(m.data, frame(13)) {
		t.Fatalf("last message Seq %d, %d bytes", m.seq, len(m.data))
	}
}

// TestCallerMetrics: published and dropped caller audio is counted.
func TestCallerMetrics(t *testing.T) {
	addr, nc := serve(t, Config{VAD: "off", CallerAudio: CallerAudioOn})
	p := dialPeer(t, addr)
	started := subscribe(t, nc, bus.SubjectStreamStarted)
	in := subscribeIn(t, nc, bus.StreamIn(p.sid))
	p.start(nil)
	started.wait(t, 1)
	p.sendMedia(1, 0, frame(1))
	p.sendRaw(1, `{"event":"media","sequenceNumber":"9","streamSid":"`+p.sid+`","media":{"track":"inbound","chunk":"2","timestamp":"20","payload":"!!!!"}}`)
	p.sendMedia(3, 40, frame(3))
	waitFor(t, "caller audio", func() bool { return in.len() == 2 })
	resp, err := http.Get("http://" + addr + PathMetrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	for _, want := range []string{
		"callcast_edge_caller_audio_messages_total 2",
		"callcast_edge_caller_audio_bytes_total 320",
		`callcast_edge_caller_audio_dropped_total{reason="bad_frame"} 1`,
	} {
		if !bytes.Contains(b.Bytes(), []byte(want)) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestCallerAudioHotLine: what the reader looks at for every caller frame
// fits the first cache line of its caller audio, and the detector follows.
// (The read loop keeps the socket and the caller audio in locals: the
// session's own line is not read for caller frames.)
func TestCallerAudioHotLine(t *testing.T) {
	var c callerAudio
	if end := unsafe.Offsetof(c.sid) + unsafe.Sizeof(c.sid); end > 64 {
		t.Errorf("callerAudio's per-frame fields end at byte %d, past the first cache line", end)
	}
	// The detector follows that line in the same block, where prefetch
	// finds it without a load: its address is c's.
	if off := unsafe.Offsetof(c.det); off != 64 {
		t.Errorf("callerAudio's detector at byte %d, want 64, just after its per-frame line", off)
	}
}

// TestCallerAudioOurs: a media message is the call's by its stream SID,
// whether the SID fits the inline copy or not.
func TestCallerAudioOurs(t *testing.T) {
	long := "MZ" + strings.Repeat("0123456789", 6)
	for _, sid := range []string{"MZ0123456789abcdef0123456789abcdef", "M", long[:inlineSid], long[:inlineSid+1], long} {
		c := &callerAudio{ss: &session{sid: sid}}
		c.setSid(sid)
		if !c.ours([]byte(sid)) {
			t.Errorf("%q: not ours", sid)
		}
		for _, other := range []string{"", sid[:len(sid)-1], sid + "0", "X" + sid[1:]} {
			if c.ours([]byte(other)) {
				t.Errorf("%q: %q taken as ours", sid, other)
			}
		}
	}
}
