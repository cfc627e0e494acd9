package client

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/bus"
)

// Call is a live call: a Twilio media stream an edge holds.
type Call struct {
	StreamSid  string
	CallSid    string
	AccountSid string
	// Parameters are the stream's custom parameters (TwiML <Parameter>s).
	Parameters map[string]string
	StartedAt  time.Time
	// Edge names the edge that holds the call.
	Edge string
}

// Calls returns the live calls of every edge, oldest first. Each edge
// answers callcast.calls with its own; Calls gathers answers until none
// came for Options.CallsQuiet, or ctx (or Options.Timeout) ends, whichever
// comes first. With no edge subscribed it returns ErrNoEdges. Answers it
// cannot read (an edge of another version) are skipped; when every answer
// was such, it returns ErrBadReply.
func (c *Client) Calls(ctx context.Context) ([]Call, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	inbox := c.nc.NewRespInbox()
	// Room for the answers of many edges, even while this goroutine is
	// not yet reading: NATS drops what a full channel cannot take.
	replies := make(chan *nats.Msg, 1024)
	sub, err := c.nc.ChanSubscribe(inbox, replies)
	if err != nil {
		return nil, opError("calls", err)
	}
	defer sub.Unsubscribe()
	data := []byte(`{"type":"` + bus.TypeCallsRequest + `"}`)
	if err := c.nc.PublishRequest(bus.SubjectCalls, inbox, data); err != nil {
		return nil, opError("calls", err)
	}
	var (
		calls   []Call
		answers int
		bad     error            // the last answer that did not decode
		good    bool             // an answer decoded
		quiet   <-chan time.Time // armed by the first answer
	)
	for {
		select {
		case msg := <-replies:
			if msg.Header.Get("Status") == "503" && len(msg.Data) == 0 {
				return nil, opError("calls", ErrNoEdges)
			}
			answers++
			if r, err := bus.DecodeCallsReply(msg.Data); err == nil {
				good = true
				for _, bc := range r.Calls {
					calls = append(calls, callOf(r.Edge, bc))
				}
			} else {
				bad = err
			}
			quiet = time.After(c.opts.CallsQuiet)
			continue
		case <-quiet:
		case <-ctx.Done():
			if answers == 0 {
				return nil, fmt.Errorf("client: calls: %w (%w)", ErrNoEdges, ctx.Err())
			}
		}
		if !good && bad != nil {
			return nil, fmt.Errorf("client: calls: %w: %w", ErrBadReply, bad)
		}
		slices.SortStableFunc(calls, func(a, b Call) int {
			return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.StreamSid, b.StreamSid))
		})
		return calls, nil
	}
}

func callOf(edge string, bc bus.Call) Call {
	at, _ := time.Parse(time.RFC3339, bc.StartedAt) // checked by DecodeCallsReply
	return Call{StreamSid: bc.StreamSid, CallSid: bc.CallSid, AccountSid: bc.AccountSid,
		Parameters: bc.CustomParameters, StartedAt: at, Edge: edge}
}
