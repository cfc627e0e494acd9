// Package cli holds what callcast's commands share: flags that fall back to
// environment variables, the logger, and the container healthcheck.
package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Flags defines flags whose defaults come from environment variables, so
// that every setting can be given either way (a flag wins).
type Flags struct {
	*flag.FlagSet
	errs []error
}

// NewFlags returns an empty flag set named name.
func NewFlags(name string) *Flags {
	return &Flags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
}

func (f *Flags) usage(usage, env string) string { return fmt.Sprintf("%s (env %s)", usage, env) }

// String defines a string flag defaulting to $env, else def.
func (f *Flags) String(p *string, name, env, def, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		def = v
	}
	f.StringVar(p, name, def, f.usage(usage, env))
}

// Bool defines a bool flag defaulting to $env, else def.
func (f *Flags) Bool(p *bool, name, env string, def bool, usage string) {
	if v, ok := os.LookupEnv(env); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: not a boolean", env, v))
		}
		def = b
	}
	f.BoolVar(p, name, def, f.usage(usage, env))
}

// Int defines an int flag defaulting to $env, else def.
func (f *Flags) Int(p *int, name, env string, def int, usage string) {
	if v, ok := os.LookupEnv(env); ok && v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: not an integer", env, v))
		}
		def = n
	}
	f.IntVar(p, name, def, f.usage(usage, env))
}

// Duration defines a duration flag defaulting to $env, else def.
func (f *Flags) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	if v, ok := os.LookupEnv(env); ok && v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: not a duration (like 30s)", env, v))
		}
		def = d
	}
	f.DurationVar(p, name, def, f.usage(usage, env))
}

// Parse parses args, reporting bad environment values too.
func (f *Flags) Parse(args []string) error {
	if len(f.errs) > 0 {
		return f.errs[0]
	}
	return f.FlagSet.Parse(args)
}

// Log holds the logging settings every command takes.
type Log struct {
	Level  string
	Format string
}

// Define adds -log-level and -log-format.
func (l *Log) Define(f *Flags) {
	f.String(&l.Level, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn, error")
	f.String(&l.Format, "log-format", "LOG_FORMAT", "text", "log format: text or json")
}

// Logger builds the logger the settings ask for, writing to w.
func (l Log) Logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", l.Level, err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(l.Format) {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", l.Format)
}

// Healthcheck GETs http://127.0.0.1:<port of addr>/healthz and returns nil
// on 200, for container healthchecks in images without a shell.
func Healthcheck(ctx context.Context, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("healthcheck: address %q: %w", addr, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort("127.0.0.1", port)+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s", resp.Status)
	}
	return nil
}

// Int64 defines an int64 flag defaulting to $env, else def.
func (f *Flags) Int64(p *int64, name, env string, def int64, usage string) {
	if v, ok := os.LookupEnv(env); ok && v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("%s=%q: not an integer", env, v))
		}
		def = n
	}
	f.Int64Var(p, name, def, f.usage(usage, env))
}

// NATSCredentials defines the credential flags every NATS client takes.
func (f *Flags) NATSCredentials(creds, user, password, token *string) {
	f.String(creds, "nats-creds", "NATS_CREDS", "", "NATS credentials file")
	f.String(user, "nats-user", "NATS_USER", "", "NATS user")
	f.String(password, "nats-password", "NATS_PASSWORD", "", "NATS password")
	f.String(token, "nats-token", "NATS_TOKEN", "", "NATS token")
}

// Service holds what every long-running command takes besides its own
// settings: logging, profiling, and a `healthcheck` subcommand.
type Service struct {
	Log       Log
	PprofAddr string
}

// Define adds -log-level, -log-format and -pprof-addr.
func (s *Service) Define(f *Flags) {
	f.String(&s.PprofAddr, "pprof-addr", "PPROF_ADDR", "", "serve Go profiling endpoints (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; empty: off")
	s.Log.Define(f)
}

// Start parses args. For `healthcheck [flags]` it checks the local process
// at *healthAddr and returns a nil logger; otherwise it returns the logger
// and starts the profiling endpoints if asked.
func (s *Service) Start(f *Flags, args []string, healthAddr *string) (*slog.Logger, error) {
	if len(args) > 0 && args[0] == "healthcheck" {
		if err := f.Parse(args[1:]); err != nil {
			return nil, err
		}
		return nil, Healthcheck(context.Background(), *healthAddr)
	}
	if err := f.Parse(args); err != nil {
		return nil, err
	}
	log, err := s.Log.Logger(os.Stderr)
	if err != nil {
		return nil, err
	}
	if err := ServePprof(s.PprofAddr, log); err != nil {
		return nil, err
	}
	return log, nil
}
