package callsim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// hangupTimeout bounds the hang-up at the end of Run, which runs even when
// the caller's ctx is already cancelled (Ctrl-C).
const hangupTimeout = 5 * time.Second

// Until says when Run hangs up. The zero value waits for ctx to end or the
// server to close the socket.
type Until struct {
	// Duration hangs up this long after the call started. Zero: no limit.
	Duration time.Duration
	// Quiet hangs up once the server seems done: audio has played, nothing
	// is left to play, every mark is echoed and nothing arrived for Quiet
	// (see WaitIdle). Zero: never.
	Quiet time.Duration
}

// Run places one call, keeps it up until the first of until, ctx ending or
// the server closing, hangs up cleanly and returns the ended call. Its error
// is Dial's; how the call went is in the call's Stats, Errs and Err.
func Run(ctx context.Context, cfg Config, until Until) (*Call, error) {
	c, err := Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	wctx := ctx
	if until.Duration > 0 {
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, until.Duration)
		defer cancel()
	}
	if until.Quiet > 0 {
		_ = c.WaitIdle(wctx, until.Quiet) // every outcome ends the call
	} else {
		select {
		case <-wctx.Done():
		case <-c.Done():
		}
	}
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), hangupTimeout)
	defer cancel()
	_ = c.Hangup(hctx) // its error is c.Err()
	return c, nil
}

// WriteSummary writes a human-readable account of the call to w.
func (c *Call) WriteSummary(w io.Writer) error {
	st := c.Stats()
	var b bytes.Buffer
	fmt.Fprintf(&b, "stream       %s (call %s)\n", c.StreamSid(), c.CallSid())
	if st.Media > 0 {
		fmt.Fprintf(&b, "first audio  %v after start\n", st.FirstMedia.Round(time.Millisecond))
	} else {
		fmt.Fprintf(&b, "first audio  none received\n")
	}
	fmt.Fprintf(&b, "received     %d media messages, %d bytes (%v of audio)\n", st.Media, st.Bytes, bytesDuration(st.Bytes))
	fmt.Fprintf(&b, "played       %d bytes (%v), cleared %d bytes, max buffered %v\n",
		st.Played, bytesDuration(st.Played), st.Cleared, st.MaxBuffered)
	fmt.Fprintf(&b, "marks        %d received, %d echoed; %d clears\n", st.Marks, st.Echoed, st.Clears)
	for _, at := range c.ClearTimes() {
		fmt.Fprintf(&b, "clear        at %v\n", at.Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "underruns    %d (%v of silence)\n", st.Underruns, st.UnderrunTime.Round(time.Millisecond))
	fmt.Fprintf(&b, "caller audio %d media messages sent, %d dropped\n", st.CallerMedia, st.CallerDropped)
	switch err := c.Err(); {
	case err != nil:
		fmt.Fprintf(&b, "ended        %v\n", err)
	case st.ServerClosed:
		fmt.Fprintf(&b, "ended        server closed the stream\n")
	default:
		fmt.Fprintf(&b, "ended        hung up\n")
	}
	fmt.Fprintf(&b, "protocol     %d errors\n", st.Errors)
	for _, err := range c.Errs() {
		fmt.Fprintf(&b, "  %v\n", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// MaxLoadCalls bounds LoadConfig.Calls.
const MaxLoadCalls = 10000

// ErrNotLoopback is returned by Load for a URL whose host is not a loopback
// address: load is only ever generated against this machine.
var ErrNotLoopback = errors.New("callsim: load only targets loopback addresses")

// LoadConfig describes a load run: Calls calls, started at Rate per second,
// each kept up as Until says.
type LoadConfig struct {
	// Call is the template of every call. Its SIDs must be empty (each
	// call gets random ones) and its CallerAudio nil (use Caller).
	Call Config
	// Caller is the μ-law audio every caller says. Nil: silence.
	Caller []byte
	// Calls is the number of calls, 1 to MaxLoadCalls.
	Calls int
	// Rate is how many calls start per second. Zero: all at once.
	Rate float64
	// Until says when each call hangs up.
	Until Until
	// Metrics lists Prometheus /metrics URLs of the processes under test
	// (on this machine); their CPU and memory are reported.
	Metrics []string
	// PIDs lists more processes under test by ID (a nats-server, say),
	// whose CPU and resident memory are read from /proc (Linux).
	PIDs []int
	// MetricsEvery is how often the processes are sampled for their peak
	// memory; their CPU needs only the first and last samples. Zero: 250 ms.
	// Scraping /metrics costs the process some CPU of its own.
	MetricsEvery time.Duration
	// InLatencyNATS, a NATS URL on this machine, measures caller audio
	// latency: every caller says stamped frames (Caller is ignored) and a
	// subscriber there on callcast.stream.*.in reports how long each
	// message took from the caller to it. The edge must publish the calls'
	// audio: CALLER_AUDIO=on, or a callerAudio=on parameter.
	InLatencyNATS string
}

// LoadReport sums up a load run.
type LoadReport struct {
	Calls      int // calls attempted
	DialErrors int // calls that never connected
	Broken     int // calls whose socket ended with an error (Call.Err)
	NoAudio    int // connected calls that received no audio
	// FirstMedia holds, in ascending order, the start → first media time
	// of every call that received audio.
	FirstMedia     []time.Duration
	Underruns      int
	UnderrunTime   time.Duration
	ProtocolErrors int
	// CallerMedia and CallerDropped add up the calls' caller media
	// messages sent, and dropped because a socket was backed up: the load
	// the callers actually put on the server.
	CallerMedia, CallerDropped int
	// Errors holds up to 10 example errors: dial failures, broken calls
	// and protocol violations.
	Errors  []error
	Elapsed time.Duration
	// Processes is what the processes under test used (see Metrics).
	Processes []Process
	// InLatency holds, sorted, the caller → listener time of every caller
	// audio message (LoadConfig.InLatencyNATS); InUnstamped counts
	// messages that carried no stamp.
	InLatency   []time.Duration
	InUnstamped int
}

// Percentile returns the p-th percentile (0 < p ≤ 100, nearest rank) of
// FirstMedia, or 0 if no call received audio.
func (r LoadReport) Percentile(p float64) time.Duration {
	n := len(r.FirstMedia)
	if n == 0 {
		return 0
	}
	i := int(p/100*float64(n)+0.999999) - 1
	return r.FirstMedia[min(max(i, 0), n-1)]
}

// Failed reports whether any call failed to connect, broke, or saw a
// protocol violation.
func (r LoadReport) Failed() bool {
	return r.DialErrors > 0 || r.Broken > 0 || r.ProtocolErrors > 0
}

// WriteSummary writes a human-readable account of the run to w.
func (r LoadReport) WriteSummary(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "calls        %d in %v: %d failed to connect, %d broken, %d without audio\n",
		r.Calls, r.Elapsed.Round(time.Millisecond), r.DialErrors, r.Broken, r.NoAudio)
	if len(r.FirstMedia) > 0 {
		ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
		fmt.Fprintf(&b, "first audio  p50 %v  p95 %v  p99 %v  max %v\n",
			ms(r.Percentile(50)), ms(r.Percentile(95)), ms(r.Percentile(99)), ms(r.FirstMedia[len(r.FirstMedia)-1]))
	}
	fmt.Fprintf(&b, "underruns    %d (%v of silence)\n", r.Underruns, r.UnderrunTime.Round(time.Millisecond))
	fmt.Fprintf(&b, "caller media %d messages sent, %d dropped late\n", r.CallerMedia, r.CallerDropped)
	if l := r.InLatency; len(l) > 0 || r.InUnstamped > 0 {
		us := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
		fmt.Fprintf(&b, "caller audio %d messages on .in (%d unstamped): caller → listener p50 %v  p95 %v  p99 %v  max %v\n",
			len(l), r.InUnstamped, us(percentile(l, 50)), us(percentile(l, 95)), us(percentile(l, 99)), us(percentile(l, 100)))
	}
	fmt.Fprintf(&b, "protocol     %d errors\n", r.ProtocolErrors)
	for _, p := range r.Processes {
		if p.Err != nil {
			fmt.Fprintf(&b, "process      %s: %v\n", p.URL, p.Err)
			continue
		}
		fmt.Fprintf(&b, "process      %s: cpu %v (%.0f%% of one core), peak rss %.1f MiB, peak heap %.1f MiB",
			p.URL, p.CPU.Round(time.Millisecond), 100*p.CPU.Seconds()/r.Elapsed.Seconds(), p.PeakRSS/(1<<20), p.PeakHeap/(1<<20))
		if p.PeakStreams > 0 {
			fmt.Fprintf(&b, ", %.0f streams at peak: %.1f KiB heap and %.1f KiB rss per stream",
				p.PeakStreams, p.HeapPerStream()/1024, p.RSSPerStream()/1024)
		}
		b.WriteString("\n")
	}
	for _, err := range r.Errors {
		fmt.Fprintf(&b, "  %v\n", err)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// Load runs cfg.Calls calls against a server on this machine and reports
// how they went. Cancelling ctx stops starting calls and hangs up the ones
// in progress. The error is for a bad configuration only.
func Load(ctx context.Context, cfg LoadConfig) (LoadReport, error) {
	if cfg.Calls < 1 || cfg.Calls > MaxLoadCalls {
		return LoadReport{}, fmt.Errorf("callsim: %d calls, want 1 to %d", cfg.Calls, MaxLoadCalls)
	}
	if cfg.Rate < 0 {
		return LoadReport{}, fmt.Errorf("callsim: negative rate %v", cfg.Rate)
	}
	if cfg.Call.StreamSid != "" || cfg.Call.CallSid != "" || cfg.Call.AccountSid != "" || cfg.Call.CallerAudio != nil {
		return LoadReport{}, errors.New("callsim: load calls get their own SIDs and caller audio")
	}
	if err := checkLoopback(cfg.Call.URL); err != nil {
		return LoadReport{}, err
	}
	for _, u := range cfg.Metrics {
		if err := checkLoopback(u); err != nil {
			return LoadReport{}, err
		}
	}
	sources := slices.Clone(cfg.Metrics)
	for _, pid := range cfg.PIDs {
		sources = append(sources, pidSource+strconv.Itoa(pid))
	}
	var in *inLatency
	if cfg.InLatencyNATS != "" {
		if err := checkLoopback(cfg.InLatencyNATS); err != nil {
			return LoadReport{}, err
		}
		var err error
		if in, err = listenIn(cfg.InLatencyNATS); err != nil {
			return LoadReport{}, err
		}
	}
	every := cfg.MetricsEvery
	if every <= 0 {
		every = 250 * time.Millisecond
	}
	procs := watchProcesses(ctx, sources, every)

	var (
		mu  sync.Mutex
		rep = LoadReport{Calls: 0}
		wg  sync.WaitGroup
	)
	note := func(err error) {
		if len(rep.Errors) < 10 {
			rep.Errors = append(rep.Errors, err)
		}
	}
	begin := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
launch:
	for i := range cfg.Calls {
		if cfg.Rate > 0 {
			next := begin.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
			timer.Reset(time.Until(next))
			select {
			case <-timer.C:
			case <-ctx.Done():
				break launch
			}
		} else if ctx.Err() != nil {
			break
		}
		rep.Calls++
		call := cfg.Call
		call.CountOnly = true
		call.Parameters = numbered(cfg.Call.Parameters, i)
		if cfg.Caller != nil {
			call.CallerAudio = bytes.NewReader(cfg.Caller)
		}
		if in != nil {
			call.CallerAudio = stampReader{}
		}
		wg.Go(func() {
			c, err := Run(ctx, call, cfg.Until)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				rep.DialErrors++
				note(err)
				return
			}
			st := c.Stats()
			if err := c.Err(); err != nil {
				rep.Broken++
				note(err)
			}
			if st.Media == 0 {
				rep.NoAudio++
			} else {
				rep.FirstMedia = append(rep.FirstMedia, st.FirstMedia)
			}
			rep.CallerMedia += st.CallerMedia
			rep.CallerDropped += st.CallerDropped
			rep.Underruns += st.Underruns
			rep.UnderrunTime += st.UnderrunTime
			rep.ProtocolErrors += st.Errors
			for _, err := range c.Errs() {
				note(fmt.Errorf("%s: %w", c.StreamSid(), err))
			}
		})
	}
	wg.Wait()
	rep.Elapsed = time.Since(begin)
	rep.Processes = procs.stop(context.WithoutCancel(ctx))
	if in != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		rep.InLatency, rep.InUnstamped = in.stop(sctx)
		cancel()
	}
	slices.Sort(rep.FirstMedia)
	return rep, nil
}

// numbered returns params with "{i}" in each value replaced by the call's
// index, so that calls of one load can ask for different things
// (audio=clip-{i}.mp3).
func numbered(params map[string]string, i int) map[string]string {
	out := make(map[string]string, len(params))
	for k, v := range params {
		out[k] = strings.ReplaceAll(v, "{i}", strconv.Itoa(i))
	}
	return out
}

// checkLoopback returns ErrNotLoopback unless rawURL names localhost or a
// loopback IP address.
func checkLoopback(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("callsim: URL: %w", err)
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %q", ErrNotLoopback, host)
}
