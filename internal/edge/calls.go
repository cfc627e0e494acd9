package edge

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/bus"
)

// Every edge answers bus.SubjectCalls (no queue group: each edge speaks for
// its own calls) with the calls it holds, in one bus.CallsReply, or in
// several when they do not fit in one message.

// subscribeCalls starts answering bus.SubjectCalls.
func (s *Server) subscribeCalls() error {
	sub, err := s.nc.Subscribe(bus.SubjectCalls, s.serveCalls)
	if err != nil {
		return fmt.Errorf("edge: subscribe %s: %w", bus.SubjectCalls, err)
	}
	s.callsSub = sub
	return nil
}

// addCall lists ss as a live call, from its start.
func (s *Server) addCall(ss *session, c bus.Call) {
	s.mu.Lock()
	ss.call = &c
	s.mu.Unlock()
}

// liveCalls returns the started calls this edge holds, oldest first.
func (s *Server) liveCalls() []bus.Call {
	type live struct {
		at   time.Time
		call *bus.Call
	}
	s.mu.Lock()
	list := make([]live, 0, len(s.streams))
	for _, ss := range s.streams {
		if ss.call != nil {
			list = append(list, live{ss.startedAt, ss.call})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(list, func(a, b live) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.call.StreamSid, b.call.StreamSid))
	})
	calls := make([]bus.Call, len(list))
	for i, l := range list {
		calls[i] = *l.call
	}
	return calls
}

func (s *Server) serveCalls(msg *nats.Msg) {
	if msg.Reply == "" {
		return
	}
	if _, err := bus.DecodeCallsRequest(msg.Data); err != nil {
		s.metrics.errors.WithLabelValues("bad_calls_request").Inc()
		s.log.Warn("ignoring invalid calls request", "err", err)
		return
	}
	for _, page := range callsPages(s.cfg.ID, s.liveCalls(), int(s.nc.MaxPayload())) {
		if err := msg.Respond(page); err != nil {
			s.metrics.errors.WithLabelValues("publish").Inc()
			s.log.Warn("answering calls request failed", "err", err)
			return
		}
	}
}

// callsPages encodes calls as CallsReplies of at most bus.MaxCallsPerReply
// calls and max bytes each (unless a single call is larger). No calls is one
// reply with an empty list.
func callsPages(edge string, calls []bus.Call, max int) [][]byte {
	var pages [][]byte
	var add func([]bus.Call)
	add = func(part []bus.Call) {
		data, err := json.Marshal(bus.CallsReply{Type: bus.TypeCallsReply, Edge: edge, Calls: part})
		if err != nil {
			return // a map of strings and strings encodes
		}
		if len(part) > 1 && (len(part) > bus.MaxCallsPerReply || max > 0 && len(data) > max) {
			add(part[:len(part)/2])
			add(part[len(part)/2:])
			return
		}
		pages = append(pages, data)
	}
	if calls == nil {
		calls = []bus.Call{}
	}
	add(calls)
	return pages
}

// callOf is what a CallsReply says of a call started now.
func callOf(sid, callSid, accountSid string, params map[string]string, at time.Time) bus.Call {
	return bus.Call{
		StreamSid:        sid,
		CallSid:          callSid,
		AccountSid:       accountSid,
		CustomParameters: params,
		StartedAt:        at.UTC().Format(time.RFC3339Nano),
	}
}
