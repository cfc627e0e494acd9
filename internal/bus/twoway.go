package bus

import (
	"fmt"
	"strconv"
)

// The two-way contract: producers stream audio into a call's timeline as a
// playback of its own, and listeners hear the caller.
//
//	callcast.playback.<playbackId>.audio  producer → the edge holding the playback: raw audio chunks
//	callcast.stream.<sid>.in              edge → anyone: the caller's raw μ-law
//	callcast.stream.<sid>.listen          anyone → the edge holding sid, request/reply: a lease on .in
//	callcast.calls                        anyone → every edge, request/many replies: the live calls

// PlaybackAudio is the subject a producer publishes a streamed playback's
// audio on: "callcast.playback.<playbackId>.audio". Payloads are raw bytes
// of the playback's StreamFormat, each message with HeaderSeq; the last
// carries HeaderEnd.
func PlaybackAudio(playbackID string) string { return subjectPlaybackPrefix + playbackID + ".audio" }

const subjectPlaybackPrefix = "callcast.playback."

// StreamIn is the subject the edge publishes the caller's audio on:
// "callcast.stream.<sid>.in". Payloads are Twilio's μ-law bytes as sent,
// with HeaderSeq (Twilio's chunk number of the first 20 ms frame) and
// HeaderTimestamp (Twilio's timestamp of that frame, ms since the stream
// started).
func StreamIn(sid string) string { return subjectStreamPrefix + sid + ".in" }

// StreamListen is the subject on which the edge holding sid grants a lease
// on StreamIn(sid): "callcast.stream.<sid>.listen" (ListenRequest →
// ListenReply).
func StreamListen(sid string) string { return subjectStreamPrefix + sid + ".listen" }

// SubjectCalls is answered by every edge with the calls it holds
// (CallsRequest → one CallsReply per edge).
const SubjectCalls = "callcast.calls"

// Headers of binary audio messages.
const (
	// HeaderSeq numbers audio messages: 1, 2, 3… on PlaybackAudio; Twilio's
	// chunk number on StreamIn.
	HeaderSeq = "Callcast-Seq"
	// HeaderEnd, "true", ends a streamed playback's audio. Its payload may
	// be empty.
	HeaderEnd = "Callcast-End"
	// HeaderTimestamp is Twilio's timestamp (ms since the stream started)
	// of the first frame of a StreamIn message.
	HeaderTimestamp = "Callcast-Timestamp"
)

// Message types of the two-way contract.
const (
	TypeListenRequest = "callcast.listen.v1"
	TypeListenReply   = "callcast.listen.reply.v1"
	TypeCallsRequest  = "callcast.calls.v1"
	TypeCallsReply    = "callcast.calls.reply.v1"
)

// Stream formats a producer may stream in.
const (
	FormatMulaw    = "mulaw"     // G.711 μ-law, 8000 Hz mono
	FormatPCMS16LE = "pcm_s16le" // signed 16-bit little-endian PCM, SampleRate and Channels as given
	FormatMP3      = "mp3"       // an MPEG audio byte stream, cut anywhere
	FormatWAV      = "wav"       // a RIFF WAVE file, header first
)

// StreamFormat describes the audio of a streamed playback.
type StreamFormat struct {
	Format     string `json:"format"`
	SampleRate int    `json:"sampleRate,omitempty"` // pcm_s16le: 8000–48000; mulaw: 8000 or omitted
	Channels   int    `json:"channels,omitempty"`   // pcm_s16le: 1 or 2; mulaw: 1 or omitted
}

// Check reports whether f is a format the edge can play.
func (f *StreamFormat) Check() error {
	switch f.Format {
	case FormatMulaw:
		if f.SampleRate != 0 && f.SampleRate != 8000 || f.Channels != 0 && f.Channels != 1 {
			return fmt.Errorf("%w: mulaw streams are 8000 Hz mono", ErrBadMessage)
		}
	case FormatPCMS16LE:
		if f.SampleRate < 8000 || f.SampleRate > 48000 {
			return fmt.Errorf("%w: pcm_s16le sampleRate %d, want 8000–48000", ErrBadMessage, f.SampleRate)
		}
		if f.Channels != 1 && f.Channels != 2 {
			return fmt.Errorf("%w: pcm_s16le channels %d, want 1 or 2", ErrBadMessage, f.Channels)
		}
	case FormatMP3, FormatWAV:
		if f.SampleRate != 0 || f.Channels != 0 {
			return fmt.Errorf("%w: %s streams carry their own rate and channels", ErrBadMessage, f.Format)
		}
	case "":
		return fmt.Errorf("%w: stream.format missing", ErrBadMessage)
	default:
		return fmt.Errorf("%w: stream.format %.32q, want mulaw, pcm_s16le, mp3 or wav", ErrBadMessage, f.Format)
	}
	return nil
}

// String names the format for logs and events ("pcm_s16le/24000/1").
func (f *StreamFormat) String() string {
	if f.Format != FormatPCMS16LE {
		return f.Format
	}
	return f.Format + "/" + strconv.Itoa(f.SampleRate) + "/" + strconv.Itoa(f.Channels)
}

// More event kinds.
const (
	EventSpeechStarted = "speech.started" // the caller started speaking; Speech.AtMs says when
	EventSpeechStopped = "speech.stopped" // the caller stopped; Speech.DurationMs says for how long
)

// Speech is the body of the speech.* Events, in stream time (Twilio's
// media timestamps, ms since the stream started).
type Speech struct {
	AtMs       int64 `json:"atMs"`
	DurationMs int64 `json:"durationMs"`
}

// Reasons and codes of the two-way contract.
const (
	ReasonBargeIn = "barge_in" // playback.interrupted: the caller spoke over an interruptible playback

	CodeTooLarge    = "too_large"   // a streamed playback ran more than the edge holds ahead of playout
	CodeStalled     = "stalled"     // a streamed playback got neither audio nor its end for STREAM_IDLE_TIMEOUT
	CodeQueueFull   = "queue_full"  // the call already has MAX_QUEUED_PLAYBACKS queued
	CodeUnavailable = "unavailable" // a store or service the request needs is down: try again
)

// ListenRequest asks the edge holding the stream for a lease on its caller
// audio. An empty body is a request for the default lease.
type ListenRequest struct {
	Type    string `json:"type,omitempty"`
	LeaseMs int64  `json:"leaseMs,omitempty"` // asked length; the edge may shorten it
}

// ListenReply grants a lease: the caller's audio is published on
// StreamIn(sid) for LeaseMs from now unless the lease is renewed.
type ListenReply struct {
	Type    string `json:"type"`
	LeaseMs int64  `json:"leaseMs,omitempty"`
	Subject string `json:"subject,omitempty"` // StreamIn(sid)
	Error   *Error `json:"error,omitempty"`
}

// CallsRequest asks every edge for its live calls.
type CallsRequest struct {
	Type string `json:"type,omitempty"`
}

// CallsReply is one edge's answer to a CallsRequest.
type CallsReply struct {
	Type  string `json:"type"`
	Edge  string `json:"edge"`
	Calls []Call `json:"calls"`
}

// Call is a live call an edge holds.
type Call struct {
	StreamSid        string            `json:"streamSid"`
	CallSid          string            `json:"callSid,omitempty"`
	AccountSid       string            `json:"accountSid,omitempty"`
	CustomParameters map[string]string `json:"customParameters,omitempty"`
	StartedAt        string            `json:"startedAt"` // RFC 3339
}
