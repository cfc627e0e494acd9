package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/client"
	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/callsim"
	"github.com/callcast/callcast/internal/cli"
)

// streamConfig is the configuration of `callsim stream`.
type streamConfig struct {
	nats          bus.ConnOptions
	sid           string
	format        string
	rate          int
	channels      int
	mode          string
	id            string
	interruptible bool
	speed         float64
	chunk         time.Duration
	noWait        bool
}

// streamCommand streams a local file into a live call as a producer would.
func streamCommand(stdin io.Reader, stdout io.Writer) cli.Command {
	return cli.Command{
		Name:    "stream",
		Args:    "[flags] FILE|-",
		Summary: "stream a local file into a live call as a producer would",
		Help: "Streams FILE into a live call as a streamed playback (callcast.play with a stream, then\n" +
			"the audio on its callcast.playback.<id>.audio), paced in real time, and waits until the\n" +
			"caller has heard it. Without -sid it picks the only live call (callcast.calls).\n" +
			"FILE - reads standard input, as it comes (name its -format).\n\n" +
			"  callsim stream -format pcm_s16le -rate 24000 speech.pcm\n" +
			"  espeak-ng --stdout 'Hello there' | callsim stream -format wav -\n" +
			"  callsim stream -sid MZ… -mode interrupt -speed 0 answer.mp3",
		Setup: func(f *cli.Flags) cli.RunFunc {
			var cfg streamConfig
			f.String(&cfg.nats.URL, "nats", "NATS_URL", "nats://127.0.0.1:4222", "NATS URL(s), comma-separated")
			f.NATSCredentials(&cfg.nats.Creds, &cfg.nats.User, &cfg.nats.Password, &cfg.nats.Token)
			f.String(&cfg.sid, "sid", "CALLSIM_SID", "", "stream SID of the call; default the only live call")
			f.String(&cfg.format, "format", "CALLSIM_FORMAT", "", "mulaw, pcm_s16le, mp3 or wav; default by the file's extension (.ulaw, .pcm, .mp3, .wav)")
			f.Int(&cfg.rate, "rate", "CALLSIM_SAMPLE_RATE", 0, "pcm_s16le: sample rate, 8000 to 48000")
			f.Int(&cfg.channels, "channels", "CALLSIM_CHANNELS", 1, "pcm_s16le: channels, 1 or 2 (interleaved)")
			f.String(&cfg.mode, "mode", "CALLSIM_MODE", "queue", "queue (after what is queued) or interrupt (instead)")
			f.String(&cfg.id, "id", "CALLSIM_ID", "", "your own ID for the playback, echoed in its events")
			f.Bool(&cfg.interruptible, "interruptible", "CALLSIM_INTERRUPTIBLE", false, "the caller's speech stops the playback")
			f.Duration(&cfg.chunk, "chunk", "CALLSIM_CHUNK", 20*time.Millisecond, "audio per message")
			f.Bool(&cfg.noWait, "no-wait", "CALLSIM_NO_WAIT", false, "return once the audio is published, without waiting until it is heard")
			speed := "1"
			if v, ok := os.LookupEnv("CALLSIM_STREAM_SPEED"); ok && v != "" {
				speed = v
			}
			f.StringVar(&speed, "speed", speed, "publishing pace: 1 real time, 2 twice as fast; 0 all at once (env CALLSIM_STREAM_SPEED)")
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return cli.Usagef("want one FILE, got %d arguments", len(args))
				}
				var err error
				if cfg.speed, err = strconv.ParseFloat(speed, 64); err != nil {
					return cli.Usagef("-speed %q: not a number", speed)
				}
				return runStream(ctx, cfg, args[0], stdin, stdout)
			}
		},
	}
}

// formatOf is the stream format the flags and the file's name say.
func formatOf(cfg streamConfig, file string) (client.Format, error) {
	name := cfg.format
	if name == "" {
		switch strings.ToLower(filepath.Ext(file)) {
		case ".ulaw", ".mulaw", ".ul":
			name = client.FormatMulaw
		case ".pcm", ".raw", ".s16":
			name = client.FormatPCMS16LE
		case ".mp3":
			name = client.FormatMP3
		case ".wav":
			name = client.FormatWAV
		default:
			return client.Format{}, cli.Usagef("%s: name its -format", file)
		}
	}
	f := client.Format{Name: name}
	if name == client.FormatPCMS16LE {
		if cfg.rate == 0 {
			return f, cli.Usagef("-format pcm_s16le needs -rate")
		}
		f = client.PCM(cfg.rate, cfg.channels)
	}
	sf := bus.StreamFormat{Format: f.Name, SampleRate: f.SampleRate, Channels: f.Channels}
	if err := sf.Check(); err != nil {
		return f, cli.Usage(err)
	}
	return f, nil
}

// runStream streams file (stdin for "-") into a call and reports what
// happened.
func runStream(ctx context.Context, cfg streamConfig, file string, stdin io.Reader, stdout io.Writer) error {
	format, err := formatOf(cfg, file)
	if err != nil {
		return err
	}
	if cfg.mode != string(client.Queue) && cfg.mode != string(client.Interrupt) {
		return cli.Usagef("-mode %q: want queue or interrupt", cfg.mode)
	}
	var r io.Reader = stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	cfg.nats.Name = "callsim-stream"
	nc, err := connect(ctx, cfg.nats)
	if err != nil {
		return err
	}
	defer bus.Close(nc, 5*time.Second)
	rep, err := callsim.Produce(ctx, callsim.ProducerConfig{
		Client:    client.New(nc, client.Options{}),
		StreamSid: cfg.sid,
		Format:    format,
		Options:   client.PlayOptions{Mode: client.Mode(cfg.mode), ID: cfg.id, Interruptible: cfg.interruptible},
		Speed:     cfg.speed,
		Chunk:     cfg.chunk,
		NoWait:    cfg.noWait,
	}, r)
	if rep != nil && rep.Playback.ID != "" {
		if werr := rep.WriteSummary(stdout); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// connect connects to NATS and waits until it is connected: a producer
// that cannot reach NATS should say so, not publish into a buffer.
func connect(ctx context.Context, o bus.ConnOptions) (*nats.Conn, error) {
	connected := make(chan struct{})
	var once sync.Once
	o.OnReconnect = func() { once.Do(func() { close(connected) }) }
	nc, err := bus.Connect(o)
	if err != nil {
		return nil, err
	}
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-connected:
		return nc, nil
	case <-t.C:
		err = errors.New("NATS not reachable within 5s (-nats, NATS_URL)")
	case <-ctx.Done():
		err = ctx.Err()
	}
	nc.Close()
	return nil, err
}
