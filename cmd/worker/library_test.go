package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/callcast/callcast/internal/bus"
)

// runWorker runs the worker's command line, returning its exit status and
// output.
func runWorker(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errs bytes.Buffer
	code = program(&out, &errs).Main(context.Background(), args)
	return code, out.String(), errs.String()
}

// TestLibraryCommand round-trips prompts through `worker library` against
// a real JetStream server: upload, ls, info, get, rm.
func TestLibraryCommand(t *testing.T) {
	ns, err := bus.RunServer(bus.ServerOptions{Listen: "127.0.0.1:0", JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	url := ns.ClientURL()
	mp3 := testdata + "speech-22k-mono-vbr.mp3"
	wav := testdata + "pcm16-16k-stereo.wav"
	src, err := os.ReadFile(mp3)
	if err != nil {
		t.Fatal(err)
	}

	run := func(t *testing.T, want int, args ...string) string {
		t.Helper()
		code, stdout, stderr := runWorker(t, append([]string{"library", "-nats", url}, args...)...)
		if code != want {
			t.Fatalf("worker library %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, stdout, stderr)
		}
		return stdout + stderr
	}
	run(t, 0, "upload", "-name", "prompts/welcome.mp3", mp3)
	// The old spelling still works.
	if code, _, stderr := runWorker(t, "upload", "-nats", url, wav); code != 0 {
		t.Fatalf("worker upload: %d %s", code, stderr)
	}

	table := run(t, 0, "ls")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 {
		t.Fatalf("ls: want a header and 2 rows:\n%s", table)
	}
	for _, want := range []string{"NAME", "FORMAT", "RATE", "CHANNELS", "DURATION", "SIZE", "UPLOADED", "CACHED"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("ls header lacks %s: %q", want, lines[0])
		}
	}
	for i, want := range [][]string{
		{"pcm16-16k-stereo.wav", "wav-pcm16", "16000 Hz", "stereo", " s ", "yes"},
		{"prompts/welcome.mp3", "mp3", "22050 Hz", "mono", "2.6", "KiB", "yes"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("ls row %d lacks %q: %q", i+1, w, lines[i+1])
			}
		}
	}
	var objs []objectJSON
	if err := json.Unmarshal([]byte(run(t, 0, "ls", "-json")), &objs); err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[1].Name != "prompts/welcome.mp3" || objs[1].Size != int64(len(src)) || objs[1].Format != "mp3" ||
		objs[1].SampleRate != 22050 || objs[1].Channels != 1 || objs[1].DurationMs < 2600 || objs[1].UploadedAt.IsZero() || !objs[1].Cached {
		t.Errorf("ls -json: %+v", objs)
	}

	// The cache: each prompt's μ-law, named by its source. Uploading other
	// audio under a name drops the replaced audio's entry.
	cache := run(t, 0, "ls", "-cache")
	if !strings.Contains(cache, "SHA256") || !strings.Contains(cache, objs[1].SHA256[:12]) || !strings.Contains(cache, "prompts/welcome.mp3") {
		t.Errorf("ls -cache:\n%s", cache)
	}
	run(t, 0, "upload", "-name", "replaced.wav", wav)
	run(t, 0, "upload", "-name", "replaced.wav", mp3)
	var entries []cacheJSON
	if err := json.Unmarshal([]byte(run(t, 0, "ls", "-cache", "-json")), &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("ls -cache -json: %+v, want the two contents' entries", entries)
	}
	for _, e := range entries {
		if !e.Current || e.Size == 0 || e.LastUse.IsZero() || len(e.Sources) == 0 {
			t.Errorf("cache entry %+v", e)
		}
		if e.SHA256 == objs[1].SHA256 && !slices.Equal(e.Sources, []string{"prompts/welcome.mp3", "replaced.wav"}) {
			t.Errorf("welcome's entry has sources %q", e.Sources)
		}
	}
	run(t, 0, "rm", "replaced.wav")

	info := run(t, 0, "info", "prompts/welcome.mp3")
	for _, want := range []string{"name:", "prompts/welcome.mp3", "sha256:", objs[1].SHA256, "cached:", "yes"} {
		if !strings.Contains(info, want) {
			t.Errorf("info lacks %q:\n%s", want, info)
		}
	}

	out := filepath.Join(t.TempDir(), "copy.mp3")
	run(t, 0, "get", "-o", out, "prompts/welcome.mp3")
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, src) {
		t.Errorf("get -o: %d bytes, %v; want the %d uploaded", len(got), err, len(src))
	}
	if got := run(t, 0, "get", "prompts/welcome.mp3", "-o", "-"); got != string(src) {
		t.Errorf("get -o -: %d bytes, want %d", len(got), len(src))
	}

	// From standard input, as through docker compose exec -T.
	stdin, err := os.Open(mp3)
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	saved := os.Stdin
	os.Stdin = stdin
	run(t, 0, "upload", "-name", "from-stdin.mp3", "-")
	os.Stdin = saved
	if got := run(t, 0, "get", "-o", "-", "from-stdin.mp3"); got != string(src) {
		t.Errorf("uploaded from standard input: %d bytes back, want %d", len(got), len(src))
	}
	run(t, 0, "rm", "from-stdin.mp3")

	if got := run(t, 0, "rm", "prompts/welcome.mp3"); !strings.Contains(got, "removed prompts/welcome.mp3") {
		t.Errorf("rm: %q", got)
	}
	if got := run(t, 1, "info", "prompts/welcome.mp3"); !strings.Contains(got, "audio not found") {
		t.Errorf("info after rm: %q", got)
	}
	if got := run(t, 1, "rm", "prompts/welcome.mp3"); !strings.Contains(got, "audio not found") {
		t.Errorf("rm twice: %q", got)
	}
	if got := run(t, 0, "ls", "-json"); strings.Contains(got, "welcome") {
		t.Errorf("ls after rm: %s", got)
	}

	// Buckets it creates get the bounds given; past them an upload is
	// refused, saying why.
	small, err := bus.RunServer(bus.ServerOptions{Listen: "127.0.0.1:0", JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { small.Shutdown(); small.WaitForShutdown() })
	code, _, stderr := runWorker(t, "library", "-nats", small.ClientURL(), "-library-max-bytes", "30000", "upload", mp3)
	if code != 1 || !strings.Contains(stderr, "audio library full") {
		t.Errorf("upload past the bound: exit %d, %q", code, stderr)
	}
}

// runAuthConf runs deploy/nats/auth.conf in-process (JetStream in a
// temporary directory, clients on a random loopback port) and returns its
// URL and the users' passwords.
func runAuthConf(t *testing.T) (url string, passwords map[string]string) {
	t.Helper()
	passwords = map[string]string{"edge": "p0a1b2c3d4e5f6a7b8", "worker": "p9f8e7d6c5b4a3f2e1", "producer": "p5a5b5c5d5e5f5a5b5"}
	for user, pw := range passwords {
		t.Setenv("NATS_"+strings.ToUpper(user)+"_PASSWORD", pw)
	}
	opts, err := server.ProcessConfigFile("../../deploy/nats/auth.conf")
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", server.RANDOM_PORT, 0
	opts.StoreDir = t.TempDir()
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats: not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns.ClientURL(), passwords
}

// TestLibraryCommandUnderAuthConf runs every verb of `worker library` (and
// `worker upload`) against the least-privilege NATS configuration, logged
// in as user worker, as the README tells operators to; as user producer it
// is refused, and says that a permission was refused.
func TestLibraryCommandUnderAuthConf(t *testing.T) {
	url, passwords := runAuthConf(t)
	as := func(user string, args ...string) []string {
		return append([]string{"library", "-nats", url, "-nats-user", user, "-nats-password", passwords[user], "-timeout", "15s"}, args...)
	}
	mp3 := testdata + "speech-22k-mono-vbr.mp3"
	out := filepath.Join(t.TempDir(), "copy.mp3")
	for _, args := range [][]string{
		{"upload", "-nats", url, "-nats-user", "worker", "-nats-password", passwords["worker"], "-name", "a.mp3", mp3},
		as("worker", "upload", "-name", "b.mp3", mp3),
		as("worker", "ls"),
		as("worker", "info", "a.mp3"),
		as("worker", "get", "-o", out, "a.mp3"),
		as("worker", "rm", "a.mp3"),
		as("worker", "rm", "b.mp3"),
	} {
		if code, stdout, stderr := runWorker(t, args...); code != 0 {
			t.Errorf("%s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
		}
	}
	for _, args := range [][]string{as("producer", "ls"), {"upload", "-nats", url, "-nats-user", "producer", "-nats-password", passwords["producer"], "-timeout", "15s", mp3}} {
		code, _, stderr := runWorker(t, args...)
		if code != 1 || !strings.Contains(stderr, "refused this user a permission") || !strings.Contains(stderr, "Permissions Violation") {
			t.Errorf("as producer: exit %d, %q; want a permissions error", code, stderr)
		}
	}
}
