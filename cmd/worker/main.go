// Command worker plays audio into live calls: it serves the bus in the
// callcast-workers queue group and publishes μ-law frames to the calls.
//
//	worker [flags]                 serve (every flag also reads the environment variable named in -h)
//	worker transcode [-o OUT] IN   convert a file to raw μ-law (.ulaw) or a μ-law WAV (.wav)
//	worker upload [-name NAME] FILE  store audio in the callcast-audio bucket, playable by name
//	worker healthcheck             exit 0 if the local worker answers /healthz
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/callcast/callcast/internal/cli"
	"github.com/callcast/callcast/internal/worker"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) > 0 && args[0] == "transcode" {
		return runTranscode(args[1:], os.Stdout, os.Stderr)
	}
	if len(args) > 0 && args[0] == "upload" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runUpload(ctx, args[1:], os.Stdout, os.Stderr)
	}
	var (
		o   worker.RunOptions
		svc cli.Service
	)
	f := cli.NewFlags("worker")
	f.String(&o.NATS.URL, "nats", "NATS_URL", "nats://127.0.0.1:4222", "NATS URL(s), comma-separated")
	f.NATSCredentials(&o.NATS.Creds, &o.NATS.User, &o.NATS.Password, &o.NATS.Token)
	f.String(&o.Worker.AudioDir, "audio-dir", "AUDIO_DIR", "./audio", "directory of playable audio")
	f.String(&o.Worker.DefaultAudio, "default-audio", "DEFAULT_AUDIO", "sample.mp3", "audio played when the call names none")
	f.Int(&o.Worker.Concurrency, "concurrency", "WORKER_CONCURRENCY", 1000, "simultaneous playbacks")
	f.Duration(&o.Worker.Lead, "lead", "PLAYBACK_LEAD", 2*time.Second, "how far a playback may run ahead of what the caller has heard")
	f.Int64(&o.Worker.CacheBytes, "cache-bytes", "CACHE_BYTES", 256<<20, "memory cache of transcoded audio, bytes; negative: none")
	f.String(&o.HTTPAddr, "http-addr", "WORKER_HTTP_ADDR", ":9090", "address serving /healthz, /readyz and /metrics")
	f.Duration(&o.DrainTimeout, "drain-timeout", "DRAIN_TIMEOUT", 30*time.Second, "on SIGTERM, how long playbacks in flight may run on")
	svc.Define(f)
	log, err := svc.Start(f, args, &o.HTTPAddr)
	if log == nil || err != nil {
		return err
	}
	o.Logger = log
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return worker.Run(ctx, o)
}
