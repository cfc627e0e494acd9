package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/internal/bus"
)

// Mode says where a playback goes in a call's queue.
type Mode string

// Modes.
const (
	// Queue plays after everything already queued on the call. It is
	// what the zero Mode means.
	Queue Mode = bus.ModeQueue
	// Interrupt stops what plays, drops the queue, clears Twilio's buffer,
	// then plays.
	Interrupt Mode = bus.ModeInterrupt
)

// PlayOptions are the options of Play and Stream. The zero value queues a
// playback that the caller's speech does not stop.
type PlayOptions struct {
	// Mode is Queue (default) or Interrupt.
	Mode Mode
	// ID is your own ID for the playback, echoed as RequestID in its
	// events. At most 128 bytes; empty: none.
	ID string
	// Interruptible lets the caller's speech stop the playback
	// (playback.interrupted with reason barge_in).
	Interruptible bool
}

// Playback is one playback on a call: what Play and Stream return, and the
// body of playback.* events, which fill in its progress.
type Playback struct {
	ID         string // callcast's ID for it, unique across the product
	StreamSid  string // the call's stream
	RequestID  string // PlayOptions.ID, if given
	Audio      string // the file's name (files)
	Stream     string // the stream's format (streamed playbacks), e.g. "pcm_s16le/24000/1"
	DurationMs int64  // the audio's length, when known (files that record it)
	SentMs     int64  // events: audio sent to the call so far
	HeardMs    int64  // events: audio Twilio confirmed as played
	Reason     string // playback.interrupted: interrupt, clear, stop, shutdown or barge_in
}

// Format is the audio format of a streamed playback. Use PCM, Mulaw, MP3
// or WAV.
type Format struct {
	// Name is "mulaw", "pcm_s16le", "mp3" or "wav".
	Name string
	// SampleRate and Channels describe pcm_s16le: 8000–48000 Hz, 1 or 2
	// channels (interleaved). The other formats leave them zero.
	SampleRate int
	Channels   int
}

// Format names.
const (
	FormatMulaw    = bus.FormatMulaw
	FormatPCMS16LE = bus.FormatPCMS16LE
	FormatMP3      = bus.FormatMP3
	FormatWAV      = bus.FormatWAV
)

// The formats that carry their own rate and channels.
var (
	// Mulaw is G.711 μ-law, 8000 Hz mono, one byte per sample.
	Mulaw = Format{Name: FormatMulaw}
	// MP3 is an MPEG audio byte stream (Layer III), cut anywhere.
	MP3 = Format{Name: FormatMP3}
	// WAV is a RIFF WAVE file, header first: 16-bit PCM at any rate, or
	// μ-law.
	WAV = Format{Name: FormatWAV}
)

// PCM is signed 16-bit little-endian PCM at sampleRate Hz with channels
// interleaved channels.
func PCM(sampleRate, channels int) Format {
	return Format{Name: FormatPCMS16LE, SampleRate: sampleRate, Channels: channels}
}

func (f Format) String() string {
	sf := f.wire()
	return sf.String()
}

// BytesPerSecond is the byte rate of PCM and μ-law, 0 for MP3 and WAV
// (their rate is in the stream).
func (f Format) BytesPerSecond() int {
	switch f.Name {
	case FormatMulaw:
		return 8000
	case FormatPCMS16LE:
		return f.SampleRate * f.Channels * 2
	}
	return 0
}

func (f Format) wire() *bus.StreamFormat {
	return &bus.StreamFormat{Format: f.Name, SampleRate: f.SampleRate, Channels: f.Channels}
}

// Play asks for the audio file named audio (in the product's library) to be
// played into the call of streamSid, and returns the playback once it is
// queued. To learn when it has been heard, follow the call's Events from
// before Play and WaitPlayback.
func (c *Client) Play(ctx context.Context, streamSid, audio string, opts PlayOptions) (Playback, error) {
	if audio == "" {
		return Playback{}, fmt.Errorf("client: play: %w: no audio named", ErrBadRequest)
	}
	reply, err := c.play(ctx, bus.PlayRequest{StreamSid: streamSid, Audio: audio}, opts)
	if err != nil {
		return Playback{}, err
	}
	return Playback{ID: reply.PlaybackID, StreamSid: streamSid, RequestID: opts.ID, Audio: audio, DurationMs: reply.DurationMs}, nil
}

// play sends a PlayRequest and checks the reply.
func (c *Client) play(ctx context.Context, req bus.PlayRequest, opts PlayOptions) (*bus.PlayReply, error) {
	if err := bus.CheckStreamSid(req.StreamSid); err != nil {
		return nil, fmt.Errorf("client: play: %w: %w", ErrBadRequest, err)
	}
	req.Type, req.Mode, req.ID, req.Interruptible = bus.TypePlayRequest, string(opts.Mode), opts.ID, opts.Interruptible
	data, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("client: play: %w", err)
	}
	msg, err := c.request(ctx, bus.SubjectPlay, data)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("client: play: %w (%w)", ErrNoWorkers, err)
	}
	if err != nil {
		return nil, opError("play", err)
	}
	reply, err := bus.DecodePlayReply(msg.Data)
	if err != nil {
		return nil, fmt.Errorf("client: play: %w: %w", ErrBadReply, err)
	}
	if reply.Error != nil {
		return nil, fmt.Errorf("client: play: %w", replyError(reply.Error))
	}
	if reply.PlaybackID == "" {
		return nil, fmt.Errorf("client: play: %w: no playbackId", ErrBadReply)
	}
	return reply, nil
}

// Stream starts a streamed playback of audio in format f on the call of
// streamSid and returns the writer its audio goes to. Whatever is written
// after Stream returns is kept for the playback (the edge subscribed before
// answering); Close ends it. The playback is heard as it arrives: a writer
// that pauses is heard as silence, and one that stays silent for the edge's
// idle timeout (10 s by default) without closing fails with ErrStalled.
// Writing faster than real time is fine: the edge holds at least 10
// minutes or 64 MiB ahead of playout.
func (c *Client) Stream(ctx context.Context, streamSid string, f Format, opts PlayOptions) (*StreamWriter, error) {
	sf := f.wire()
	if err := sf.Check(); err != nil {
		return nil, fmt.Errorf("client: stream: %w: %w", ErrBadRequest, err)
	}
	reply, err := c.play(ctx, bus.PlayRequest{StreamSid: streamSid, Stream: sf}, opts)
	if err != nil {
		return nil, err
	}
	if want := bus.PlaybackAudio(reply.PlaybackID); reply.AudioSubject != want {
		return nil, fmt.Errorf("client: stream: %w: audioSubject %.80q, want %q", ErrBadReply, reply.AudioSubject, want)
	}
	return &StreamWriter{
		nc:      c.nc,
		subject: reply.AudioSubject,
		chunk:   c.chunkSize(),
		timeout: c.opts.Timeout,
		pb:      Playback{ID: reply.PlaybackID, StreamSid: streamSid, RequestID: opts.ID, Stream: sf.String(), DurationMs: reply.DurationMs},
	}, nil
}

// StreamWriter writes a streamed playback's audio: each Write publishes
// the bytes as they are, in messages of at most Options.ChunkSize bytes
// numbered 1, 2, 3… (header Callcast-Seq), and Close publishes the end
// (header Callcast-End). Bytes need not be aligned to samples or frames.
// Writes never wait for playout. It is safe for concurrent use, though
// concurrent writes interleave in no particular order.
type StreamWriter struct {
	nc      *nats.Conn
	subject string
	chunk   int
	timeout time.Duration
	pb      Playback

	mu     sync.Mutex
	seq    int64
	msg    nats.Msg // reused for every message
	closed bool
}

// Playback returns the playback the writer feeds.
func (w *StreamWriter) Playback() Playback { return w.pb }

// Write publishes p. It returns ErrClosed after Close, or the NATS error
// that stopped it, with the bytes published before it.
func (w *StreamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, fmt.Errorf("client: stream %s: %w", w.pb.ID, ErrClosed)
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), w.chunk)
		if err := w.publish(p[:k], false); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// Close publishes the end of the stream and waits (up to Options.Timeout)
// until the NATS server has everything written. Closing twice is a no-op.
func (w *StreamWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if err := w.publish(nil, true); err != nil {
		return err
	}
	if err := w.nc.FlushTimeout(w.timeout); err != nil {
		return fmt.Errorf("client: stream %s: flush: %w", w.pb.ID, err)
	}
	return nil
}

func (w *StreamWriter) publish(p []byte, end bool) error {
	w.seq++
	// One message, reused: PublishMsg copies it out before it returns.
	if w.msg.Header == nil {
		w.msg = nats.Msg{Subject: w.subject, Header: nats.Header{bus.HeaderSeq: {""}}}
	}
	w.msg.Data = p
	w.msg.Header[bus.HeaderSeq][0] = strconv.FormatInt(w.seq, 10)
	if end {
		w.msg.Header[bus.HeaderEnd] = []string{"true"}
	}
	if err := w.nc.PublishMsg(&w.msg); err != nil {
		w.seq--
		return fmt.Errorf("client: stream %s: publish: %w", w.pb.ID, err)
	}
	return nil
}

// Clear empties Twilio's buffer for the call of streamSid and stops every
// playback on it (playback.interrupted with reason clear). It returns once
// the NATS server has the clear.
func (c *Client) Clear(ctx context.Context, streamSid string) error {
	if err := bus.CheckStreamSid(streamSid); err != nil {
		return fmt.Errorf("client: clear: %w: %w", ErrBadRequest, err)
	}
	if err := c.nc.Publish(bus.StreamOut(streamSid), []byte(`{"event":"clear"}`)); err != nil {
		return opError("clear", err)
	}
	if err := c.flush(ctx); err != nil {
		return opError("clear", err)
	}
	return nil
}
