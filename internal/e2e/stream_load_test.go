package e2e

import (
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/twilio"
)

// TestStreamFirstChunkLoad measures, with CALLCAST_STREAM_LOAD=N set (100
// for the README's figure), the time from a producer publishing a streamed
// playback's first chunk to the first media message reaching Twilio, over
// N calls on loopback whose streamed playbacks (24 kHz PCM, or μ-law with
// CALLCAST_STREAM_LOAD_FORMAT=mulaw; 20 ms chunks in real time, or
// CALLCAST_STREAM_LOAD_CHUNK long; 3 s each)
// start 10 ms apart, so that each first chunk meets the other streams in
// steady state. It prints the percentiles; it
// asserts nothing about them (they are the machine's).
//
//	CALLCAST_STREAM_LOAD=100 go test -run TestStreamFirstChunkLoad -v ./internal/e2e
func TestStreamFirstChunkLoad(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CALLCAST_STREAM_LOAD"))
	if n <= 0 {
		t.Skip("set CALLCAST_STREAM_LOAD=100 to run")
	}
	s := streamSystem(t, 0, nil)
	// Twilio's side: a bare socket per call that takes note of the first
	// media message and echoes marks at once (playout is not measured).
	type peer struct {
		sid   string
		conn  *websocket.Conn
		first chan time.Time
	}
	peers := make([]*peer, n)
	var readers sync.WaitGroup
	for i := range peers {
		conn, _, err := websocket.DefaultDialer.Dial(s.wsURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := &peer{sid: newSid("MZ"), conn: conn, first: make(chan time.Time, 1)}
		peers[i] = p
		start, _ := json.Marshal(twilio.Message{Event: twilio.EventStart, StreamSid: p.sid, Start: &twilio.Start{
			StreamSid: p.sid, CallSid: newSid("CA"), AccountSid: newSid("AC"), Tracks: []string{"inbound"},
			MediaFormat: twilio.MediaFormat{Encoding: "audio/x-mulaw", SampleRate: 8000, Channels: 1}}})
		if err := conn.WriteMessage(websocket.TextMessage, start); err != nil {
			t.Fatal(err)
		}
		readers.Go(func() {
			got := false
			for {
				_, data, err := conn.ReadMessage()
				if err != nil {
					return
				}
				now := time.Now()
				out, err := twilio.ParseOutbound(data)
				if err != nil {
					continue
				}
				switch {
				case out.Event == twilio.EventMedia && !got:
					got = true
					p.first <- now
				case out.Event == twilio.EventMark:
					echo, _ := json.Marshal(twilio.Message{Event: twilio.EventMark, StreamSid: p.sid, Mark: out.Mark})
					_ = conn.WriteMessage(websocket.TextMessage, echo)
				}
			}
		})
	}
	defer func() {
		for _, p := range peers {
			_ = p.conn.Close()
		}
		readers.Wait()
	}()
	for _, p := range peers {
		waitForStart(t, s, p.sid)
	}

	second := pcmSignal(24000, 1, 3*time.Second)
	chunk := 960 // 20 ms at 24 kHz
	f := bus.StreamFormat{Format: bus.FormatPCMS16LE, SampleRate: 24000, Channels: 1}
	if os.Getenv("CALLCAST_STREAM_LOAD_FORMAT") == "mulaw" {
		second, chunk, f = mulawTone(440, 3*time.Second), 160, bus.StreamFormat{Format: bus.FormatMulaw}
	}
	every := 20 * time.Millisecond
	if d, err := time.ParseDuration(os.Getenv("CALLCAST_STREAM_LOAD_CHUNK")); err == nil && d >= 20*time.Millisecond {
		chunk, every = chunk*int(d/every), d
	}
	lat := make([]time.Duration, n)
	var producers sync.WaitGroup
	for i, p := range peers {
		time.Sleep(10 * time.Millisecond)
		r := startStream(t, s.nc, bus.PlayRequest{StreamSid: p.sid, Stream: &f})
		producers.Go(func() {
			tick := time.NewTicker(every)
			defer tick.Stop()
			var t0 time.Time
			seq := 0
			for off := 0; off < len(second); off += chunk {
				seq++
				if seq == 1 {
					t0 = time.Now()
				}
				publishChunk(t, s.nc, r.AudioSubject, seq, second[off:min(off+chunk, len(second))], false)
				<-tick.C
			}
			publishChunk(t, s.nc, r.AudioSubject, seq+1, nil, true)
			select {
			case at := <-p.first:
				lat[i] = at.Sub(t0)
			case <-time.After(10 * time.Second):
				t.Errorf("call %d: no media", i)
			}
		})
	}
	producers.Wait()
	slices.Sort(lat)
	pct := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	t.Logf("%d concurrent %s streamed playbacks in %s chunks: first chunk published → first media at Twilio: p50 %s, p95 %s, p99 %s, max %s",
		n, f.String(), every, pct(0.50).Round(10*time.Microsecond), pct(0.95).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
}
