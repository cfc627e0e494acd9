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
	errs   []error
	checks []func() error
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

// IntMin defines an int flag defaulting to $env, else def, that must be at
// least min: a value below it is a usage error at Parse, not a silent
// default.
func (f *Flags) IntMin(p *int, name, env string, def, min int, usage string) {
	f.Int(p, name, env, def, usage)
	f.checks = append(f.checks, func() error {
		if *p < min {
			return fmt.Errorf("invalid value %d for -%s (env %s): want at least %d", *p, name, env, min)
		}
		return nil
	})
}

// DurationPositive defines a duration flag defaulting to $env, else def,
// that must be more than zero.
func (f *Flags) DurationPositive(p *time.Duration, name, env string, def time.Duration, usage string) {
	f.Duration(p, name, env, def, usage)
	f.checks = append(f.checks, func() error {
		if *p <= 0 {
			return fmt.Errorf("invalid value %v for -%s (env %s): want more than 0", *p, name, env)
		}
		return nil
	})
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

// Parse parses args, reporting bad environment values and values out of
// their flag's range too.
func (f *Flags) Parse(args []string) error {
	if len(f.errs) > 0 {
		return f.errs[0]
	}
	if err := f.FlagSet.Parse(args); err != nil {
		return err
	}
	for _, check := range f.checks {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
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
// settings: logging and profiling.
type Service struct {
	Log       Log
	PprofAddr string
}

// Define adds -log-level, -log-format and -pprof-addr.
func (s *Service) Define(f *Flags) {
	f.String(&s.PprofAddr, "pprof-addr", "PPROF_ADDR", "", "serve Go profiling endpoints (/debug/pprof/) on this address, e.g. 127.0.0.1:6060; empty: off")
	s.Log.Define(f)
}

// Start returns the logger, writing to w, and starts the profiling
// endpoints if asked. A bad level or format is a usage error.
func (s *Service) Start(w io.Writer) (*slog.Logger, error) {
	log, err := s.Log.Logger(w)
	if err != nil {
		return nil, Usage(err)
	}
	if err := ServePprof(s.PprofAddr, log); err != nil {
		return nil, fmt.Errorf("pprof: %w", err)
	}
	return log, nil
}

// HealthcheckCommand is the `healthcheck` command of a service serving
// /healthz on the address given by flag name (env env, default def).
func HealthcheckCommand(name, env, def string) Command {
	return Command{
		Name:    "healthcheck",
		Args:    "[-" + name + " ADDR]",
		Summary: "exit 0 if the process on this machine answers /healthz (for container healthchecks)",
		Setup: func(f *Flags) RunFunc {
			var addr string
			f.String(&addr, name, env, def, "the process's HTTP address; its port is checked on 127.0.0.1")
			return func(ctx context.Context, args []string) error {
				if err := NoArgs(args); err != nil {
					return err
				}
				return Healthcheck(ctx, addr)
			}
		},
	}
}
