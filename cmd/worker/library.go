package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/cli"
	"github.com/callcast/callcast/internal/library"
)

const libraryArgs = "ls [-cache] | info NAME | get [-o FILE] NAME | rm NAME | upload [-name NAME] FILE"

const libraryHelp = `Manages the shared audio library: the JetStream Object Store bucket
callcast-audio, which every worker plays from by name (after AUDIO_DIR).

  ls                      every object: name, format, rate, channels, duration,
                          size, when it was uploaded, whether its μ-law is cached
  ls -cache               every entry of the shared transcode cache
                          (callcast-cache), least recently used first: its
                          source's SHA-256, pipeline version (old ones are
                          evicted first), size, last use, and the library
                          objects it is the μ-law of ("-": a local file's, or
                          audio no longer in the library)
  info NAME               one object, with its SHA-256
  get [-o FILE] NAME      download it to FILE (default: NAME's base name; - for
                          standard output)
  rm NAME                 delete it and its cached μ-law. Playbacks under way
                          finish; the next play of NAME answers unknown_audio
  upload [-name NAME] FILE
                          check, transcode and store FILE (MP3 or WAV; - for
                          standard input, with -name) as NAME (default: FILE's
                          base name), replacing an object of that name; its μ-law
                          goes into the shared cache. Refused, with nothing
                          written, past LIBRARY_MAX_BYTES

Names are checked as the workers check them. Output is a table, or JSON with
-json. Flags may come before or after the verb. It connects as a worker does:
under deploy/nats/auth.conf, log in as user worker.`

// libraryFlags are the library command's settings.
type libraryFlags struct {
	nats                 bus.ConnOptions
	json, cache          bool
	out, name            string
	timeout              time.Duration
	libraryMax, cacheMax int64
	replicas             int
}

// libraryCommand is `worker library`.
func libraryCommand(stdout io.Writer) cli.Command {
	return cli.Command{
		Name: "library", Args: libraryArgs, Help: libraryHelp,
		Summary: "list, inspect, download, delete or upload the shared audio library's prompts",
		Setup: func(f *cli.Flags) cli.RunFunc {
			var lf libraryFlags
			f.String(&lf.nats.URL, "nats", "NATS_URL", "nats://127.0.0.1:4222", "NATS URL(s), comma-separated")
			f.NATSCredentials(&lf.nats.Creds, &lf.nats.User, &lf.nats.Password, &lf.nats.Token)
			f.BoolVar(&lf.json, "json", false, "print JSON instead of a table")
			f.BoolVar(&lf.cache, "cache", false, "ls: the shared transcode cache's entries instead")
			f.StringVar(&lf.out, "o", "", "get: the file to write; - for standard output")
			f.StringVar(&lf.name, "name", "", "upload: the audio's name; default: FILE's base name")
			f.DurationVar(&lf.timeout, "timeout", time.Minute, "give up after this long")
			defineBucketFlags(f, &lf)
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 {
					return cli.Usagef("library: want a verb: %s", libraryArgs)
				}
				verb := args[0]
				// Flags may follow the verb, and its operands too.
				var operands []string
				for rest := args[1:]; ; {
					if err := f.Parse(rest); err != nil {
						if errors.Is(err, flag.ErrHelp) {
							return err
						}
						return cli.Usage(fmt.Errorf("library %s: %w", verb, err))
					}
					if f.NArg() == 0 {
						break
					}
					operands = append(operands, f.Arg(0))
					rest = f.Args()[1:]
				}
				return runLibrary(ctx, verb, f, operands, lf, stdout)
			}
		},
	}
}

// defineBucketFlags defines the settings used when the command has to
// create the buckets (existing buckets are used as they are).
func defineBucketFlags(f *cli.Flags, lf *libraryFlags) {
	f.Int64(&lf.libraryMax, "library-max-bytes", "LIBRARY_MAX_BYTES", library.DefaultLibraryMaxBytes, "bound of the audio library bucket when this command creates it, bytes; negative: none")
	f.Int64(&lf.cacheMax, "cache-max-bytes", "CACHE_MAX_BYTES", library.DefaultCacheMaxBytes, "bound of the transcode cache bucket when this command creates it, bytes; negative: none")
	f.IntMin(&lf.replicas, "nats-replicas", "NATS_REPLICAS", library.AutoReplicas, 0, "replicas of the buckets when this command creates them; 0: 3 on a cluster of 3 or more servers, else 1")
}

// verbFlags are the flags only some verbs take.
var verbFlags = map[string]string{"o": "get", "name": "upload", "cache": "ls"}

func runLibrary(ctx context.Context, verb string, f *cli.Flags, args []string, lf libraryFlags, stdout io.Writer) error {
	want := map[string]int{"ls": 0, "info": 1, "get": 1, "rm": 1, "upload": 1}
	n, ok := want[verb]
	if !ok {
		return cli.Usagef("library: unknown verb %q; want %s", verb, libraryArgs)
	}
	var err error
	f.Visit(func(fl *flag.Flag) {
		if v, ok := verbFlags[fl.Name]; ok && v != verb && err == nil {
			err = cli.Usagef("library %s: -%s is for %s", verb, fl.Name, v)
		}
	})
	if err != nil {
		return err
	}
	if len(args) != n {
		return cli.Usagef("library %s: want %d argument(s), got %d", verb, n, len(args))
	}
	if verb == "upload" {
		return upload(ctx, lf, args[0], lf.name, stdout)
	}
	name := ""
	if n == 1 {
		name = args[0]
		// Checked as the workers check names, before connecting.
		if err := library.CheckName(name); err != nil {
			return fmt.Errorf("library %s: %w", verb, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, lf.timeout)
	defer cancel()
	ctx, lib, done, err := openLibrary(ctx, lf)
	if err != nil {
		return fmt.Errorf("library %s: %w", verb, err)
	}
	defer done()
	wrap := func(err error) error {
		if err == nil {
			return nil
		}
		return fmt.Errorf("library %s: %w", verb, lib.explain(err))
	}
	switch verb {
	case "ls":
		if lf.cache {
			entries, err := lib.CacheEntries(ctx)
			if err != nil {
				return wrap(err)
			}
			return printCache(stdout, entries, lf.json)
		}
		objs, err := lib.List(ctx)
		if err != nil {
			return wrap(err)
		}
		return printObjects(stdout, objs, lf.json)
	case "info":
		o, err := lib.Stat(ctx, name)
		if err != nil {
			return wrap(err)
		}
		return printObject(stdout, o, lf.json)
	case "rm":
		o, err := lib.Remove(ctx, name)
		if err != nil {
			return wrap(err)
		}
		if lf.json {
			return printObject(stdout, o, true)
		}
		fmt.Fprintf(stdout, "removed %s (%s) and its cached μ-law\n", o.Name, size(o.Size))
		return nil
	case "get":
		return wrap(get(ctx, lib, name, lf, stdout))
	}
	return nil
}

// get downloads name to lf.out, or a file named after it, written whole
// or not at all.
func get(ctx context.Context, lib *cliLibrary, name string, lf libraryFlags, stdout io.Writer) error {
	if lf.out == "-" {
		_, err := lib.Get(ctx, name, stdout)
		return err
	}
	out := lf.out
	if out == "" {
		out = path.Base(name)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.part")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	o, err := lib.Get(ctx, name, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if _, err := os.Stat(out); err == nil && lf.out == "" {
		return fmt.Errorf("%s exists; choose another file with -o", out)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	if lf.json {
		return printObject(stdout, o, true)
	}
	fmt.Fprintf(stdout, "%s → %s (%d bytes, sha256 %s)\n", o.Name, out, o.Size, o.SHA256)
	return nil
}

// cliLibrary is a Library reached as a command-line tool reaches it.
type cliLibrary struct {
	*library.Library
	nc   *nats.Conn
	urls string
}

// explain turns what NATS refused into a permissions error, and an
// unreachable server into one saying so.
func (l *cliLibrary) explain(err error) error {
	if last := l.nc.LastError(); errors.Is(last, nats.ErrPermissionViolation) {
		return fmt.Errorf("NATS refused this user a permission the library needs (%w); log in as a user with the worker's permissions (deploy/nats/auth.conf)", last)
	}
	if !l.nc.IsConnected() {
		return fmt.Errorf("cannot reach NATS at %s: %w", redacted(l.urls), err)
	}
	if errors.Is(err, library.ErrNoStore) {
		return fmt.Errorf("no JetStream on the NATS server at %s, which the audio library needs: %w", redacted(l.urls), err)
	}
	return err
}

// redacted is a comma-separated list of NATS URLs without credentials.
func redacted(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = nil
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

// openLibrary connects as a worker does, with the worker's inbox prefix,
// and binds the buckets, using existing ones as they are. The context it
// returns ends at once if NATS refuses a permission, rather than when a
// refused request times out.
func openLibrary(ctx context.Context, lf libraryFlags) (context.Context, *cliLibrary, func(), error) {
	nopts := lf.nats
	nopts.Name = "callcast-library"
	nopts.InboxPrefix = bus.InboxWorker
	nc, err := bus.Connect(nopts)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrPermissionViolation) {
			cancel()
		}
	})
	js, err := jetstream.New(nc)
	if err != nil {
		cancel()
		nc.Close()
		return nil, nil, nil, err
	}
	// Binding (in New, and again in Bind if that failed) gets 10 s.
	bindCtx, cancelBind := context.WithTimeout(ctx, 10*time.Second)
	defer cancelBind()
	lib, err := library.New(bindCtx, library.Options{
		JS: js, MemoryBytes: -1, KeepBuckets: true,
		LibraryMaxBytes: lf.libraryMax, CacheMaxBytes: lf.cacheMax, Replicas: lf.replicas,
	})
	if err != nil {
		cancel()
		nc.Close()
		return nil, nil, nil, err
	}
	cl := &cliLibrary{Library: lib, nc: nc, urls: nopts.URL}
	done := func() { lib.Close(); nc.Close(); cancel() }
	if err := lib.Bind(bindCtx); err != nil {
		err = cl.explain(err)
		done()
		return nil, nil, nil, err
	}
	return ctx, cl, done, nil
}

// objectJSON is how -json prints an object.
type objectJSON struct {
	Name       string    `json:"name"`
	Format     string    `json:"format,omitempty"`
	SampleRate int       `json:"sampleRate,omitempty"`
	Channels   int       `json:"channels,omitempty"`
	DurationMs int64     `json:"durationMs,omitempty"`
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256,omitempty"`
	UploadedAt time.Time `json:"uploadedAt"`
	Cached     bool      `json:"cached"`
}

func toJSON(o library.Object) objectJSON {
	return objectJSON{
		Name: o.Name, Format: o.Info.Format, SampleRate: o.Info.SampleRate, Channels: o.Info.Channels,
		DurationMs: o.Info.Duration.Milliseconds(), Size: o.Size, SHA256: o.SHA256,
		UploadedAt: o.UploadedAt.UTC(), Cached: o.Cached,
	}
}

func printObjects(w io.Writer, objs []library.Object, asJSON bool) error {
	if asJSON {
		out := make([]objectJSON, 0, len(objs))
		for _, o := range objs {
			out = append(out, toJSON(o))
		}
		return writeJSON(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tFORMAT\tRATE\tCHANNELS\tDURATION\tSIZE\tUPLOADED\tCACHED")
	for _, o := range objs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", o.Name, orDash(o.Info.Format), rate(o.Info.SampleRate),
			chans(o.Info.Channels), duration(o.Info.Duration), size(o.Size), o.UploadedAt.UTC().Format(time.DateTime), yesNo(o.Cached))
	}
	return tw.Flush()
}

func printObject(w io.Writer, o library.Object, asJSON bool) error {
	if asJSON {
		return writeJSON(w, toJSON(o))
	}
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	for _, kv := range [][2]string{
		{"name", o.Name},
		{"format", orDash(o.Info.Format)},
		{"rate", rate(o.Info.SampleRate)},
		{"channels", chans(o.Info.Channels)},
		{"duration", duration(o.Info.Duration)},
		{"size", fmt.Sprintf("%d bytes (%s)", o.Size, size(o.Size))},
		{"sha256", orDash(o.SHA256)},
		{"uploaded", o.UploadedAt.UTC().Format(time.RFC3339)},
		{"cached", yesNo(o.Cached)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	return tw.Flush()
}

// cacheJSON is how -json prints a cache entry.
type cacheJSON struct {
	Key        string    `json:"key"`
	SHA256     string    `json:"sha256"`
	Pipeline   string    `json:"pipeline"`
	Current    bool      `json:"current"`
	Size       int64     `json:"size"`
	DurationMs int64     `json:"durationMs"`
	LastUse    time.Time `json:"lastUse"`
	Sources    []string  `json:"sources"`
}

func printCache(w io.Writer, entries []library.CacheEntry, asJSON bool) error {
	if asJSON {
		out := make([]cacheJSON, 0, len(entries))
		for _, e := range entries {
			out = append(out, cacheJSON{Key: e.Key, SHA256: e.SHA256, Pipeline: e.Pipeline, Current: e.Current, Size: e.Size,
				DurationMs: e.Info.Duration.Milliseconds(), LastUse: e.LastUse.UTC(), Sources: append([]string{}, e.Sources...)})
		}
		return writeJSON(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SHA256\tPIPELINE\tSIZE\tDURATION\tLAST USE\tSOURCE")
	for _, e := range entries {
		version := e.Pipeline
		if !e.Current {
			version += " (old)"
		}
		src := "-"
		if len(e.Sources) > 0 {
			src = strings.Join(e.Sources, ", ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.SHA256[:min(12, len(e.SHA256))], version, size(e.Size),
			duration(e.Info.Duration), e.LastUse.UTC().Format(time.DateTime), src)
	}
	return tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func rate(hz int) string {
	if hz == 0 {
		return "-"
	}
	return fmt.Sprintf("%d Hz", hz)
}

func chans(n int) string {
	if n == 0 {
		return "-"
	}
	return channels(n)
}

func duration(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmtSeconds(d)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// size is n bytes for people: B, KiB, MiB or GiB.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, suffixes := float64(n)/unit, []string{"KiB", "MiB", "GiB", "TiB"}
	i := 0
	for v >= unit && i < len(suffixes)-1 {
		v /= unit
		i++
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0") + " " + suffixes[i]
}
