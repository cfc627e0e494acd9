// Command worker plays audio into live calls: it serves the bus in the
// callcast-workers queue group and publishes μ-law frames to the calls.
//
//	worker [flags]                   serve (every flag also reads the environment variable named in -h)
//	worker transcode [-o OUT] IN     convert a file to raw μ-law (.ulaw) or a μ-law WAV (.wav)
//	worker library ls|info|get|rm|upload  manage the shared audio library (bucket callcast-audio)
//	worker upload [-name NAME] FILE  store audio in the library, playable by name (library upload)
//	worker healthcheck               exit 0 if the local worker answers /healthz
//
// The exit status is 0 on success, after a clean shutdown or -h, 2 for a
// usage error (an unknown command, flag or argument, a bad value), 1
// otherwise.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/callcast/callcast/internal/cli"
	"github.com/callcast/callcast/internal/library"
	"github.com/callcast/callcast/internal/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := program(os.Stdout, os.Stderr).Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func program(stdout, stderr io.Writer) cli.Program {
	return cli.Program{
		Name:    "worker",
		Summary: "worker plays audio into live calls: it serves callcast.play, stream starts and renders on NATS\nin the callcast-workers queue group, and streams μ-law to the calls.",
		Stdout:  stdout,
		Stderr:  stderr,
		Commands: []cli.Command{
			{Args: "[flags]", Summary: "serve: play audio into calls", Setup: func(f *cli.Flags) cli.RunFunc { return serve(f, stderr) }},
			transcodeCommand(stdout, stderr),
			libraryCommand(stdout),
			uploadCommand(stdout),
			cli.HealthcheckCommand("http-addr", "WORKER_HTTP_ADDR", ":9090"),
		},
	}
}

// serve defines the worker's flags and returns what runs it.
func serve(f *cli.Flags, stderr io.Writer) cli.RunFunc {
	var (
		o   worker.RunOptions
		svc cli.Service
	)
	f.String(&o.NATS.URL, "nats", "NATS_URL", "nats://127.0.0.1:4222", "NATS URL(s), comma-separated")
	f.NATSCredentials(&o.NATS.Creds, &o.NATS.User, &o.NATS.Password, &o.NATS.Token)
	f.String(&o.Worker.AudioDir, "audio-dir", "AUDIO_DIR", "./audio", "directory of playable audio")
	f.String(&o.Worker.DefaultAudio, "default-audio", "DEFAULT_AUDIO", "sample.mp3", "audio played when the call names none")
	f.IntMin(&o.Worker.Concurrency, "concurrency", "WORKER_CONCURRENCY", 1000, 1, "simultaneous playbacks, at least 1")
	f.DurationPositive(&o.Worker.Lead, "lead", "PLAYBACK_LEAD", 2*time.Second, "how far a playback may run ahead of what the caller has heard, 400ms to 1m")
	f.Int64(&o.Worker.CacheBytes, "cache-bytes", "CACHE_BYTES", 256<<20, "memory cache of transcoded audio, bytes; negative: none")
	f.Int64(&o.Worker.LibraryMaxBytes, "library-max-bytes", "LIBRARY_MAX_BYTES", library.DefaultLibraryMaxBytes, "bound of the audio library bucket, bytes; negative: none")
	f.Int64(&o.Worker.CacheMaxBytes, "cache-max-bytes", "CACHE_MAX_BYTES", library.DefaultCacheMaxBytes, "bound of the shared transcode cache bucket, bytes; negative: none")
	f.IntMin(&o.Worker.Replicas, "nats-replicas", "NATS_REPLICAS", library.AutoReplicas, 0, "replicas of the JetStream buckets; 0: 3 on a cluster of 3 or more servers, else 1")
	f.String(&o.HTTPAddr, "http-addr", "WORKER_HTTP_ADDR", ":9090", "address serving /healthz, /readyz and /metrics")
	f.DurationPositive(&o.DrainTimeout, "drain-timeout", "DRAIN_TIMEOUT", 30*time.Second, "on SIGTERM, how long playbacks in flight may run on")
	svc.Define(f)
	return func(ctx context.Context, args []string) error {
		if err := cli.NoArgs(args); err != nil {
			return err
		}
		if err := o.Validate(); err != nil {
			return cli.Usage(err)
		}
		log, err := svc.Start(stderr)
		if err != nil {
			return err
		}
		o.Logger = log
		return worker.Run(ctx, o)
	}
}
