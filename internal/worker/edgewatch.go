package worker

import (
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

var errEdgeGone = errors.New("worker: the edge holding the stream is gone from the bus")

// edgePingEvery is how often a worker with playbacks to an edge checks that
// the edge is still on the bus: one probe per edge, however many calls.
const edgePingEvery = 50 * time.Millisecond

// An edgeWatch probes one edge's bus.EdgeAlive subject while this worker
// plays to its calls. NATS answers a probe with 503 (no responders) once
// the edge's subscription is gone, and every playback to that edge stops.
type edgeWatch struct {
	subject string
	token   string                 // its probes' reply token under the worker's inbox
	users   map[*playback]struct{} // guarded by Worker.edgesMu
	stop    chan struct{}          // closed when the last user leaves
}

// watchEdge has p stopped when the edge whose alive subject is subject
// leaves the bus. Call the returned func when p ends.
func (w *Worker) watchEdge(subject string, p *playback) (release func()) {
	w.edgesMu.Lock()
	defer w.edgesMu.Unlock()
	e := w.edges[subject]
	if e == nil {
		w.edgeN++
		e = &edgeWatch{subject: subject, token: "edge-" + strconv.Itoa(w.edgeN), users: make(map[*playback]struct{}), stop: make(chan struct{})}
		w.edges[subject] = e
		w.byReply.Store(e.token, e)
		w.watchers.Add(1)
		go w.probeEdge(e)
	}
	e.users[p] = struct{}{}
	return func() {
		w.edgesMu.Lock()
		defer w.edgesMu.Unlock()
		delete(e.users, p)
		if len(e.users) == 0 {
			delete(w.edges, subject)
			w.byReply.Delete(e.token)
			close(e.stop)
		}
	}
}

// probeEdge publishes e's probes until its last user leaves.
func (w *Worker) probeEdge(e *edgeWatch) {
	defer w.watchers.Done()
	t := time.NewTicker(edgePingEvery)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
		// While disconnected this is buffered or fails; either way the
		// next tick tries again.
		_ = w.nc.PublishMsg(&nats.Msg{Subject: e.subject, Reply: w.inbox + "." + e.token})
	}
}

// edgeGone stops every playback to e's edge.
func (w *Worker) edgeGone(e *edgeWatch) {
	w.edgesMu.Lock()
	users := make([]*playback, 0, len(e.users))
	for p := range e.users {
		users = append(users, p)
	}
	w.edgesMu.Unlock()
	if len(users) > 0 {
		w.log.Warn("edge gone from the bus; stopping its playbacks", "edge_alive", e.subject, "playbacks", len(users))
	}
	for _, p := range users {
		p.stop(errEdgeGone)
		p.wake()
	}
}
