// Package bus is callcast's NATS wire contract: the subjects, the versioned
// JSON messages published on them, connecting to NATS, and the embedded NATS
// server used when one process runs the whole product.
//
// Subjects (sid is a Twilio stream SID, a NATS-safe token):
//
//	callcast.stream.started        edge → workers (queue group callcast-workers): StreamStarted
//	callcast.stream.<sid>.out      anyone → the edge holding sid: OutMessage, relayed to Twilio
//	callcast.stream.<sid>.events   edge and workers → anyone: Event (marks, dtmf, stop, errors)
//
// Every message is JSON with a "type" naming its schema and version
// ("callcast.stream.started.v1"); readers ignore fields they do not know.
package bus

import (
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

// StreamOut is the subject whose messages the edge holding sid relays to
// Twilio: "callcast.stream.<sid>.out".
func StreamOut(sid string) string { return subjectStreamPrefix + sid + ".out" }

// StreamEvents is the subject on which the call's events are published:
// "callcast.stream.<sid>.events".
func StreamEvents(sid string) string { return subjectStreamPrefix + sid + ".events" }

// CheckStreamSid reports whether sid is usable in a subject: a non-empty
// token of at most 64 ASCII letters, digits, '-' or '_'.
func CheckStreamSid(sid string) error { return twilio.CheckStreamSid(sid) }
