// Command callsim calls a media-stream server the way Twilio does and
// records what the caller would hear, so the product can be heard and
// load-tested without a phone.
//
//	callsim -url ws://127.0.0.1:8080/media-stream -param audio=sample.mp3 -o call.wav
//	callsim -calls 50 -rate 10 -duration 20s
//	callsim stream -format pcm_s16le -rate 24000 speech.pcm   # as a producer, into the live call
//
// Every flag can also be set from the environment variable named in its
// help (-h). The exit status is 0 on success or -h, 2 for a usage error,
// and 1 if the call broke or the server broke the protocol.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/callcast/callcast/internal/callsim"
	"github.com/callcast/callcast/internal/cli"
	"github.com/callcast/callcast/internal/twilio"
)

type config struct {
	url      string
	params   map[string]string
	header   http.Header
	out      string
	caller   string
	in       string
	inAt     time.Duration
	duration time.Duration
	quiet    time.Duration
	speed    float64
	calls    int
	rate     float64
	token    string
	signURL  string
	metrics  []string
	inNATS   string
	pids     []int
	pprof    string
	log      cli.Log
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := program(os.Stdout, os.Stderr).Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func program(stdout, stderr io.Writer) cli.Program {
	return cli.Program{
		Name:    "callsim",
		Summary: "callsim calls a media-stream server the way Twilio does and records what the caller hears;\nwith -calls N it load-tests a server on this machine.",
		Stdout:  stdout,
		Stderr:  stderr,
		Commands: []cli.Command{
			{Args: "[flags]", Summary: "place a call (or, with -calls, many)", Setup: func(f *cli.Flags) cli.RunFunc {
				var cfg config
				finish := defineFlags(f, &cfg)
				return func(ctx context.Context, args []string) error {
					if err := cli.NoArgs(args); err != nil {
						return err
					}
					if err := finish(); err != nil {
						return cli.Usage(err)
					}
					log, err := cfg.log.Logger(stderr)
					if err != nil {
						return cli.Usage(err)
					}
					if err := cli.ServePprof(cfg.pprof, log); err != nil {
						return fmt.Errorf("pprof: %w", err)
					}
					return run(ctx, cfg, log, stdout)
				}
			}},
			floorCommand(stderr),
			compareCommand(stdout, stderr),
			streamCommand(os.Stdin, stdout),
		},
	}
}

// run places the call (or the load) and reports on stdout.
func run(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	call := callsim.Config{URL: cfg.url, Header: cfg.header, Parameters: cfg.params, Speed: cfg.speed, Logger: log}
	until := callsim.Until{Duration: cfg.duration, Quiet: cfg.quiet}
	if cfg.calls > 1 {
		var caller []byte
		if cfg.caller != "" {
			b, err := os.ReadFile(cfg.caller)
			if err != nil {
				return err
			}
			caller = b
		}
		rep, err := callsim.Load(ctx, callsim.LoadConfig{Call: call, Caller: caller, Calls: cfg.calls, Rate: cfg.rate, Until: until, Metrics: cfg.metrics, PIDs: cfg.pids, InLatencyNATS: cfg.inNATS})
		if err != nil {
			return err
		}
		if err := rep.WriteSummary(stdout); err != nil {
			return err
		}
		if rep.Failed() {
			return errors.New("some calls failed")
		}
		return nil
	}
	if cfg.caller != "" {
		f, err := os.Open(cfg.caller)
		if err != nil {
			return err
		}
		defer f.Close()
		call.CallerAudio = f
	}
	if cfg.in != "" {
		ulaw, err := callsim.ReadCallerAudio(cfg.in)
		if err != nil {
			return err
		}
		call.CallerAudio = callsim.Speak(ulaw, cfg.inAt)
		fmt.Fprintf(stdout, "caller says  %s (%v) at %v\n", cfg.in, time.Duration(len(ulaw))*time.Second/callsim.BytesPerSecond, cfg.inAt)
	}
	// Print the SIDs before the call, so that a producer can target it
	// while it runs (nats req callcast.play '{"streamSid":…}').
	call.StreamSid, call.CallSid = callsim.NewSid("MZ"), callsim.NewSid("CA")
	fmt.Fprintf(stdout, "calling      %s as stream %s (call %s)\n", cfg.url, call.StreamSid, call.CallSid)
	c, err := callsim.Run(ctx, call, until)
	if err != nil {
		return err
	}
	if err := c.WriteSummary(stdout); err != nil {
		return err
	}
	if cfg.out != "" {
		var b bytes.Buffer
		if err := callsim.WriteWAV(&b, c.Played()); err != nil {
			return err
		}
		if err := os.WriteFile(cfg.out, b.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote        %s\n", cfg.out)
	}
	if n := c.Stats().Errors; n > 0 {
		return fmt.Errorf("%d protocol errors", n)
	}
	return c.Err()
}

// parseFlags reads the flags, each defaulting to its environment variable.
func parseFlags(args []string) (config, error) {
	var cfg config
	f := cli.NewFlags("callsim")
	finish := defineFlags(f, &cfg)
	if err := f.Parse(args); err != nil {
		return cfg, err
	}
	if err := cli.NoArgs(f.Args()); err != nil {
		return cfg, err
	}
	return cfg, finish()
}

// defineFlags defines the flags of a call on f, each defaulting to its
// environment variable, and returns what checks and completes cfg once they
// are parsed.
func defineFlags(f *cli.Flags, cfg *config) (finish func() error) {
	var errs []error
	f.String(&cfg.url, "url", "CALLSIM_URL", "ws://127.0.0.1:8080/media-stream", "WebSocket URL of the server")
	f.String(&cfg.out, "o", "CALLSIM_OUTPUT", "", "write the audio played to the caller to this WAV file")
	f.String(&cfg.caller, "caller", "CALLSIM_CALLER", "", "raw μ-law 8 kHz mono file the caller says; default silence")
	f.String(&cfg.in, "in", "CALLSIM_IN", "", "a file the caller says (WAV, MP3, or raw μ-law .ulaw/.mulaw/.ul/.raw), in real time, silence before and after")
	f.Duration(&cfg.inAt, "in-at", "CALLSIM_IN_AT", 0, "when the caller starts saying -in, from the stream's start")
	f.String(&cfg.inNATS, "in-latency", "CALLSIM_IN_LATENCY", "", "load mode: a NATS URL on this machine; callers say time-stamped audio and callsim reports how long it took to reach a subscriber of callcast.stream.*.in (the edge must publish it: CALLER_AUDIO=on or -param callerAudio=on)")
	f.Duration(&cfg.duration, "duration", "CALLSIM_DURATION", 0, "hang up after this long; 0: no limit")
	f.Duration(&cfg.quiet, "quiet", "CALLSIM_QUIET", 2*time.Second, "hang up once everything has played and the server was quiet this long; 0: never")
	f.Int(&cfg.calls, "calls", "CALLSIM_CALLS", 1, "number of calls; more than 1 runs a load test against a server on this machine")
	float := func(p *float64, name, env string, def float64, usage string) {
		if v, ok := os.LookupEnv(env); ok && v != "" {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a number", env, v))
			}
			def = n
		}
		f.Float64Var(p, name, def, fmt.Sprintf("%s (env %s)", usage, env))
	}
	float(&cfg.speed, "speed", "CALLSIM_SPEED", 1, "playout speed; 1 is real time")
	float(&cfg.rate, "rate", "CALLSIM_RATE", 0, "load mode: calls started per second; 0: all at once")
	f.StringVar(&cfg.token, "auth-token", os.Getenv("TWILIO_AUTH_TOKEN"), "Twilio auth token: sign the upgrade with X-Twilio-Signature as Twilio does (env TWILIO_AUTH_TOKEN)")
	f.StringVar(&cfg.signURL, "sign-url", os.Getenv("CALLSIM_SIGN_URL"), "the stream URL Twilio would sign, e.g. wss://voice.example.com/media-stream; default -url (env CALLSIM_SIGN_URL)")
	f.Func("metrics", "load mode: a /metrics URL of a process under test, whose CPU and memory are reported; repeatable (env CALLSIM_METRICS, comma-separated)", func(s string) error {
		cfg.metrics = append(cfg.metrics, s)
		return nil
	})
	f.Func("pid", "load mode: the ID of another process under test (a nats-server, say), whose CPU and memory are read from /proc; repeatable", func(s string) error {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return fmt.Errorf("%q: not a process ID", s)
		}
		cfg.pids = append(cfg.pids, n)
		return nil
	})
	f.StringVar(&cfg.pprof, "pprof-addr", os.Getenv("PPROF_ADDR"), "serve Go profiling endpoints on this address (env PPROF_ADDR)")
	cfg.log.Define(f)
	cfg.params = map[string]string{}
	f.Func("param", "stream parameter name=value, as TwiML <Parameter>; in load mode {i} in a value becomes the call's index; repeatable (env CALLSIM_PARAMS, comma-separated)", func(s string) error {
		return addPair(cfg.params, s, "=")
	})
	cfg.header = http.Header{}
	f.Func("header", "extra upgrade request header 'Name: value', e.g. X-Twilio-Signature; repeatable (env CALLSIM_HEADERS, comma-separated)", func(s string) error {
		m := map[string]string{}
		if err := addPair(m, s, ":"); err != nil {
			return err
		}
		for k, v := range m {
			cfg.header.Add(k, strings.TrimSpace(v))
		}
		return nil
	})
	for _, p := range splitList(os.Getenv("CALLSIM_PARAMS")) {
		errs = append(errs, f.Set("param", p))
	}
	for _, m := range splitList(os.Getenv("CALLSIM_METRICS")) {
		errs = append(errs, f.Set("metrics", m))
	}
	for _, h := range splitList(os.Getenv("CALLSIM_HEADERS")) {
		errs = append(errs, f.Set("header", h))
	}
	return func() error {
		if err := errors.Join(errs...); err != nil {
			return err
		}
		if cfg.calls < 1 {
			return fmt.Errorf("-calls %d: want at least 1", cfg.calls)
		}
		if cfg.in != "" && cfg.caller != "" {
			return errors.New("-in and -caller both say what the caller says: give one")
		}
		if cfg.in != "" && cfg.calls > 1 {
			return errors.New("-in is for one call; load mode takes -caller")
		}
		if cfg.token != "" {
			signed := cfg.signURL
			if signed == "" {
				signed = cfg.url
			}
			cfg.header.Set(twilio.HeaderSignature, twilio.Sign(cfg.token, signed, nil))
		}
		return nil
	}
}

func addPair(m map[string]string, s, sep string) error {
	k, v, ok := strings.Cut(s, sep)
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("%q: want name%svalue", s, sep)
	}
	m[strings.TrimSpace(k)] = v
	return nil
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
