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
		o       worker.RunOptions
		logOpts cli.Log
	)
	f := cli.NewFlags("worker")
	f.String(&o.NATS.URL, "nats", "NATS_URL", "nats://127.0.0.1:4222", "NATS URL(s), comma-separated")
	f.String(&o.NATS.Creds, "nats-creds", "NATS_CREDS", "", "NATS credentials file")
	f.String(&o.NATS.User, "nats-user", "NATS_USER", "", "NATS user")
	f.String(&o.NATS.Password, "nats-password", "NATS_PASSWORD", "", "NATS password")
	f.String(&o.NATS.Token, "nats-token", "NATS_TOKEN", "", "NATS token")
	f.String(&o.Worker.AudioDir, "audio-dir", "AUDIO_DIR", "./audio", "directory of playable audio")
	f.String(&o.Worker.DefaultAudio, "default-audio", "DEFAULT_AUDIO", "sample.mp3", "audio played when the call names none")
	f.Int(&o.Worker.Concurrency, "concurrency", "WORKER_CONCURRENCY", 1000, "simultaneous playbacks")
	var cacheBytes int
	f.Int(&cacheBytes, "cache-bytes", "CACHE_BYTES", 256<<20, "memory cache of transcoded audio, bytes; negative: none")
	f.String(&o.HTTPAddr, "http-addr", "WORKER_HTTP_ADDR", ":9090", "address serving /healthz, /readyz and /metrics")
	f.Duration(&o.DrainTimeout, "drain-timeout", "DRAIN_TIMEOUT", 30*time.Second, "on SIGTERM, how long playbacks in flight may run on")
	var pprofAddr string
	f.String(&pprofAddr, "pprof-addr", "PPROF_ADDR", "", "serve Go profiling endpoints (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; empty: off")
	logOpts.Define(f)
	if len(args) > 0 && args[0] == "healthcheck" {
		if err := f.Parse(args[1:]); err != nil {
			return err
		}
		return cli.Healthcheck(context.Background(), o.HTTPAddr)
	}
	if err := f.Parse(args); err != nil {
		return err
	}
	log, err := logOpts.Logger(os.Stderr)
	if err != nil {
		return err
	}
	o.Logger = log
	o.Worker.CacheBytes = int64(cacheBytes)
	if err := cli.ServePprof(pprofAddr, log); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return worker.Run(ctx, o)
}
