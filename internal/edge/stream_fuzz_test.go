package edge

import (
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/bus"
)

// streamFormats are what FuzzStreamChunks picks from by its first byte.
var streamFormats = []bus.StreamFormat{
	{Format: bus.FormatMulaw},
	{Format: bus.FormatPCMS16LE, SampleRate: 8000, Channels: 1},
	{Format: bus.FormatPCMS16LE, SampleRate: 22050, Channels: 2},
	{Format: bus.FormatPCMS16LE, SampleRate: 48000, Channels: 1},
	{Format: bus.FormatWAV},
	{Format: bus.FormatMP3},
}

// FuzzStreamChunks feeds a streamed playback's source producer messages
// made of the input: headers (Callcast-Seq, Callcast-End) as a producer
// may write them, and payloads cut anywhere, in any order, in any format.
// Whatever comes, the source ends (decoded, or failed with a code) without
// a panic, holding no more than its limits.
func FuzzStreamChunks(f *testing.F) {
	mp3, err := os.ReadFile("../e2e/testdata/audio/speech.mp3")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(byte(5), mp3[:4000], "1", "3", "2", false)
	f.Add(byte(4), calltestWAV(16000, 1, testPCM(16000, 1, 50*time.Millisecond)), "1", "2", "3", true)
	f.Add(byte(2), testPCM(22050, 2, 30*time.Millisecond), "2", "1", "x", true)
	f.Add(byte(0), []byte{0xff, 0x7f, 0, 1}, "18446744073709551615", "1", "0", false)
	f.Add(byte(4), []byte("RIFF\xff\xff\xff\xffWAVEfmt \x10\x00\x00\x00\x01\x00\x02\x00"), "1", "", "2", true)
	f.Fuzz(func(t *testing.T, pick byte, data []byte, seqA, seqB, seqC string, end bool) {
		format := streamFormats[int(pick)%len(streamFormats)]
		s := newStreamSource(format, 0, func() {})
		wait := runSource(s)
		// Three messages, the data cut in three, with the fuzzer's
		// Callcast-Seq values; the last may carry the end.
		cut1, cut2 := len(data)/3, 2*len(data)/3
		parts := [][]byte{data[:cut1], data[cut1:cut2], data[cut2:]}
		for i, seq := range []string{seqA, seqB, seqC} {
			msg := &nats.Msg{Data: parts[i], Header: nats.Header{}}
			if seq != "" {
				msg.Header.Set(bus.HeaderSeq, seq)
			}
			if end && i == 2 {
				msg.Header.Set(bus.HeaderEnd, "true")
			}
			s.onMsg(msg)
		}
		// Whatever is still missing is given up (as after reorderWait); an
		// end numbered after everything then ends the stream.
		s.mu.Lock()
		for len(s.held) > 0 {
			s.skipGap()
		}
		s.mu.Unlock()
		s.take(0, true, nil)
		done := make(chan struct{})
		var once sync.Once
		go func() {
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				s.mu.Lock()
				fin := s.decoded || s.fail != nil
				s.mu.Unlock()
				if fin {
					once.Do(func() { close(done) })
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			s.close()
			wait()
			t.Fatalf("%s source did not end", format.String())
		}
		s.mu.Lock()
		held := s.out.len() + s.raw.len()
		fail := s.fail
		s.mu.Unlock()
		s.close()
		wait()
		if held > MaxStreamAhead+MaxStreamRaw {
			t.Fatalf("holds %d bytes", held)
		}
		if fail != nil && fail.Code != bus.CodeTooLarge && fail.Code != bus.CodeStalled {
			t.Fatalf("failed with %+v", fail)
		}
	})
}

// FuzzParseSeq: a Callcast-Seq value is a decimal from 1 to maxSeq (leading
// zeros allowed), or refused.
func FuzzParseSeq(f *testing.F) {
	for _, s := range []string{"1", "0", "-1", "18446744073709551616", " 2", "+3", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		n, err := parseSeq(v)
		if err != nil {
			return
		}
		if m, _ := strconv.ParseUint(v, 10, 64); n == 0 || n > maxSeq || n != m {
			t.Fatalf("parseSeq(%q) = %d", v, n)
		}
	})
}
