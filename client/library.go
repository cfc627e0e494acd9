package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/library"
)

// Errors of the audio library.
var (
	// ErrLibraryFull: an upload that does not fit in what is left of the
	// library's bound (LIBRARY_MAX_BYTES). Nothing was written.
	ErrLibraryFull = errors.New("audio library full")
	// ErrNoLibrary: the NATS server has no JetStream, where the shared
	// audio library lives.
	ErrNoLibrary = errors.New("no audio library (no JetStream on the NATS server)")
)

// WorkerInboxPrefix is the inbox prefix of callcast's workers. A Library
// needs the worker's NATS permissions: under deploy/nats/auth.conf,
// connect as user worker with nats.CustomInboxPrefix(WorkerInboxPrefix).
const WorkerInboxPrefix = bus.InboxWorker

// A Library manages the shared audio library: the JetStream Object Store
// bucket callcast-audio, which every worker plays from by name (after its
// AUDIO_DIR), and the μ-law of its prompts in the transcode cache
// (callcast-cache). It does what `worker library` does. Create it with
// Client.Library; release it with Close.
type Library struct {
	c   *Client
	lib *library.Library
}

// Prompt describes an object of the audio library.
type Prompt struct {
	Name       string
	Format     string        // "mp3", "wav-pcm16", "wav-mulaw"; "" when not known yet
	SampleRate int           // of the source, Hz
	Channels   int           // of the source
	Duration   time.Duration // exact for prompts uploaded by callcast
	Size       int64         // bytes of the source
	SHA256     string        // of the source, hex
	UploadedAt time.Time
	// Cached: its μ-law is in the shared cache, so that its first
	// playback anywhere needs no transcoding.
	Cached bool
}

// Library binds the audio library's buckets over the client's connection,
// creating them when missing (with the workers' default bounds), and
// using existing ones as they are.
func (c *Client) Library(ctx context.Context) (*Library, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	js, err := jetstream.New(c.nc)
	if err != nil {
		return nil, opError("library", err)
	}
	lib, err := library.New(ctx, library.Options{JS: js, MemoryBytes: -1, KeepBuckets: true})
	if err != nil {
		return nil, opError("library", err)
	}
	if err := lib.Bind(ctx); err != nil {
		lib.Close()
		return nil, libraryError("library", err)
	}
	return &Library{c: c, lib: lib}, nil
}

// Close releases the Library (not the client's connection).
func (l *Library) Close() error { return l.lib.Close() }

// Upload checks the audio read from r (MP3 or WAV), transcodes it, and
// stores it as name, replacing a prompt of that name; its μ-law goes into
// the shared cache. Names are checked as the workers check them. Errors:
// ErrUnknownAudio for a name not allowed, ErrBadAudio for audio that does
// not play, ErrLibraryFull, ErrUnavailable, ErrNoLibrary. It moves a whole
// file, so only ctx bounds it, not Options.Timeout.
func (l *Library) Upload(ctx context.Context, name string, r io.Reader) (Prompt, error) {
	o, err := l.lib.Put(ctx, name, r)
	if err != nil {
		return Prompt{}, libraryError("library upload", err)
	}
	return prompt(o), nil
}

// List describes every prompt of the library, by name.
func (l *Library) List(ctx context.Context) ([]Prompt, error) {
	ctx, cancel := l.c.withTimeout(ctx)
	defer cancel()
	objs, err := l.lib.List(ctx)
	if err != nil {
		return nil, libraryError("library list", err)
	}
	out := make([]Prompt, len(objs))
	for i, o := range objs {
		out[i] = prompt(o)
	}
	return out, nil
}

// Info describes the prompt name; ErrUnknownAudio if there is none.
func (l *Library) Info(ctx context.Context, name string) (Prompt, error) {
	ctx, cancel := l.c.withTimeout(ctx)
	defer cancel()
	o, err := l.lib.Stat(ctx, name)
	if err != nil {
		return Prompt{}, libraryError("library info", err)
	}
	return prompt(o), nil
}

// Get writes the source bytes of the prompt name to w. It moves a whole
// file, so only ctx bounds it, not Options.Timeout.
func (l *Library) Get(ctx context.Context, name string, w io.Writer) (Prompt, error) {
	o, err := l.lib.Get(ctx, name, w)
	if err != nil {
		return Prompt{}, libraryError("library get", err)
	}
	return prompt(o), nil
}

// Remove deletes the prompt name and its cached μ-law. Playbacks of it
// under way finish; the next play of the name fails with ErrUnknownAudio.
func (l *Library) Remove(ctx context.Context, name string) (Prompt, error) {
	ctx, cancel := l.c.withTimeout(ctx)
	defer cancel()
	o, err := l.lib.Remove(ctx, name)
	if err != nil {
		return Prompt{}, libraryError("library remove", err)
	}
	return prompt(o), nil
}

func prompt(o library.Object) Prompt {
	return Prompt{
		Name: o.Name, Format: o.Info.Format, SampleRate: o.Info.SampleRate, Channels: o.Info.Channels,
		Duration: o.Info.Duration, Size: o.Size, SHA256: o.SHA256, UploadedAt: o.UploadedAt, Cached: o.Cached,
	}
}

// libraryError turns an error of the library, in operation op, into the
// client's.
func libraryError(op string, err error) error {
	code := ""
	switch {
	case errors.Is(err, library.ErrLibraryFull):
		return fmt.Errorf("client: %s: %w: %v", op, ErrLibraryFull, err)
	case errors.Is(err, library.ErrNoStore):
		return fmt.Errorf("client: %s: %w: %v", op, ErrNoLibrary, err)
	case errors.Is(err, library.ErrNotFound), errors.Is(err, library.ErrBadName):
		code = bus.CodeUnknownAudio
	case errors.Is(err, library.ErrUnavailable):
		code = bus.CodeUnavailable
	case errors.Is(err, library.ErrTooLarge), errors.Is(err, library.ErrNotAFile), isAudioError(err):
		code = bus.CodeBadAudio
	default:
		return opError(op, err)
	}
	return opError(op, &Error{Code: code, Message: err.Error(), cause: err})
}

func isAudioError(err error) bool {
	return errors.Is(err, audio.ErrBadInput) || errors.Is(err, audio.ErrUnsupported) || errors.Is(err, audio.ErrTruncated)
}
