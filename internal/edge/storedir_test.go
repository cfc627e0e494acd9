//go:build unix

package edge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callcast/callcast/internal/library"
	"github.com/callcast/callcast/internal/worker"
)

func TestDefaultStoreDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", "")
	want := filepath.Join(home, ".local", "share", "callcast")
	if runtime.GOOS == "darwin" {
		want = filepath.Join(home, "Library", "Application Support", "callcast")
	}
	if got, err := DefaultStoreDir(); err != nil || got != want {
		t.Errorf("HOME only: %q, %v; want %q", got, err, want)
	}
	xdg := t.TempDir()
	t.Setenv("XDG_DATA_HOME", xdg)
	if got, err := DefaultStoreDir(); err != nil || got != filepath.Join(xdg, "callcast") {
		t.Errorf("XDG_DATA_HOME: %q, %v; want %q", got, err, filepath.Join(xdg, "callcast"))
	}
	t.Setenv("XDG_DATA_HOME", "relative/dir") // the specification says to ignore it
	if got, err := DefaultStoreDir(); err != nil || got != want {
		t.Errorf("relative XDG_DATA_HOME: %q, %v; want %q", got, err, want)
	}
}

func TestLockStoreDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	release, err := lockStoreDir(dir)
	if err != nil {
		t.Fatalf("first: %v", err)
	}
	// Another server in the same directory would corrupt it, and a private
	// one would serve an empty library: the second is refused, and told
	// who holds it.
	_, err = lockStoreDir(dir)
	if !errors.Is(err, ErrStoreLocked) {
		t.Fatalf("second: %v, want ErrStoreLocked", err)
	}
	exe, _ := os.Executable()
	for _, want := range []string{dir, fmt.Sprintf("pid %d (%s)", os.Getpid(), exe), "NATS_STORE_DIR"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	release()
	releaseAgain, err := lockStoreDir(dir)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	releaseAgain()
}

// allInOne runs edge.Run all-in-one with the default store directory,
// returning the embedded server's URL and a function that stops it and
// returns Run's error.
func allInOne(t *testing.T) (natsURL string, stop func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	natsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	natsAddr := natsLn.Addr().String()
	natsLn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Listener:   ln,
			NATSListen: natsAddr,
			Worker:     worker.Config{AudioDir: t.TempDir(), DefaultAudio: worker.NoDefaultAudio},
			Ready:      func(net.Addr) { close(ready) },
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("all-in-one: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("all-in-one not ready after 30 s")
	}
	var once bool
	stop = func() error {
		if once {
			return nil
		}
		once = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return "nats://" + natsAddr, stop
}

func openLibrary(t *testing.T, url string) *library.Library {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lib, err := library.New(ctx, library.Options{JS: js, MemoryBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lib.Close() })
	if !lib.Shared() {
		t.Fatal("no object store")
	}
	return lib
}

// TestAllInOneStorePersists restarts the all-in-one with its default store
// directory in a temporary HOME: an uploaded prompt is still there, and a
// second all-in-one on the same directory is refused with the holder's name.
func TestAllInOneStorePersists(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", "")
	if runtime.GOOS == "darwin" {
		t.Skip("the data directory differs on macOS")
	}
	src, err := os.ReadFile("../library/testdata/speech.mp3")
	if err != nil {
		t.Fatal(err)
	}

	url, stop := allInOne(t)
	lib := openLibrary(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	up, err := lib.Put(ctx, "prompts/welcome.mp3", strings.NewReader(string(src)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(home, ".local", "share", "callcast", "jetstream")); err != nil {
		t.Errorf("store not in the default directory: %v", err)
	}

	// A second all-in-one of the same user: an error naming the first.
	err = Run(ctx, Options{Addr: "127.0.0.1:0", NATSListen: "127.0.0.1:0",
		Worker: worker.Config{AudioDir: t.TempDir(), DefaultAudio: worker.NoDefaultAudio}})
	if !errors.Is(err, ErrStoreLocked) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second all-in-one: %v, want ErrStoreLocked naming pid %d", err, os.Getpid())
	}

	lib.Close()
	if err := stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	url, _ = allInOne(t)
	got, err := openLibrary(t, url).Stat(ctx, "prompts/welcome.mp3")
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if got.SHA256 != up.SHA256 || got.Size != int64(len(src)) {
		t.Errorf("after restart: %+v, want sha256 %s, %d bytes", got, up.SHA256, len(src))
	}
}
