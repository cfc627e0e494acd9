// Command edge terminates Twilio Media Streams WebSockets, serves the TwiML
// webhook, and bridges calls to the NATS bus. Without NATS_URL it runs the
// whole product in one process: an embedded NATS server and a worker pool.
//
//	edge [flags]        serve (every flag also reads the environment variable named in -h)
//	edge healthcheck    exit 0 if the local edge answers /healthz
//
// The exit status is 0 after a clean shutdown or -h, 2 for a usage error
// (an unknown command, flag or argument, a bad value), 1 otherwise.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/callcast/callcast/internal/cli"
	"github.com/callcast/callcast/internal/edge"
	"github.com/callcast/callcast/internal/library"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := program(os.Stdout, os.Stderr).Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func program(stdout, stderr io.Writer) cli.Program {
	return cli.Program{
		Name:    "edge",
		Summary: "edge serves Twilio Media Streams and the TwiML webhook, and bridges calls to NATS.\nWithout -nats it runs the whole product: an embedded NATS server and workers.",
		Stdout:  stdout,
		Stderr:  stderr,
		Commands: []cli.Command{
			{Args: "[flags]", Summary: "serve the webhook and media streams (all-in-one: with NATS and workers)", Setup: func(f *cli.Flags) cli.RunFunc { return serve(f, stderr) }},
			cli.HealthcheckCommand("addr", "EDGE_ADDR", ":8080"),
		},
	}
}

// serve defines the edge's flags and returns what runs it.
func serve(f *cli.Flags, stderr io.Writer) cli.RunFunc {
	var (
		o   edge.Options
		svc cli.Service
	)
	f.String(&o.Addr, "addr", "EDGE_ADDR", ":8080", "HTTP listen address")
	f.String(&o.NATS.URL, "nats", "NATS_URL", "", "NATS URL(s), comma-separated; empty runs all-in-one with an embedded NATS server and workers")
	f.String(&o.NATSListen, "nats-listen", "NATS_LISTEN", "127.0.0.1:4222", "all-in-one: the embedded NATS server's client address")
	f.String(&o.NATSStoreDir, "nats-store-dir", "NATS_STORE_DIR", "", "all-in-one: the embedded NATS server's JetStream directory (audio library, transcode cache); empty: callcast in the user's data directory ($XDG_DATA_HOME or ~/.local/share)")
	f.NATSCredentials(&o.NATS.Creds, &o.NATS.User, &o.NATS.Password, &o.NATS.Token)
	f.String(&o.Edge.PublicURL, "public-url", "PUBLIC_URL", "", "public base URL Twilio reaches this edge at, e.g. https://voice.example.com; empty: the request's host, wss:// unless loopback")
	f.Bool(&o.Edge.TrustProxy, "trust-proxy", "TRUST_PROXY", false, "honour X-Forwarded-Host/-Proto when PUBLIC_URL is empty")
	f.String(&o.Edge.AuthToken, "twilio-auth-token", "TWILIO_AUTH_TOKEN", "", "Twilio auth token: verify X-Twilio-Signature on the webhook and the stream upgrade")
	f.String(&o.Edge.Say, "say", "SAY", "", "optional text Twilio speaks before connecting the stream")
	f.String(&o.Edge.ID, "id", "EDGE_ID", defaultID(), "this edge's name on the bus")
	f.String(&o.Worker.AudioDir, "audio-dir", "AUDIO_DIR", "./audio", "all-in-one: directory of playable audio")
	f.String(&o.Edge.DefaultAudio, "default-audio", "DEFAULT_AUDIO", "sample.mp3", "audio the edge queues at start when the call names none (none: nothing); give workers the same")
	f.Int64(&o.Edge.AudioCacheBytes, "edge-cache-bytes", "EDGE_CACHE_BYTES", 64<<20, "memory for the μ-law of audio this edge played, which it then plays itself without a worker, bytes; 0 or negative: none")
	f.DurationPositive(&o.Edge.AudioCacheTTL, "edge-cache-ttl", "EDGE_CACHE_TTL", 30*time.Second, "how long the edge plays an audio from its cache after filling it; then a worker renders it afresh (library uploads drop it at once)")
	f.IntMin(&o.Worker.Concurrency, "worker-concurrency", "WORKER_CONCURRENCY", 1000, 1, "all-in-one: simultaneous playbacks, at least 1")
	f.DurationPositive(&o.Worker.Lead, "lead", "PLAYBACK_LEAD", 2*time.Second, "how far a playback may run ahead of what the caller has heard, 400ms to 1m (the edge paces the playbacks it sends itself by it and closes a peer that stays further behind; all-in-one: the workers' pacing)")
	f.Int64(&o.Worker.CacheBytes, "cache-bytes", "CACHE_BYTES", 256<<20, "all-in-one: memory cache of transcoded audio, bytes; negative: none")
	f.DurationPositive(&o.Edge.StreamIdleTimeout, "stream-idle-timeout", "STREAM_IDLE_TIMEOUT", 10*time.Second, "a streamed playback whose producer sends neither audio nor its end for this long fails with code stalled")
	f.Int64(&o.Edge.StreamBufferBytes, "stream-buffer-bytes", "STREAM_BUFFER_BYTES", edge.DefaultStreamBufferBytes, "what all streamed playbacks and producer media may hold ahead of playout on this edge, together, bytes; a playback that would take more fails with code too_large; negative: no bound but each playback's own")
	f.IntMin(&o.Edge.MaxQueuedPlaybacks, "max-queued-playbacks", "MAX_QUEUED_PLAYBACKS", 100, 1, "playbacks that may wait on one call; past it callcast.play answers queue_full")
	f.String(&o.Edge.CallerAudio, "caller-audio", "CALLER_AUDIO", "listen", "publish callers' audio on callcast.stream.<sid>.in: on, off, or listen (while someone holds a lease, or the call asks with callerAudio=on)")
	f.Duration(&o.Edge.CallerAudioBatch, "caller-audio-batch", "CALLER_AUDIO_BATCH", 20*time.Millisecond, "caller audio per bus message, 20ms to 200ms")
	f.Duration(&o.Edge.ListenLease, "listen-lease", "LISTEN_LEASE", 10*time.Second, "default lease on a call's audio granted on callcast.stream.<sid>.listen, 1s to 1m")
	f.String(&o.Edge.VAD, "vad", "VAD", "on", "detect callers' speech: speech.started/stopped events and barge-in (on or off)")
	f.Int64(&o.Worker.LibraryMaxBytes, "library-max-bytes", "LIBRARY_MAX_BYTES", library.DefaultLibraryMaxBytes, "all-in-one: bound of the audio library bucket, bytes; negative: none")
	f.Int64(&o.Worker.CacheMaxBytes, "cache-max-bytes", "CACHE_MAX_BYTES", library.DefaultCacheMaxBytes, "all-in-one: bound of the shared transcode cache bucket, bytes; negative: none")
	f.IntMin(&o.Worker.Replicas, "nats-replicas", "NATS_REPLICAS", library.AutoReplicas, 0, "all-in-one: replicas of the JetStream buckets; 0: 3 on a cluster of 3 or more servers, else 1")
	f.DurationPositive(&o.DrainTimeout, "drain-timeout", "DRAIN_TIMEOUT", 30*time.Second, "on SIGTERM, how long calls in progress may run on")
	svc.Define(f)
	return func(ctx context.Context, args []string) error {
		if err := cli.NoArgs(args); err != nil {
			return err
		}
		o.NATS.Name = "callcast-edge-" + o.Edge.ID
		o.Edge.Lead = o.Worker.Lead
		o.Worker.DefaultAudio = o.Edge.DefaultAudio
		if err := o.Validate(); err != nil {
			return cli.Usage(err)
		}
		log, err := svc.Start(stderr)
		if err != nil {
			return err
		}
		o.Logger = log
		return edge.Run(ctx, o)
	}
}

func defaultID() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}
