package edge

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/twilio"
)

// askCalls requests the live calls and returns the replies that arrive
// within a short quiet period.
func askCalls(t *testing.T, nc *nats.Conn, body string) []*bus.CallsReply {
	t.Helper()
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.PublishRequest(bus.SubjectCalls, inbox, []byte(body)); err != nil {
		t.Fatal(err)
	}
	var replies []*bus.CallsReply
	wait := 5 * time.Second // for the first reply
	for {
		msg, err := sub.NextMsg(wait)
		if errors.Is(err, nats.ErrTimeout) {
			return replies
		}
		if err != nil {
			t.Fatal(err)
		}
		r, err := bus.DecodeCallsReply(msg.Data)
		if err != nil {
			t.Fatalf("reply %s: %v", msg.Data, err)
		}
		replies = append(replies, r)
		wait = 200 * time.Millisecond
	}
}

func TestEdgeAnswersCalls(t *testing.T) {
	addr, nc := serve(t, Config{ID: "edge-7"})
	events := subscribe(t, nc, bus.SubjectStreamStarted)

	// No calls yet: an answer with an empty list, not silence.
	replies := askCalls(t, nc, "")
	if len(replies) != 1 || replies[0].Edge != "edge-7" || replies[0].Calls == nil || len(replies[0].Calls) != 0 {
		t.Fatalf("replies with no calls: %+v", replies)
	}

	a, b := dialPeer(t, addr), dialPeer(t, addr)
	b.sid = "MZ" + strings.Repeat("cd", 16)
	a.start(map[string]string{"audio": "x.mp3", "lang": "fr"})
	events.wait(t, 1)
	b.start(nil)
	events.wait(t, 2)

	replies = askCalls(t, nc, `{"type":"callcast.calls.v1"}`)
	if len(replies) != 1 {
		t.Fatalf("%d replies, want 1", len(replies))
	}
	calls := replies[0].Calls
	if len(calls) != 2 || calls[0].StreamSid != a.sid || calls[1].StreamSid != b.sid {
		t.Fatalf("calls %+v, want %s then %s", calls, a.sid, b.sid)
	}
	c := calls[0]
	at, err := time.Parse(time.RFC3339, c.StartedAt)
	if err != nil || time.Since(at) > time.Minute || time.Since(at) < 0 {
		t.Errorf("startedAt %q: %v", c.StartedAt, err)
	}
	if c.CallSid != "CA"+strings.Repeat("1", 32) || c.AccountSid != "AC"+strings.Repeat("0", 32) ||
		c.CustomParameters["audio"] != "x.mp3" || c.CustomParameters["lang"] != "fr" {
		t.Errorf("call %+v", c)
	}

	// A bad request gets no answer; the next good one does.
	if got := askCalls(t, nc, `{"type":"callcast.play.v1"}`); len(got) != 0 {
		t.Errorf("answered a bad request: %+v", got)
	}

	// A call that ends is no longer listed.
	a.send(twilio.Message{Event: twilio.EventStop, Stop: &twilio.Stop{}})
	if !a.closed(5 * time.Second) {
		t.Fatal("socket still open after stop")
	}
	waitFor(t, "the ended call to leave the list", func() bool {
		r := askCalls(t, nc, "{}")
		return len(r) == 1 && len(r[0].Calls) == 1 && r[0].Calls[0].StreamSid == b.sid
	})
}

func TestCallsPages(t *testing.T) {
	call := func(i int) bus.Call {
		return bus.Call{StreamSid: fmt.Sprintf("MZ%032d", i), StartedAt: "2026-11-27T06:00:00Z",
			CustomParameters: map[string]string{"audio": strings.Repeat("a", 100)}}
	}
	tests := []struct {
		name      string
		calls     int
		max       int
		wantPages int
	}{
		{"none", 0, 1 << 20, 1},
		{"one", 1, 1 << 20, 1},
		{"many in one", 900, 1 << 20, 1},
		{"more than a reply may list", 2500, 1 << 20, 4},
		{"split by size", 100, 8 << 10, 4},
		{"a call larger than max", 1, 10, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []bus.Call
			for i := range tt.calls {
				calls = append(calls, call(i))
			}
			pages := callsPages("e", calls, tt.max)
			if len(pages) != tt.wantPages {
				t.Errorf("%d pages, want %d", len(pages), tt.wantPages)
			}
			var got []bus.Call
			for _, p := range pages {
				r, err := bus.DecodeCallsReply(p)
				if err != nil {
					t.Fatalf("page %.100s: %v", p, err)
				}
				if len(p) > tt.max && len(r.Calls) > 1 {
					t.Errorf("page of %d calls is %d bytes, max %d", len(r.Calls), len(p), tt.max)
				}
				if r.Edge != "e" || r.Calls == nil {
					t.Errorf("page %+v", r)
				}
				got = append(got, r.Calls...)
			}
			if !slices.EqualFunc(got, calls, func(a, b bus.Call) bool { return a.StreamSid == b.StreamSid }) {
				t.Errorf("pages list %d calls, want the %d in order", len(got), len(calls))
			}
			if tt.calls == 0 {
				if !strings.Contains(string(pages[0]), `"calls":[]`) {
					t.Errorf("no calls encoded as %s, want an empty list", pages[0])
				}
			}
		})
	}
}
