// Package bus is callcast's NATS wire contract: the subjects, the versioned
// JSON messages published on them, connecting to NATS, and the embedded NATS
// server used when one process runs the whole product.
//
// Subjects (sid is a Twilio stream SID, a NATS-safe token):
//
//	callcast.stream.started        edge → workers (queue group callcast-workers): StreamStarted
//	callcast.stream.<sid>.out      anyone → the edge holding sid: OutMessage, relayed to Twilio
//	callcast.stream.<sid>.events   edge and workers → anyone: Event (marks, dtmf, stop, errors)
//	callcast.edge.<instance>.alive workers → an edge: a probe nobody answers (see EdgeAlive)
//
// Every message is JSON with a "type" naming its schema and version
// ("callcast.stream.started.v1"); readers ignore fields they do not know.
package bus

import (
	"fmt"
	"strings"

	"github.com/callcast/callcast/internal/twilio"
)

// Subjects and queue groups.
const (
	// SubjectStreamStarted carries a StreamStarted for every Twilio start.
	SubjectStreamStarted = "callcast.stream.started"
	// QueueWorkers is the queue group every worker subscribes in.
	QueueWorkers = "callcast-workers"

	subjectStreamPrefix = "callcast.stream."
)

// EdgeAlive is the subject an edge process subscribes to for as long as
// it runs, under an instance ID of its own: "callcast.edge.<instance>.alive".
// Nothing is ever answered on it. A worker playing to the edge's calls
// publishes there with a reply subject; NATS's no-responders answer says
// the edge is gone, for all its calls at once.
func EdgeAlive(instance string) string { return subjectEdgePrefix + instance + ".alive" }

// CheckEdgeAlive reports whether subject is an EdgeAlive subject.
func CheckEdgeAlive(subject string) error {
	instance, ok := strings.CutPrefix(subject, subjectEdgePrefix)
	if ok {
		instance, ok = strings.CutSuffix(instance, ".alive")
	}
	if !ok || CheckStreamSid(instance) != nil {
		return fmt.Errorf("%w: %.80q is not an edge's alive subject", ErrBadMessage, subject)
	}
	return nil
}

const subjectEdgePrefix = "callcast.edge."

// StreamOut is the subject whose messages the edge holding sid relays to
// Twilio: "callcast.stream.<sid>.out".
func StreamOut(sid string) string { return subjectStreamPrefix + sid + ".out" }

// StreamEvents is the subject on which the call's events are published:
// "callcast.stream.<sid>.events".
func StreamEvents(sid string) string { return subjectStreamPrefix + sid + ".events" }

// CheckStreamSid reports whether sid is usable in a subject: a non-empty
// token of at most 64 ASCII letters, digits, '-' or '_'.
func CheckStreamSid(sid string) error { return twilio.CheckStreamSid(sid) }
