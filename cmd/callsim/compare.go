package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/callcast/callcast/internal/callsim"
	"github.com/callcast/callcast/internal/cli"
)

const compareHelp = `Runs the same load against the floor (callsim floor) and against callcast,
in turn, and prints both and callcast's ratios to the floor: first audio
p50 and p99 (start to the first media at the caller), CPU per call (of the
servers' processes, from their /metrics), errors and underruns.

Both servers are started here on free loopback ports, each for its own
runs: the floor from this executable, callcast all-in-one from the edge
binary (-edge), playing -audio. With -url, callcast is the server already
listening there instead (its processes' CPU from -metrics and -pid,
repeatable): callcast split into processes, say.
A warm-up call at 10x speed precedes each run (callcast transcodes the
prompt once). Run rounds > 1 to see the spread the machine adds: with two
or more, the CPU per call is also compared round by round (each round of
callcast against the floor's round just before it), with the median of
those ratios and, from six rounds, an interval that holds it with at least
95 % confidence.`

// compareCommand is `callsim compare`.
func compareCommand(stdout, stderr io.Writer) cli.Command {
	return cli.Command{
		Name: "compare", Args: "[-edge PATH | -url URL -metrics URL...] [flags]", Help: compareHelp,
		Summary: "the same load against the floor and callcast, and their ratios",
		Setup: func(f *cli.Flags) cli.RunFunc {
			var (
				edgeBin, clip, url, logDir string
				metrics, edgeFlags         []string
				pids                       []int
				calls, rounds, warmup      int
				rate                       float64
				lead, duration, quiet      time.Duration
			)
			f.String(&edgeBin, "edge", "CALLSIM_EDGE", "", "the edge binary to start all-in-one; default: edge beside this executable, else on PATH")
			f.String(&clip, "audio", "CALLSIM_AUDIO", "audio/sample.mp3", "the prompt every call plays (MP3 or WAV)")
			f.String(&url, "url", "CALLSIM_URL", "", "compare with the callcast already serving this media stream URL instead of starting one")
			f.Func("metrics", "with -url: a /metrics URL of a callcast process, whose CPU is callcast's; repeatable", func(s string) error {
				metrics = append(metrics, s)
				return nil
			})
			f.Func("pid", "with -url: the ID of another callcast process (a nats-server, say), whose CPU is read from /proc; repeatable", func(s string) error {
				n, err := strconv.Atoi(s)
				if err != nil || n <= 0 {
					return fmt.Errorf("%q: not a process ID", s)
				}
				pids = append(pids, n)
				return nil
			})
			f.Func("edge-flag", "a flag for the edge started here, e.g. -edge-flag=-vad=off; repeatable", func(s string) error {
				edgeFlags = append(edgeFlags, s)
				return nil
			})
			f.IntMin(&calls, "calls", "CALLSIM_CALLS", 500, 1, "calls per run")
			f.FlagSet.Float64Var(&rate, "rate", 250, "calls started per second; 0: all at once")
			f.Duration(&duration, "duration", "CALLSIM_DURATION", 0, "hang up each call after this long; 0: the prompt's length, the lead and a second")
			f.Duration(&quiet, "quiet", "CALLSIM_QUIET", 0, "hang up sooner once everything has played and the server was quiet this long; 0: never")
			f.DurationPositive(&lead, "lead", "PLAYBACK_LEAD", 2*time.Second, "the lead of both servers")
			f.IntMin(&rounds, "rounds", "CALLSIM_ROUNDS", 1, 1, "runs of each server, in turn")
			f.IntMin(&warmup, "warmup", "CALLSIM_WARMUP", 1, 0, "warm-up calls before each run")
			f.String(&logDir, "log-dir", "CALLSIM_LOG_DIR", os.TempDir(), "where the servers' logs go (callsim-floor.log, callsim-edge.log)")
			return func(ctx context.Context, args []string) error {
				if err := cli.NoArgs(args); err != nil {
					return err
				}
				if url == "" && (len(metrics) > 0 || len(pids) > 0) {
					return cli.Usagef("-metrics or -pid without -url: the callcast started here is measured by its own")
				}
				if _, err := os.Stat(clip); err != nil {
					return cli.Usage(err)
				}
				if duration == 0 {
					ulaw, err := callsim.ReadClip(clip)
					if err != nil {
						return err
					}
					duration = time.Duration(len(ulaw))*time.Second/8000 + lead + time.Second
				}
				self, err := os.Executable()
				if err != nil {
					return err
				}
				floor, err := floorTarget(self, clip, lead, logDir)
				if err != nil {
					return err
				}
				cc := callsim.Target{Name: "callcast", URL: url, Metrics: metrics, PIDs: pids}
				if url == "" {
					var store string
					if cc, store, err = edgeTarget(edgeBin, self, clip, lead, logDir, edgeFlags); err != nil {
						return err
					}
					defer os.RemoveAll(store)
				}
				results, err := callsim.Compare(ctx, callsim.CompareConfig{
					Targets: []callsim.Target{floor, cc},
					Load: callsim.LoadConfig{
						Call:  callsim.Config{Parameters: map[string]string{"audio": filepath.Base(clip)}},
						Calls: calls, Rate: rate, Until: callsim.Until{Duration: duration, Quiet: quiet},
						// CPU needs the first and last samples only; scraping
						// more often would cost the servers CPU of its own.
						MetricsEvery: time.Minute,
					},
					Rounds: rounds, Warmup: warmup,
				})
				if werr := callsim.WriteComparison(stdout, results); werr != nil {
					return werr
				}
				fmt.Fprintf(stdout, "\nload: %d calls at %v/s, prompt %s, lead %v, calls of %v (quiet %v), edge flags %q; logs in %s\n", calls, rate, clip, lead, duration.Round(time.Millisecond), quiet, edgeFlags, logDir)
				if err != nil {
					return err
				}
				for _, r := range results {
					if r.Errors() > 0 {
						return errors.New("some calls failed")
					}
				}
				return nil
			}
		},
	}
}

// floorTarget starts this executable's floor command on a free port.
func floorTarget(self, clip string, lead time.Duration, logDir string) (callsim.Target, error) {
	addr, err := callsim.FreeAddr()
	if err != nil {
		return callsim.Target{}, err
	}
	log, err := os.Create(filepath.Join(logDir, "callsim-floor.log"))
	if err != nil {
		return callsim.Target{}, err
	}
	return callsim.Target{
		Name:    "floor",
		Command: []string{self, "floor", "-addr", addr, "-audio", clip, "-lead", lead.String(), "-log-level", "warn"},
		Log:     log,
		URL:     "ws://" + addr + "/media-stream",
		Ready:   "http://" + addr + "/metrics",
		Metrics: []string{"http://" + addr + "/metrics"},
	}, nil
}

// edgeTarget starts callcast all-in-one on free ports, playing clip, with
// its JetStream store in a new temporary directory, store.
func edgeTarget(edgeBin, self, clip string, lead time.Duration, logDir string, flags []string) (_ callsim.Target, store string, err error) {
	if edgeBin == "" {
		edgeBin = filepath.Join(filepath.Dir(self), "edge")
		if _, err := os.Stat(edgeBin); err != nil {
			if edgeBin, err = exec.LookPath("edge"); err != nil {
				return callsim.Target{}, "", cli.Usagef("no edge binary beside %s or on PATH: build one (go build -o DIR/ ./cmd/...) or give -edge", self)
			}
		}
	}
	addr, err := callsim.FreeAddr()
	if err != nil {
		return callsim.Target{}, store, err
	}
	natsAddr, err := callsim.FreeAddr()
	if err != nil {
		return callsim.Target{}, store, err
	}
	store, err = os.MkdirTemp("", "callsim-compare-nats-")
	if err != nil {
		return callsim.Target{}, store, err
	}
	audioDir, err := filepath.Abs(filepath.Dir(clip))
	if err != nil {
		return callsim.Target{}, store, err
	}
	log, err := os.Create(filepath.Join(logDir, "callsim-edge.log"))
	if err != nil {
		return callsim.Target{}, store, err
	}
	return callsim.Target{
		Name: "callcast",
		Command: append([]string{edgeBin, "-addr", addr, "-nats-listen", natsAddr, "-nats-store-dir", store,
			"-audio-dir", audioDir, "-default-audio", filepath.Base(clip), "-lead", lead.String(), "-log-level", "warn"}, flags...),
		Env:     []string{"NATS_URL="},
		Log:     log,
		URL:     "ws://" + addr + "/media-stream",
		Ready:   "http://" + addr + "/readyz",
		Metrics: []string{"http://" + addr + "/metrics"},
	}, store, nil
}
