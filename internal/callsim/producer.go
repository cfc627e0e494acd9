package callsim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/callcast/callcast/client"
	"github.com/callcast/callcast/internal/audio"
)

// The producer's side: streaming a local file into a live call as a TTS
// engine or a voice bot would, through the public client.

// Errors of Produce.
var (
	// ErrNoCall: no -sid was given and no call is live.
	ErrNoCall = errors.New("callsim: no live call")
	// ErrSeveralCalls: no -sid was given and more than one call is live.
	ErrSeveralCalls = errors.New("callsim: several live calls: name one")
)

// ProducerConfig says what Produce streams, and how.
type ProducerConfig struct {
	// Client is the producer's connection to callcast.
	Client *client.Client
	// StreamSid is the call to stream into. Empty: the only live call
	// (ErrNoCall or ErrSeveralCalls otherwise).
	StreamSid string
	// Format is the file's format: client.PCM(rate, channels) for raw PCM,
	// client.Mulaw for raw μ-law, client.MP3 or client.WAV.
	Format client.Format
	// Options are the playback's mode, ID and interruptibility.
	Options client.PlayOptions
	// Speed paces the publishing: 1 publishes the audio as fast as it
	// plays, 2 twice as fast; zero or less, all of it at once.
	Speed float64
	// Chunk is how much audio each message holds. Zero: 20 ms.
	Chunk time.Duration
	// NoWait returns once the audio is published, without waiting for the
	// playback to end.
	NoWait bool
}

// ProducerReport is what Produce did.
type ProducerReport struct {
	Playback  client.Playback
	Bytes     int64         // bytes published
	Messages  int           // audio messages published (the end's excluded)
	Duration  time.Duration // the file's audio, as measured before publishing
	Published time.Duration // from the first chunk to the end
	End       client.Event  // the playback's terminal event; zero with NoWait
}

// Produce streams r into a call as a streamed playback of cfg.Format,
// paced at cfg.Speed, and waits for the playback to end. Its error is nil
// only if the caller heard all of it (or, with NoWait, if all of it was
// published).
//
// A file (an io.Seeker that seeks) is measured first, so that any format is
// paced. Anything else, a pipe from a TTS engine say, is published as it
// comes: PCM and μ-law paced by their byte rate, MP3 and WAV unpaced (the
// writer's own pace is the producer's).
func Produce(ctx context.Context, cfg ProducerConfig, r io.Reader) (*ProducerReport, error) {
	if cfg.Chunk <= 0 {
		cfg.Chunk = 20 * time.Millisecond
	}
	var (
		size int64         // bytes of audio…
		dur  time.Duration // …that last this long; 0: unknown
		err  error
		rep  = &ProducerReport{}
		// A file's chunks are read whole; a pipe's as they come.
		read = func(p []byte) (int, error) { return io.ReadFull(r, p) }
	)
	if f, ok := r.(io.ReadSeeker); ok && seekable(f) {
		if size, dur, err = measure(cfg.Format, f); err != nil {
			return nil, err
		}
		rep.Duration = dur
	} else {
		read = r.Read
		if bps := cfg.Format.BytesPerSecond(); bps > 0 {
			size, dur = int64(bps), time.Second // a rate, not a length
		}
	}
	sid := cfg.StreamSid
	if sid == "" {
		if sid, err = onlyCall(ctx, cfg.Client); err != nil {
			return nil, err
		}
	}
	evs, err := cfg.Client.Events(ctx, sid)
	if err != nil {
		return nil, err
	}
	defer evs.Close()
	w, err := cfg.Client.Stream(ctx, sid, cfg.Format, cfg.Options)
	if err != nil {
		return nil, err
	}
	rep.Playback = w.Playback()
	// However publishing ends, the stream ends with it, so that the edge
	// plays what came and does not wait out its idle timeout (Close is
	// idempotent).
	defer w.Close()

	// bytes per message, and the pace: size bytes over dur/Speed.
	chunk := int64(4096)
	if dur > 0 {
		chunk = max(1, size*int64(cfg.Chunk)/int64(dur))
	}
	buf := make([]byte, chunk)
	start := time.Now()
	var t *time.Timer
	for {
		n, rerr := read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return rep, err
			}
			rep.Bytes += int64(n)
			rep.Messages++
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rep, fmt.Errorf("callsim: read: %w", rerr)
		}
		if cfg.Speed > 0 && dur > 0 && size > 0 {
			due := start.Add(time.Duration(float64(dur) * float64(rep.Bytes) / float64(size) / cfg.Speed))
			if wait := time.Until(due); wait > 0 {
				if t == nil {
					t = time.NewTimer(wait)
					defer t.Stop()
				} else {
					t.Reset(wait)
				}
				select {
				case <-t.C:
				case <-ctx.Done():
					return rep, ctx.Err()
				}
			}
		}
	}
	if err := w.Close(); err != nil {
		return rep, err
	}
	rep.Published = time.Since(start)
	if cfg.NoWait {
		return rep, nil
	}
	rep.End, err = evs.WaitPlayback(ctx, rep.Playback.ID)
	return rep, err
}

// seekable reports whether s can seek (a file, not a pipe).
func seekable(s io.Seeker) bool {
	_, err := s.Seek(0, io.SeekCurrent)
	return err == nil
}

// measure returns the size of f and the length of its audio, and rewinds
// it. MP3 and WAV files are decoded to learn their length.
func measure(format client.Format, f io.ReadSeeker) (int64, time.Duration, error) {
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, 0, fmt.Errorf("callsim: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, 0, fmt.Errorf("callsim: %w", err)
	}
	if bps := format.BytesPerSecond(); bps > 0 {
		return size, time.Duration(size) * time.Second / time.Duration(bps), nil
	}
	tc, err := audio.NewTranscoder(f, audio.Options{})
	if err != nil {
		return 0, 0, fmt.Errorf("callsim: %s file: %w", format.Name, err)
	}
	n, err := io.Copy(io.Discard, tc)
	if err != nil && !errors.Is(err, audio.ErrTruncated) {
		return 0, 0, fmt.Errorf("callsim: %s file: %w", format.Name, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, 0, fmt.Errorf("callsim: %w", err)
	}
	return size, time.Duration(n) * time.Second / audio.SampleRate, nil
}

// onlyCall returns the stream SID of the one live call.
func onlyCall(ctx context.Context, c *client.Client) (string, error) {
	calls, err := c.Calls(ctx)
	if err != nil {
		return "", err
	}
	switch len(calls) {
	case 0:
		return "", ErrNoCall
	case 1:
		return calls[0].StreamSid, nil
	}
	sids := make([]string, len(calls))
	for i, call := range calls {
		sids[i] = call.StreamSid
	}
	return "", fmt.Errorf("%w (-sid): %s", ErrSeveralCalls, strings.Join(sids, ", "))
}

// WriteSummary writes the report as lines of "name value".
func (r *ProducerReport) WriteSummary(w io.Writer) error {
	pb := r.Playback
	line := fmt.Sprintf("stream       %s into %s: playback %s\n", pb.Stream, pb.StreamSid, pb.ID)
	line += fmt.Sprintf("published    %d bytes in %d messages, ", r.Bytes, r.Messages)
	if r.Duration > 0 {
		line += fmt.Sprintf("%s of audio ", r.Duration.Round(time.Millisecond))
	}
	line += fmt.Sprintf("in %s\n", r.Published.Round(time.Millisecond))
	if e := r.End; e.Playback != nil {
		line += fmt.Sprintf("%-12s heard %d ms", e.Kind, e.Playback.HeardMs)
		if e.Playback.Reason != "" {
			line += " (" + e.Playback.Reason + ")"
		}
		if e.Error != nil {
			line += " (" + e.Error.Error() + ")"
		}
		line += "\n"
	}
	_, err := io.WriteString(w, line)
	return err
}
