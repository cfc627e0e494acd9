package twilio

import (
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	testStreamSid  = "MZ0123456789abcdef0123456789abcdef"
	testCallSid    = "CA0123456789abcdef0123456789abcdef"
	testAccountSid = "AC0123456789abcdef0123456789abcdef"
)

// TestParseMessageDocExamples decodes the examples of §2 of the protocol
// reference (twilio-media-streams.md). Where the document abbreviates a SID
// or payload with "…", the full value is written out.
func TestParseMessageDocExamples(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Message
	}{
		{
			name: "connected",
			in:   `{"event":"connected","protocol":"Call","version":"1.0.0"}`,
			want: Message{Event: EventConnected, Protocol: "Call", Version: "1.0.0"},
		},
		{
			name: "start",
			in: `{
  "event": "start",
  "sequenceNumber": "1",
  "start": {
    "accountSid": "AC0123456789abcdef0123456789abcdef",
    "streamSid": "MZ0123456789abcdef0123456789abcdef",
    "callSid": "CA0123456789abcdef0123456789abcdef",
    "tracks": ["inbound"],
    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    "customParameters": {"token": "b3f1c2…", "clipId": "welcome-01"}
  },
  "streamSid": "MZ0123456789abcdef0123456789abcdef"
}`,
			want: Message{
				Event:          EventStart,
				SequenceNumber: "1",
				StreamSid:      testStreamSid,
				Start: &Start{
					StreamSid:        testStreamSid,
					AccountSid:       testAccountSid,
					CallSid:          testCallSid,
					Tracks:           []string{"inbound"},
					CustomParameters: map[string]string{"token": "b3f1c2…", "clipId": "welcome-01"},
					MediaFormat:      MediaFormat{Encoding: "audio/x-mulaw", SampleRate: 8000, Channels: 1},
				},
			},
		},
		{
			name: "media",
			in: `{
  "event": "media",
  "sequenceNumber": "2",
  "media": {"track": "inbound", "chunk": "1", "timestamp": "52",
            "payload": "6/jk2NbZ3uXj5Oz+bmhiYnD07+XW"},
  "streamSid": "MZ0123456789abcdef0123456789abcdef"
}`,
			want: Message{
				Event:          EventMedia,
				SequenceNumber: "2",
				StreamSid:      testStreamSid,
				Media:          &Media{Track: "inbound", Chunk: "1", Timestamp: "52", Payload: "6/jk2NbZ3uXj5Oz+bmhiYnD07+XW"},
			},
		},
		{
			name: "dtmf",
			in:   `{"event":"dtmf","streamSid":"MZ0123456789abcdef0123456789abcdef","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}`,
			want: Message{
				Event:          EventDTMF,
				SequenceNumber: "5",
				StreamSid:      testStreamSid,
				DTMF:           &DTMF{Track: "inbound_track", Digit: "1"},
			},
		},
		{
			name: "mark",
			in:   `{"event":"mark","sequenceNumber":"103","streamSid":"MZ0123456789abcdef0123456789abcdef","mark":{"name":"clip-7:seg-12"}}`,
			want: Message{
				Event:          EventMark,
				SequenceNumber: "103",
				StreamSid:      testStreamSid,
				Mark:           &Mark{Name: "clip-7:seg-12"},
			},
		},
		{
			name: "stop",
			in:   `{"event":"stop","sequenceNumber":"5","stop":{"accountSid":"AC0123456789abcdef0123456789abcdef","callSid":"CA0123456789abcdef0123456789abcdef"},"streamSid":"MZ0123456789abcdef0123456789abcdef"}`,
			want: Message{
				Event:          EventStop,
				SequenceNumber: "5",
				StreamSid:      testStreamSid,
				Stop:           &Stop{AccountSid: testAccountSid, CallSid: testCallSid},
			},
		},
		{
			// §2: Twilio's 2020 log shows a UUID as stream SID; it is opaque.
			name: "uuid stream sid",
			in:   `{"event":"mark","sequenceNumber":"7","streamSid":"6c2e1d6e-6f1a-4a4c-9b39-1c0e2f0b5a11","mark":{"name":"m"}}`,
			want: Message{
				Event:          EventMark,
				SequenceNumber: "7",
				StreamSid:      "6c2e1d6e-6f1a-4a4c-9b39-1c0e2f0b5a11",
				Mark:           &Mark{Name: "m"},
			},
		},
		{
			name: "unknown extra fields tolerated",
			in:   `{"event":"media","sequenceNumber":"2","streamSid":"MZ0123456789abcdef0123456789abcdef","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"/w==","future":1},"later":true}`,
			want: Message{
				Event:          EventMedia,
				SequenceNumber: "2",
				StreamSid:      testStreamSid,
				Media:          &Media{Track: "inbound", Chunk: "1", Timestamp: "0", Payload: "/w=="},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMessage([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseMessage: %v", err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("ParseMessage =\n%+v\nwant\n%+v", *got, tt.want)
			}
		})
	}
}

func TestParseMessageErrors(t *testing.T) {
	const sid = `"streamSid":"` + testStreamSid + `"`
	start := func(body string) string {
		return `{"event":"start","sequenceNumber":"1",` + sid + `,"start":` + body + `}`
	}
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", ``, ErrBadJSON},
		{"not json", `hello`, ErrBadJSON},
		{"truncated", `{"event":"connected"`, ErrBadJSON},
		{"array", `[]`, ErrBadJSON},
		{"number sequenceNumber", `{"event":"mark","sequenceNumber":5,` + sid + `,"mark":{"name":"a"}}`, ErrBadJSON},
		{"trailing data", `{"event":"connected"} {}`, ErrBadJSON},
		{"no event", `{` + sid + `}`, ErrMissingField},
		{"null", `null`, ErrMissingField},
		{"unknown event", `{"event":"hangup",` + sid + `}`, ErrUnknownEvent},
		{"outbound event clear", `{"event":"clear",` + sid + `}`, ErrUnknownEvent},
		{"missing streamSid", `{"event":"mark","sequenceNumber":"2","mark":{"name":"a"}}`, ErrMissingField},
		{"streamSid with slash", `{"event":"stop","streamSid":"MZ/1"}`, ErrBadField},
		{"streamSid with dot", `{"event":"stop","streamSid":"MZ.>"}`, ErrBadField},
		{"streamSid too long", `{"event":"stop","streamSid":"` + strings.Repeat("a", MaxStreamSidLen+1) + `"}`, ErrBadField},
		{"start without body", `{"event":"start",` + sid + `}`, ErrMissingField},
		{"start other streamSid", start(`{"streamSid":"MZother","callSid":"CA1","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}`), ErrBadField},
		{"start without callSid", start(`{"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}`), ErrMissingField},
		{"start alaw", start(`{"callSid":"CA1","mediaFormat":{"encoding":"audio/x-alaw","sampleRate":8000,"channels":1}}`), ErrBadField},
		{"start 16 kHz", start(`{"callSid":"CA1","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":16000,"channels":1}}`), ErrBadField},
		{"start stereo", start(`{"callSid":"CA1","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":2}}`), ErrBadField},
		{"start no mediaFormat", start(`{"callSid":"CA1"}`), ErrBadField},
		{"media without body", `{"event":"media",` + sid + `}`, ErrMissingField},
		{"dtmf without body", `{"event":"dtmf",` + sid + `}`, ErrMissingField},
		{"dtmf without digit", `{"event":"dtmf",` + sid + `,"dtmf":{"track":"inbound_track"}}`, ErrMissingField},
		{"mark without body", `{"event":"mark",` + sid + `}`, ErrMissingField},
		{"mark empty name", `{"event":"mark",` + sid + `,"mark":{"name":""}}`, ErrMissingField},
		{"mark name too long", `{"event":"mark",` + sid + `,"mark":{"name":"` + strings.Repeat("n", MaxMarkNameLen+1) + `"}}`, ErrBadField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMessage([]byte(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseMessage(%q) = %+v, %v; want %v", tt.in, m, err, tt.want)
			}
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("error %v does not wrap ErrProtocol", err)
			}
			if m != nil {
				t.Errorf("ParseMessage returned a message with an error: %+v", m)
			}
		})
	}
}

func TestParseMessageLimits(t *testing.T) {
	name := strings.Repeat("n", MaxMarkNameLen)
	m, err := ParseMessage([]byte(`{"event":"mark","streamSid":"` + strings.Repeat("s", MaxStreamSidLen) + `","mark":{"name":"` + name + `"}}`))
	if err != nil {
		t.Fatalf("names at the limits: %v", err)
	}
	if m.Mark.Name != name {
		t.Errorf("mark name = %q", m.Mark.Name)
	}
}

func TestCheckStreamSid(t *testing.T) {
	tests := []struct {
		name string
		sid  string
		want error
	}{
		{"twilio", testStreamSid, nil},
		{"uuid", "6c2e1d6e-6f1a-4a4c-9b39-1c0e2f0b5a11", nil},
		{"underscore", "a_b", nil},
		{"empty", "", ErrMissingField},
		{"space", "MZ 1", ErrBadField},
		{"quote", `MZ"`, ErrBadField},
		{"backslash", `MZ\`, ErrBadField},
		{"nats wildcard", "MZ*", ErrBadField},
		{"non-ascii", "MZé", ErrBadField},
		{"too long", strings.Repeat("a", MaxStreamSidLen+1), ErrBadField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckStreamSid(tt.sid)
			if tt.want == nil && err != nil || !errors.Is(err, tt.want) {
				t.Errorf("CheckStreamSid(%q) = %v, want %v", tt.sid, err, tt.want)
			}
		})
	}
}

// TestAppendGolden pins the exact bytes of every outbound message and checks
// that Twilio's side (ParseOutbound) accepts them with the same content.
func TestAppendGolden(t *testing.T) {
	const sid = testStreamSid
	tests := []struct {
		name string
		got  []byte
		want string
		out  Outbound
	}{
		{
			name: "media",
			got:  AppendMedia(nil, sid, []byte{0xff, 0xfe, 0x7f, 0x00, 0x80}),
			want: `{"event":"media","streamSid":"MZ0123456789abcdef0123456789abcdef","media":{"payload":"//5/AIA="}}`,
			out:  mediaOut(sid, "//5/AIA="),
		},
		{
			name: "media one frame of silence",
			got:  AppendMedia(nil, sid, []byte(strings.Repeat("\xff", 160))),
			want: `{"event":"media","streamSid":"MZ0123456789abcdef0123456789abcdef","media":{"payload":"` + strings.Repeat("////", 53) + `/w=="}}`,
			out:  mediaOut(sid, strings.Repeat("////", 53)+"/w=="),
		},
		{
			name: "media base64",
			got:  AppendMediaBase64(nil, sid, "6/jk2NbZ3uXj5Oz+bmhiYnD07+XW"),
			want: `{"event":"media","streamSid":"MZ0123456789abcdef0123456789abcdef","media":{"payload":"6/jk2NbZ3uXj5Oz+bmhiYnD07+XW"}}`,
			out:  mediaOut(sid, "6/jk2NbZ3uXj5Oz+bmhiYnD07+XW"),
		},
		{
			name: "mark",
			got:  AppendMark(nil, sid, "clip-7:seg-12"),
			want: `{"event":"mark","streamSid":"MZ0123456789abcdef0123456789abcdef","mark":{"name":"clip-7:seg-12"}}`,
			out:  Outbound{Event: EventMark, StreamSid: sid, Mark: &Mark{Name: "clip-7:seg-12"}},
		},
		{
			name: "mark quote and backslash",
			got:  AppendMark(nil, sid, `say "hi" \ bye`),
			want: `{"event":"mark","streamSid":"MZ0123456789abcdef0123456789abcdef","mark":{"name":"say \"hi\" \\ bye"}}`,
			out:  Outbound{Event: EventMark, StreamSid: sid, Mark: &Mark{Name: `say "hi" \ bye`}},
		},
		{
			name: "mark control characters",
			got:  AppendMark(nil, sid, "a\nb\tc\x01"),
			want: `{"event":"mark","streamSid":"MZ0123456789abcdef0123456789abcdef","mark":{"name":"a\nb\tc\u0001"}}`,
			out:  Outbound{Event: EventMark, StreamSid: sid, Mark: &Mark{Name: "a\nb\tc\x01"}},
		},
		{
			name: "mark html and unicode",
			got:  AppendMark(nil, sid, "<b>&é\u2028"),
			want: `{"event":"mark","streamSid":"MZ0123456789abcdef0123456789abcdef","mark":{"name":"\u003cb\u003e\u0026é\u2028"}}`,
			out:  Outbound{Event: EventMark, StreamSid: sid, Mark: &Mark{Name: "<b>&é\u2028"}},
		},
		{
			name: "clear",
			got:  AppendClear(nil, sid),
			want: `{"event":"clear","streamSid":"MZ0123456789abcdef0123456789abcdef"}`,
			out:  Outbound{Event: EventClear, StreamSid: sid},
		},
		{
			name: "appends after existing bytes",
			got:  AppendClear([]byte("prefix"), "MZ1")[len("prefix"):],
			want: `{"event":"clear","streamSid":"MZ1"}`,
			out:  Outbound{Event: EventClear, StreamSid: "MZ1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Errorf("got  %s\nwant %s", tt.got, tt.want)
			}
			o, err := ParseOutbound(tt.got)
			if err != nil {
				t.Fatalf("ParseOutbound: %v", err)
			}
			if !reflect.DeepEqual(*o, tt.out) {
				t.Errorf("ParseOutbound = %+v, want %+v", *o, tt.out)
			}
		})
	}
}

// mediaOut is the Outbound media message for sid carrying payload.
func mediaOut(sid, payload string) Outbound {
	o := Outbound{Event: EventMedia, StreamSid: sid}
	o.Media = &struct {
		Payload string `json:"payload"`
	}{payload}
	return o
}

func TestAppendMediaDecodes(t *testing.T) {
	ulaw := make([]byte, 8000)
	for i := range ulaw {
		ulaw[i] = byte(i * 7)
	}
	o, err := ParseOutbound(AppendMedia(nil, testStreamSid, ulaw))
	if err != nil {
		t.Fatal(err)
	}
	got, err := base64.StdEncoding.DecodeString(o.Media.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(ulaw) {
		t.Error("payload does not decode to the input bytes")
	}
}

func TestAppendAllocs(t *testing.T) {
	ulaw := make([]byte, 160)
	buf := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendMedia(buf[:0], testStreamSid, ulaw)
		buf = AppendClear(buf[:0], testStreamSid)
	})
	if allocs != 0 {
		t.Errorf("AppendMedia+AppendClear allocate %v times per run, want 0", allocs)
	}
}

// TestParseOutboundDocExamples accepts the examples of §3 (SIDs and payloads
// written out in full).
func TestParseOutboundDocExamples(t *testing.T) {
	for _, in := range []string{
		`{"event":"media","streamSid":"MZ0123456789abcdef0123456789abcdef","media":{"payload":"//7+/n5+"}}`,
		`{"event":"mark","streamSid":"MZ0123456789abcdef0123456789abcdef","mark":{"name":"clip-7:seg-12"}}`,
		`{"event":"clear","streamSid":"MZ0123456789abcdef0123456789abcdef"}`,
		"{\n  \"event\": \"clear\",\n  \"streamSid\": \"MZ0123456789abcdef0123456789abcdef\"\n}",
		`{"streamSid":"MZ0123456789abcdef0123456789abcdef","media":{"payload":"AAAA"},"event":"media"}`,
	} {
		if _, err := ParseOutbound([]byte(in)); err != nil {
			t.Errorf("ParseOutbound(%s): %v", in, err)
		}
	}
}

func TestParseOutboundErrors(t *testing.T) {
	const sid = `"streamSid":"` + testStreamSid + `"`
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", ``, ErrBadJSON},
		{"not json", `media`, ErrBadJSON},
		{"array", `[{"event":"clear"}]`, ErrBadJSON},
		{"trailing data", `{"event":"clear",` + sid + `}{}`, ErrBadJSON},
		{"null", `null`, ErrMissingField},
		{"unknown event", `{"event":"play",` + sid + `}`, ErrUnknownEvent},
		{"inbound-only event stop", `{"event":"stop",` + sid + `}`, ErrUnknownEvent},
		{"inbound-only event dtmf", `{"event":"dtmf",` + sid + `,"dtmf":{"digit":"1"}}`, ErrUnexpectedData},
		{"no event", `{` + sid + `}`, ErrUnknownEvent},
		{"missing streamSid", `{"event":"clear"}`, ErrMissingField},
		{"snake case stream_sid", `{"event":"clear","stream_sid":"` + testStreamSid + `"}`, ErrUnexpectedData},
		{"bad streamSid", `{"event":"clear","streamSid":"MZ 1"}`, ErrBadField},
		{"number streamSid", `{"event":"clear","streamSid":5}`, ErrUnexpectedData},
		{"extra top-level sequenceNumber", `{"event":"clear",` + sid + `,"sequenceNumber":"1"}`, ErrUnexpectedData},
		{"extra top-level field on media", `{"event":"media",` + sid + `,"media":{"payload":"AAAA"},"x":1}`, ErrUnexpectedData},
		{"wrong-case top-level key", `{"Event":"clear",` + sid + `}`, ErrUnexpectedData},
		{"clear with media", `{"event":"clear",` + sid + `,"media":{"payload":"AAAA"}}`, ErrUnexpectedData},
		{"clear with null mark", `{"event":"clear",` + sid + `,"mark":null}`, ErrUnexpectedData},
		{"media with mark", `{"event":"media",` + sid + `,"media":{"payload":"AAAA"},"mark":{"name":"a"}}`, ErrUnexpectedData},
		{"media missing body", `{"event":"media",` + sid + `}`, ErrMissingField},
		{"media null body", `{"event":"media",` + sid + `,"media":null}`, ErrMissingField},
		{"media missing payload", `{"event":"media",` + sid + `,"media":{}}`, ErrMissingField},
		{"media empty payload", `{"event":"media",` + sid + `,"media":{"payload":""}}`, ErrMissingField},
		{"media misspelt payload", `{"event":"media",` + sid + `,"media":{"playload":"AAAA"}}`, ErrUnexpectedData},
		{"media wrong-case payload", `{"event":"media",` + sid + `,"media":{"Payload":"AAAA"}}`, ErrUnexpectedData},
		{"media payload twice in two cases", `{"event":"media",` + sid + `,"media":{"payload":"AAAA","PAYLOAD":"////"}}`, ErrUnexpectedData},
		{"media extra track", `{"event":"media",` + sid + `,"media":{"payload":"AAAA","track":"outbound"}}`, ErrUnexpectedData},
		{"media extra chunk", `{"event":"media",` + sid + `,"media":{"payload":"AAAA","chunk":"1"}}`, ErrUnexpectedData},
		{"media unpadded payload", `{"event":"media",` + sid + `,"media":{"payload":"AAA"}}`, ErrBadField},
		{"media url-safe payload", `{"event":"media",` + sid + `,"media":{"payload":"-_-_"}}`, ErrBadField},
		{"media payload with newline", `{"event":"media",` + sid + `,"media":{"payload":"AA\nAA=="}}`, ErrBadField},
		{"media misplaced padding", `{"event":"media",` + sid + `,"media":{"payload":"A=AA"}}`, ErrBadField},
		{"media payload number", `{"event":"media",` + sid + `,"media":{"payload":5}}`, ErrUnexpectedData},
		{"mark missing body", `{"event":"mark",` + sid + `}`, ErrMissingField},
		{"mark empty name", `{"event":"mark",` + sid + `,"mark":{"name":""}}`, ErrMissingField},
		{"mark extra field", `{"event":"mark",` + sid + `,"mark":{"name":"a","at":1}}`, ErrUnexpectedData},
		{"mark wrong-case name", `{"event":"mark",` + sid + `,"mark":{"Name":"a"}}`, ErrUnexpectedData},
		{"mark with media", `{"event":"mark",` + sid + `,"mark":{"name":"a"},"media":{"payload":"AAAA"}}`, ErrUnexpectedData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := ParseOutbound([]byte(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseOutbound(%s) = %+v, %v; want %v", tt.in, o, err, tt.want)
			}
			if !errors.Is(err, ErrProtocol) {
				t.Errorf("error %v does not wrap ErrProtocol", err)
			}
			if o != nil {
				t.Errorf("ParseOutbound returned a message with an error: %+v", o)
			}
		})
	}
}

func TestCheckPayload(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    error
	}{
		{"one byte", "/w==", nil},
		{"two bytes", "//8=", nil},
		{"three bytes", "////", nil},
		{"plus and slash", "+/+/", nil},
		{"empty", "", ErrMissingField},
		{"unpadded", "/w", ErrBadField},
		{"url-safe", "_w==", ErrBadField},
		{"space", "// /", ErrBadField},
		{"too much padding", "====", ErrBadField},
		{"padding inside", "/w==/w==", ErrBadField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckPayload(tt.payload)
			if tt.want == nil && err != nil || !errors.Is(err, tt.want) {
				t.Errorf("CheckPayload(%q) = %v, want %v", tt.payload, err, tt.want)
			}
		})
	}
}
