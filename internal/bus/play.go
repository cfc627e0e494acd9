package bus

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/callcast/callcast/internal/twilio"
)

// Subjects of the playback protocol.
const (
	// SubjectPlay is the producers' request/reply entry point, served by the
	// workers' queue group: PlayRequest → PlayReply.
	SubjectPlay = "callcast.play"
	// SubjectRender is how an edge hands one playback to a worker (queue
	// group callcast-workers): RenderRequest → PlayReply.
	SubjectRender = "callcast.render"
)

// StreamPlay is the subject on which the edge holding sid takes playbacks
// for its queue: "callcast.stream.<sid>.play" (Enqueue → PlayReply).
func StreamPlay(sid string) string { return subjectStreamPrefix + sid + ".play" }

// Message types of the playback protocol.
const (
	TypePlayRequest   = "callcast.play.v1"
	TypePlayReply     = "callcast.play.reply.v1"
	TypeEnqueue       = "callcast.stream.play.v1"
	TypeRenderRequest = "callcast.render.v1"
)

// Play modes.
const (
	ModeQueue     = "queue"     // play after everything already queued on the call
	ModeInterrupt = "interrupt" // stop what plays, drop the queue, clear Twilio's buffer, then play
)

// Headers on the frames a worker publishes for a playback on StreamOut.
const (
	// HeaderPlayback names the playback and attempt a frame belongs to:
	// "<playbackId>/<attempt>". The edge drops frames of any other.
	HeaderPlayback = "Callcast-Playback"
	// HeaderError, on a playback's last mark, says it ended early because
	// the audio could not be decoded further.
	HeaderError = "Callcast-Error"
	// HeaderPing marks an empty message a worker publishes on StreamOut
	// with a reply subject while it has nothing to send: the edge ignores
	// it, and when no edge holds the stream any more, NATS answers the
	// reply subject with a 503 (no responders) at once.
	HeaderPing = "Callcast-Ping"
	// HeaderStop, on a message the edge publishes to the reply subject of
	// a worker's frames, tells that attempt ("<playbackId>/<attempt>") to
	// stop at once: the edge has moved the playback on (paused it for a
	// producer's own audio, or given it to another worker).
	HeaderStop = "Callcast-Stop"
	// HeaderDuration, on an attempt's first media message, is the length
	// of the playback's audio in milliseconds, as the render reply's
	// durationMs: the edge puts it in playback.started even when the frame
	// overtakes the reply.
	HeaderDuration = "Callcast-Duration"
)

// MaxAudioNameLen bounds an audio name.
const MaxAudioNameLen = 255

// Error codes of replies and playback.failed events, beyond those above.
const (
	CodeUnknownStream = "unknown_stream" // no edge holds the stream
	CodeNoWorkers     = "no_workers"     // no worker answered
)

// PlayRequest asks for audio to be played into a live call.
type PlayRequest struct {
	Type      string `json:"type,omitempty"` // TypePlayRequest; may be omitted
	StreamSid string `json:"streamSid"`
	// Audio names a file in the library; Stream instead asks for a
	// streamed playback whose audio the producer publishes on
	// PlaybackAudio(playbackId). Exactly one of the two.
	Audio         string        `json:"audio,omitempty"`
	Stream        *StreamFormat `json:"stream,omitempty"`
	Mode          string        `json:"mode,omitempty"`          // ModeQueue (default) or ModeInterrupt
	ID            string        `json:"id,omitempty"`            // the producer's own ID, echoed in events
	Interruptible bool          `json:"interruptible,omitempty"` // the caller's speech stops it (barge-in)
}

// PlayReply answers a PlayRequest, an Enqueue or a RenderRequest: either a
// playback ID and duration, or an Error.
type PlayReply struct {
	Type       string `json:"type"`
	PlaybackID string `json:"playbackId,omitempty"`
	DurationMs int64  `json:"durationMs,omitempty"`
	// AudioSubject, for a streamed playback, is where the producer
	// publishes its audio: PlaybackAudio(PlaybackID). Something is
	// subscribed there before the reply is sent.
	AudioSubject string `json:"audioSubject,omitempty"`
	Error        *Error `json:"error,omitempty"`
}

// Enqueue is a checked PlayRequest forwarded by a worker to the edge that
// holds the stream.
type Enqueue struct {
	Type          string        `json:"type"`
	PlaybackID    string        `json:"playbackId"`
	RequestID     string        `json:"requestId,omitempty"`
	Audio         string        `json:"audio,omitempty"`
	Stream        *StreamFormat `json:"stream,omitempty"`
	Mode          string        `json:"mode"`
	DurationMs    int64         `json:"durationMs,omitempty"`
	Interruptible bool          `json:"interruptible,omitempty"`
}

// RenderRequest asks a worker to send one playback's audio to a stream,
// starting Offset bytes (of 8 kHz μ-law) into it.
type RenderRequest struct {
	Type       string `json:"type"`
	StreamSid  string `json:"streamSid"`
	CallSid    string `json:"callSid,omitempty"`
	PlaybackID string `json:"playbackId"`
	Attempt    int    `json:"attempt"`
	RequestID  string `json:"requestId,omitempty"`
	Audio      string `json:"audio"`
	Offset     int64  `json:"offset,omitempty"`
	// Heard is how much of this playback Twilio has confirmed playing
	// (≤ Offset): a resumed attempt counts Offset-Heard as still buffered
	// at Twilio, so that the lead is not exceeded.
	Heard int64 `json:"heard,omitempty"`
	// Expires is when the edge stops waiting for a reply (Unix ms). A
	// worker drops a request that arrives later — one buffered across a
	// NATS outage, say — without playing it: the edge has moved on.
	Expires int64 `json:"expires,omitempty"`
	// Ahead lists earlier playbacks whose audio is still buffered at
	// Twilio and plays before this one, so that the worker can pace from
	// their marks too.
	Ahead []Ahead `json:"ahead,omitempty"`
	// EdgeAlive is the asking edge's EdgeAlive subject: the worker checks
	// there that the edge still runs.
	EdgeAlive string `json:"edgeAlive,omitempty"`
}

// Ahead is a playback fully sent but not yet fully heard.
type Ahead struct {
	PlaybackID string `json:"playbackId"`
	End        int64  `json:"end"`   // offset of its last byte
	Heard      int64  `json:"heard"` // offset its marks have confirmed
}

// CheckAudioName rejects audio names that cannot name a file in a library.
// Which names exist is the worker's business.
func CheckAudioName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: audio missing", ErrBadMessage)
	case len(name) > MaxAudioNameLen:
		return fmt.Errorf("%w: audio longer than %d bytes", ErrBadMessage, MaxAudioNameLen)
	}
	return nil
}

// checkSource accepts exactly one of a file's name and a stream format.
func checkSource(audio string, stream *StreamFormat) error {
	switch {
	case stream != nil && audio != "":
		return fmt.Errorf("%w: both audio and stream given", ErrBadMessage)
	case stream != nil:
		return stream.Check()
	}
	return CheckAudioName(audio)
}

// checkPlaybackID accepts what can be a NATS subject token and part of a
// mark name: the characters of a stream SID.
func checkPlaybackID(id string) error {
	if twilio.CheckStreamSid(id) != nil {
		return fmt.Errorf("%w: playbackId %.64q", ErrBadMessage, id)
	}
	return nil
}

// DecodePlayRequest decodes and checks a PlayRequest, defaulting Mode.
func DecodePlayRequest(data []byte) (*PlayRequest, error) {
	var m PlayRequest
	if err := decode(data, &m); err != nil {
		return nil, err
	}
	if m.Type != "" && m.Type != TypePlayRequest {
		return nil, fmt.Errorf("%w: type %.64q, want %q", ErrBadMessage, m.Type, TypePlayRequest)
	}
	if err := CheckStreamSid(m.StreamSid); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	if err := checkSource(m.Audio, m.Stream); err != nil {
		return nil, err
	}
	if m.Mode == "" {
		m.Mode = ModeQueue
	}
	if m.Mode != ModeQueue && m.Mode != ModeInterrupt {
		return nil, fmt.Errorf("%w: mode %.32q, want %q or %q", ErrBadMessage, m.Mode, ModeQueue, ModeInterrupt)
	}
	if len(m.ID) > 128 {
		return nil, fmt.Errorf("%w: id longer than 128 bytes", ErrBadMessage)
	}
	return &m, nil
}

// DecodeEnqueue decodes and checks an Enqueue.
func DecodeEnqueue(data []byte) (*Enqueue, error) {
	var m Enqueue
	if err := decode(data, &m); err != nil {
		return nil, err
	}
	if m.Type != TypeEnqueue {
		return nil, fmt.Errorf("%w: type %.64q, want %q", ErrBadMessage, m.Type, TypeEnqueue)
	}
	if err := checkPlaybackID(m.PlaybackID); err != nil {
		return nil, err
	}
	if err := checkSource(m.Audio, m.Stream); err != nil {
		return nil, err
	}
	if m.Mode != ModeQueue && m.Mode != ModeInterrupt {
		return nil, fmt.Errorf("%w: mode %.32q", ErrBadMessage, m.Mode)
	}
	return &m, nil
}

// DecodeRenderRequest decodes and checks a RenderRequest.
func DecodeRenderRequest(data []byte) (*RenderRequest, error) {
	var m RenderRequest
	if err := decode(data, &m); err != nil {
		return nil, err
	}
	if m.Type != TypeRenderRequest {
		return nil, fmt.Errorf("%w: type %.64q, want %q", ErrBadMessage, m.Type, TypeRenderRequest)
	}
	if err := CheckStreamSid(m.StreamSid); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	if err := checkPlaybackID(m.PlaybackID); err != nil {
		return nil, err
	}
	if err := CheckAudioName(m.Audio); err != nil {
		return nil, err
	}
	if m.Offset < 0 || m.Attempt < 0 || m.Heard < 0 || m.Heard > m.Offset || m.Expires < 0 {
		return nil, fmt.Errorf("%w: offset %d, heard %d, attempt %d, expires %d", ErrBadMessage, m.Offset, m.Heard, m.Attempt, m.Expires)
	}
	if len(m.Ahead) > 16 {
		return nil, fmt.Errorf("%w: %d playbacks ahead, limit 16", ErrBadMessage, len(m.Ahead))
	}
	for _, a := range m.Ahead {
		if a.PlaybackID == "" || a.End < 0 || a.Heard < 0 {
			return nil, fmt.Errorf("%w: bad playback ahead %+v", ErrBadMessage, a)
		}
	}
	if m.EdgeAlive != "" {
		if err := CheckEdgeAlive(m.EdgeAlive); err != nil {
			return nil, err
		}
	}
	return &m, nil
}

// DecodePlayReply decodes a PlayReply.
func DecodePlayReply(data []byte) (*PlayReply, error) {
	var m PlayReply
	if err := decode(data, &m); err != nil {
		return nil, err
	}
	if m.Type != TypePlayReply {
		return nil, fmt.Errorf("%w: type %.64q, want %q", ErrBadMessage, m.Type, TypePlayReply)
	}
	return &m, nil
}

// ErrorReply is a PlayReply carrying an error.
func ErrorReply(code, msg string) PlayReply {
	return PlayReply{Type: TypePlayReply, Error: &Error{Code: code, Message: msg}}
}

// PlaybackHeader is the HeaderPlayback value for a playback attempt.
func PlaybackHeader(id string, attempt int) string { return id + "/" + strconv.Itoa(attempt) }

// Marks a worker sends for a playback are named
// "cc:<playbackId>:<offset>", and the last "cc:<playbackId>:<offset>:end",
// offset being the bytes of the playback's audio sent before the mark.
const markPrefix = "cc:"

// PlaybackMark names a playback's mark at offset.
func PlaybackMark(id string, offset int64, last bool) string {
	name := markPrefix + id + ":" + strconv.FormatInt(offset, 10)
	if last {
		name += ":end"
	}
	return name
}

// ParsePlaybackMark parses a name made by PlaybackMark.
func ParsePlaybackMark(name string) (id string, offset int64, last, ok bool) {
	rest, ok := strings.CutPrefix(name, markPrefix)
	if !ok {
		return "", 0, false, false
	}
	rest, last = strings.CutSuffix(rest, ":end")
	id, num, ok := strings.Cut(rest, ":")
	if !ok || id == "" {
		return "", 0, false, false
	}
	off, err := strconv.ParseInt(num, 10, 64)
	if err != nil || off < 0 {
		return "", 0, false, false
	}
	return id, off, last, true
}

// MsOf converts bytes of 8 kHz μ-law to milliseconds.
func MsOf(bytes int64) int64 { return bytes / (twilio.SampleRate / 1000) }

// BytesOf converts a duration to bytes of 8 kHz μ-law.
func BytesOf(d time.Duration) int64 { return int64(d/time.Millisecond) * (twilio.SampleRate / 1000) }
