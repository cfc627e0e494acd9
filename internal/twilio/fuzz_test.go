package twilio

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		`{"event":"connected","protocol":"Call","version":"1.0.0"}`,
		`{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"token":"t"}},"streamSid":"MZ1"}`,
		`{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"52","payload":"/w=="},"streamSid":"MZ1"}`,
		`{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"1"}}`,
		`{"event":"mark","sequenceNumber":"103","streamSid":"MZ1","mark":{"name":"clip-7:seg-12"}}`,
		`{"event":"stop","sequenceNumber":"5","stop":{"accountSid":"AC1","callSid":"CA1"},"streamSid":"MZ1"}`,
		`{"event":"start","streamSid":"MZ1","start":{"callSid":"CA1","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000.0,"channels":1}}}`,
		`{"event":"mark","streamSid":"MZ1","mark":{"name":"\ud800"}}`,
		`null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMessage(data)
		// The fast path agrees with encoding/json on everything it takes.
		if fast := parseMarkEcho(data); fast != nil {
			full, err := parseMessage(data)
			if (err == nil) != (fast.validate() == nil) || err == nil && !reflect.DeepEqual(fast, full) {
				t.Fatalf("fast path took %q as %+v; encoding/json: %+v, %v", data, fast, full, err)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			if m != nil {
				t.Fatal("message returned with an error")
			}
			return
		}
		if m.Event != EventConnected {
			if err := CheckStreamSid(m.StreamSid); err != nil {
				t.Fatalf("accepted a bad streamSid %q: %v", m.StreamSid, err)
			}
		}
		// Encoding the accepted message again must give an equal message.
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("marshal %+v: %v", m, err)
		}
		m2, err := ParseMessage(b)
		if err != nil {
			t.Fatalf("re-encoded message %s rejected: %v", b, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", m, m2)
		}
	})
}

func FuzzParseOutbound(f *testing.F) {
	for _, s := range []string{
		`{"event":"media","streamSid":"MZ1","media":{"payload":"//7+/n5+"}}`,
		`{"event":"mark","streamSid":"MZ1","mark":{"name":"clip-7:seg-12"}}`,
		`{"event":"mark","streamSid":"MZ1","mark":{"name":"\u003c\"\\\u2028"}}`,
		`{"event":"clear","streamSid":"MZ1"}`,
		`{"event":"media","streamSid":"MZ1","media":{"payload":"AB=="}}`,
		`{"event":"media","streamSid":"MZ1","media":{"Payload":"AAAA"}}`,
		`{"event":"clear","streamSid":"MZ1","sequenceNumber":"1"}`,
		`{"event":"mark","streamSid":"MZ1","mark":{"name":"a","name":"b"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := ParseOutbound(data)
		// The fast path agrees with encoding/json on everything it takes.
		if fast := parseCanonical(data); fast != nil {
			full, err := parseOutbound(data)
			if err != nil || !reflect.DeepEqual(fast, full) {
				t.Fatalf("fast path took %q as %+v; encoding/json: %+v, %v", data, fast, full, err)
			}
		}
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			if o != nil {
				t.Fatal("message returned with an error")
			}
			return
		}
		if err := CheckStreamSid(o.StreamSid); err != nil {
			t.Fatalf("accepted a bad streamSid %q: %v", o.StreamSid, err)
		}
		// Re-encode with the package's encoders; the result must parse to
		// the same message.
		var b []byte
		switch o.Event {
		case EventMedia:
			ulaw, err := base64.StdEncoding.DecodeString(o.Media.Payload)
			if err != nil {
				t.Fatalf("accepted payload %q does not decode: %v", o.Media.Payload, err)
			}
			// From the bytes: the payload may come back in canonical form
			// (lenient decoders accept non-zero padding bits), the audio
			// must not change.
			o2, err := ParseOutbound(AppendMedia(nil, o.StreamSid, ulaw))
			if err != nil {
				t.Fatalf("AppendMedia output rejected: %v", err)
			}
			ulaw2, _ := base64.StdEncoding.DecodeString(o2.Media.Payload)
			if o2.StreamSid != o.StreamSid || string(ulaw2) != string(ulaw) {
				t.Fatalf("AppendMedia round trip changed the message: %+v", o2)
			}
			b = AppendMediaBase64(nil, o.StreamSid, o.Media.Payload)
		case EventMark:
			b = AppendMark(nil, o.StreamSid, o.Mark.Name)
		case EventClear:
			b = AppendClear(nil, o.StreamSid)
		default:
			t.Fatalf("accepted event %q", o.Event)
		}
		o2, err := ParseOutbound(b)
		if err != nil {
			t.Fatalf("re-encoded message %s rejected: %v", b, err)
		}
		if !reflect.DeepEqual(o, o2) {
			t.Fatalf("round trip changed the message:\n%+v\n%+v", o, o2)
		}
	})
}

// TestMarkEchoFastPath: a mark echo as Twilio (and encoding/json) writes it
// is decoded without encoding/json.
func TestMarkEchoFastPath(t *testing.T) {
	want := &Message{Event: EventMark, SequenceNumber: "103", StreamSid: "MZ0123456789abcdef0123456789abcdef", Mark: &Mark{Name: "pb1:1600"}}
	data, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if got := parseMarkEcho(data); !reflect.DeepEqual(got, want) {
		t.Fatalf("parseMarkEcho(%s) = %+v", data, got)
	}
}

func TestPayloadLen(t *testing.T) {
	for n := 1; n <= 12; n++ {
		p := base64.StdEncoding.EncodeToString(make([]byte, n))
		if err := CheckPayload(p); err != nil || PayloadLen(p) != n {
			t.Errorf("PayloadLen(%q) = %d, want %d (check: %v)", p, PayloadLen(p), n, err)
		}
	}
}
