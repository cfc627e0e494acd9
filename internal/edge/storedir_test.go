//go:build unix

package edge

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

func TestLockStoreDir(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	dir := filepath.Join(t.TempDir(), "store")
	got, release, err := lockStoreDir(dir, log)
	if err != nil || got != dir {
		t.Fatalf("first: %q, %v", got, err)
	}
	// Another server in the same directory would corrupt it: the second
	// gets a private directory, removed on release.
	other, releaseOther, err := lockStoreDir(dir, log)
	if err != nil || other == dir {
		t.Fatalf("second: %q, %v; want a private directory", other, err)
	}
	if st, err := os.Stat(other); err != nil || !st.IsDir() {
		t.Fatalf("private directory: %v", err)
	}
	releaseOther()
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Errorf("private directory left behind: %v", err)
	}
	release()
	again, releaseAgain, err := lockStoreDir(dir, log)
	if err != nil || again != dir {
		t.Fatalf("after release: %q, %v", again, err)
	}
	releaseAgain()
}
