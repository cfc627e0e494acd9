package callsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/cli"
)

// RunFloor serves a Floor playing the audio file clip (MP3 or WAV,
// transcoded once, before serving) on addr until ctx ends, with its process
// metrics on /metrics. ready, if set, is called with the address once
// serving. A nil log discards.
func RunFloor(ctx context.Context, addr, clip string, lead time.Duration, log *slog.Logger, ready func(net.Addr)) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ulaw, err := ReadClip(clip)
	if err != nil {
		return err
	}
	f, err := NewFloor(FloorConfig{Clip: ulaw, Lead: lead, Gatherer: cli.NewRegistry(), Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("callsim: floor: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- f.Serve(ln) }()
	log.Info("floor listening", "addr", ln.Addr().String(), "clip", clip, "clip_seconds", float64(len(ulaw))/8000, "lead", lead)
	if ready != nil {
		ready(ln.Addr())
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(f.Shutdown(sctx), <-served)
}

// maxClip bounds the audio a floor holds: 10 minutes of μ-law.
const maxClip = 10 * 60 * 8000

// ReadClip transcodes the audio file at path to μ-law 8 kHz mono, as the
// workers play it.
func ReadClip(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("callsim: clip: %w", err)
	}
	defer f.Close()
	t, err := audio.NewTranscoder(f, audio.Options{})
	if err != nil {
		return nil, fmt.Errorf("callsim: clip %s: %w", path, err)
	}
	ulaw, err := io.ReadAll(io.LimitReader(t, maxClip+1))
	if err != nil && !errors.Is(err, audio.ErrTruncated) {
		return nil, fmt.Errorf("callsim: clip %s: %w", path, err)
	}
	if len(ulaw) > maxClip {
		return nil, fmt.Errorf("callsim: clip %s: longer than 10 minutes", path)
	}
	return ulaw, nil
}

// Target is a server a comparison loads: a process Compare starts and
// stops (Command), or one already running (Command nil).
type Target struct {
	Name string
	// Command and Env start the server; Env adds to this process's
	// environment. Its output goes to Log, if set.
	Command []string
	Env     []string
	Log     io.Writer
	// URL is the server's media stream WebSocket URL.
	URL string
	// Ready answers 200 once the server is ready. Empty: none is waited for.
	Ready string
	// Metrics are the /metrics URLs of the server's processes, whose CPU
	// is its cost; PIDs more of its processes, read from /proc (a
	// nats-server, say).
	Metrics []string
	PIDs    []int
}

// CompareConfig describes a comparison: the same load against each target
// in turn.
type CompareConfig struct {
	Targets []Target
	// Load is the load every target gets; its Call.URL and Metrics are the
	// target's.
	Load LoadConfig
	// Rounds runs the targets in turn this many times (so that a change in
	// the machine's load shows as a spread, not as a difference). Default 1.
	Rounds int
	// Warmup calls are placed on each target before it is measured (3 s
	// at most, at 10× speed): the first call of a prompt transcodes it, say.
	Warmup int
}

// Result is one load run of one target.
type Result struct {
	Target string
	Round  int
	Report LoadReport
}

// CPU is the CPU time the target's processes used during the run.
func (r Result) CPU() time.Duration {
	var cpu time.Duration
	for _, p := range r.Report.Processes {
		cpu += p.CPU
	}
	return cpu
}

// CPUPerCall is CPU divided by the calls placed.
func (r Result) CPUPerCall() time.Duration {
	if r.Report.Calls == 0 {
		return 0
	}
	return r.CPU() / time.Duration(r.Report.Calls)
}

// Errors counts calls that failed to connect or broke, and protocol
// violations.
func (r Result) Errors() int {
	return r.Report.DialErrors + r.Report.Broken + r.Report.ProtocolErrors
}

// Compare runs cfg.Load against each target in turn, cfg.Rounds times.
// A target with a Command is started before its run and stopped after it.
func Compare(ctx context.Context, cfg CompareConfig) ([]Result, error) {
	if cfg.Rounds <= 0 {
		cfg.Rounds = 1
	}
	var results []Result
	for round := range cfg.Rounds {
		for _, t := range cfg.Targets {
			rep, err := runTarget(ctx, t, cfg)
			if err != nil {
				return results, fmt.Errorf("%s: %w", t.Name, err)
			}
			results = append(results, Result{Target: t.Name, Round: round + 1, Report: rep})
		}
	}
	return results, nil
}

func runTarget(ctx context.Context, t Target, cfg CompareConfig) (LoadReport, error) {
	if len(t.Command) > 0 {
		stop, err := start(t)
		if err != nil {
			return LoadReport{}, err
		}
		defer stop()
	}
	if t.Ready != "" {
		if err := waitReady(ctx, t.Ready, 60*time.Second); err != nil {
			return LoadReport{}, err
		}
	}
	call := cfg.Load.Call
	call.URL = t.URL
	if cfg.Warmup > 0 {
		warm := call
		warm.Speed = 10
		_, err := Load(ctx, LoadConfig{Call: warm, Calls: cfg.Warmup, Until: Until{Quiet: 300 * time.Millisecond, Duration: 3 * time.Second}})
		if err != nil {
			return LoadReport{}, err
		}
	}
	lc := cfg.Load
	lc.Call = call
	lc.Metrics, lc.PIDs = t.Metrics, t.PIDs
	return Load(ctx, lc)
}

// start starts t's process and returns what stops it (SIGTERM, then
// SIGKILL after 10 s).
func start(t Target) (stop func(), err error) {
	cmd := exec.Command(t.Command[0], t.Command[1:]...)
	cmd.Env = append(os.Environ(), t.Env...)
	cmd.Stdout, cmd.Stderr = t.Log, t.Log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	return func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}, nil
}

func waitReady(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready at %s: %w", url, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WriteComparison writes each run's figures, then each target's against the
// first target's (the reference), as ratios of their medians over rounds.
func WriteComparison(w io.Writer, results []Result) error {
	var b bytes.Buffer
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', tabwriter.AlignRight)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
	fmt.Fprintln(tw, "target\tround\tcalls\terrors\tno audio\tunderruns\tfirst audio p50\tp99\tmax\tcpu\tcpu/call\t")
	for _, r := range results {
		rep := r.Report
		var maxFirst time.Duration
		if n := len(rep.FirstMedia); n > 0 {
			maxFirst = rep.FirstMedia[n-1]
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", r.Target, r.Round, rep.Calls, r.Errors(), rep.NoAudio,
			rep.Underruns, ms(rep.Percentile(50)), ms(rep.Percentile(99)), ms(maxFirst), ms(r.CPU()), ms(r.CPUPerCall()))
	}
	tw.Flush()
	var names []string
	byName := map[string][]Result{}
	for _, r := range results {
		if _, ok := byName[r.Target]; !ok {
			names = append(names, r.Target)
		}
		byName[r.Target] = append(byName[r.Target], r)
	}
	if len(names) > 1 {
		ref := byName[names[0]]
		fmt.Fprintf(&b, "\nratios to %s (medians over rounds):\n", names[0])
		tw = tabwriter.NewWriter(&b, 0, 8, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target\tfirst audio p50\tp99\tcpu/call\t")
		for _, name := range names[1:] {
			rs := byName[name]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", name,
				ratio(median(rs, p50), median(ref, p50)),
				ratio(median(rs, p99), median(ref, p99)),
				ratio(median(rs, Result.CPUPerCall), median(ref, Result.CPUPerCall)))
		}
		tw.Flush()
		// Rounds run in turn, so a round's ratio compares two runs a few
		// seconds apart: it cancels what the machine does meanwhile better
		// than medians over the whole command do.
		for _, name := range names[1:] {
			byRound := roundRatios(byName[name], ref, Result.CPUPerCall)
			if len(byRound) < 2 {
				continue
			}
			fmt.Fprintf(&b, "%s cpu/call ÷ %s, round by round: median %.2f×", name, names[0], medianOf(byRound))
			if lo, hi, conf, ok := medianInterval(byRound); ok {
				fmt.Fprintf(&b, " (%.2f–%.2f×: %.1f %% interval of the median)", lo, hi, 100*conf)
			}
			fmt.Fprintf(&b, ", range %.2f–%.2f× over %d rounds\n", slices.Min(byRound), slices.Max(byRound), len(byRound))
		}
	}
	for _, r := range results {
		for _, p := range r.Report.Processes {
			if p.Err != nil {
				fmt.Fprintf(&b, "%s round %d: %s: %v\n", r.Target, r.Round, p.URL, p.Err)
			}
		}
		for _, err := range r.Report.Errors {
			fmt.Fprintf(&b, "%s round %d: %v\n", r.Target, r.Round, err)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

func p50(r Result) time.Duration { return r.Report.Percentile(50) }
func p99(r Result) time.Duration { return r.Report.Percentile(99) }

func median(rs []Result, f func(Result) time.Duration) time.Duration {
	v := make([]time.Duration, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	return medianOf(v)
}

// roundRatios returns f of each round of rs over f of the same round of
// ref, for the rounds both have with f > 0.
func roundRatios(rs, ref []Result, f func(Result) time.Duration) []float64 {
	byRound := map[int]time.Duration{}
	for _, r := range ref {
		byRound[r.Round] = f(r)
	}
	var v []float64
	for _, r := range rs {
		if d := byRound[r.Round]; d > 0 && f(r) > 0 {
			v = append(v, float64(f(r))/float64(d))
		}
	}
	return v
}

// medianOf returns the median of v, which it leaves as it was.
func medianOf[T ~int64 | ~float64](v []T) T {
	v = slices.Sorted(slices.Values(v))
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// medianInterval returns the narrowest interval between order statistics
// of v, v(k) and v(n+1-k), that holds the median of what v samples with a
// confidence of at least 95 %, and that confidence: 1 - 2·P(B ≤ k-1) for
// B binomial(n, 1/2). It assumes nothing of the distribution but that the
// samples are independent. Below six samples no such interval exists and
// it reports false.
func medianInterval(v []float64) (lo, hi, conf float64, ok bool) {
	n := len(v)
	v = slices.Sorted(slices.Values(v))
	// cdf is P(B ≤ j), accumulated from P(B = 0) = 2^-n.
	p, cdf := math.Pow(0.5, float64(n)), 0.0
	k := 0
	for j := 0; j < n/2; j++ {
		cdf += p
		if 1-2*cdf < 0.95 {
			break
		}
		k, conf = j+1, 1-2*cdf
		p = p * float64(n-j) / float64(j+1)
	}
	if k == 0 {
		return 0, 0, 0, false
	}
	return v[k-1], v[n-k], conf, true
}

func ratio(a, b time.Duration) string {
	if b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

// FreeAddr returns a loopback address (host:port) that was free a moment
// ago, for a server to be started on.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
