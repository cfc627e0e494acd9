package twilio

import (
	"strings"
	"testing"
)

// BenchmarkCheckPayload checks one 100 ms media payload (1068 characters).
func BenchmarkCheckPayload(b *testing.B) {
	payload := strings.Repeat("//7+", 800/3) + "/w=="
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if err := CheckPayload(payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseOutbound parses what the edge sends Twilio: 100 ms media
// messages and marks.
func BenchmarkParseOutbound(b *testing.B) {
	const sid = "MZ0123456789abcdef0123456789abcdef"
	for _, bm := range []struct {
		name string
		msg  []byte
	}{
		{"media", AppendMedia(nil, sid, make([]byte, 800))},
		{"mark", AppendMark(nil, sid, "pb-1:3200")},
		{"clear", AppendClear(nil, sid)},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseOutbound(bm.msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseMarkEcho parses Twilio's echo of a mark, five a second per
// call.
func BenchmarkParseMarkEcho(b *testing.B) {
	msg := []byte(`{"event":"mark","sequenceNumber":"103","streamSid":"MZ0123456789abcdef0123456789abcdef","mark":{"name":"pb1:1600"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseMessage(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCutMedia cuts a caller media message (20 ms) out of its JSON,
// fifty a second per call.
func BenchmarkCutMedia(b *testing.B) {
	msg := []byte(`{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"` +
		strings.Repeat("//7+", 160/3) + `/w=="},"streamSid":"MZ0123456789abcdef0123456789abcdef"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := CutMedia(msg); !ok {
			b.Fatal("not cut")
		}
	}
}
