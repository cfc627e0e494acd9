package worker

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLibraryOpen(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	write := func(path string, size int) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "ok.mp3"), 10)
	write(filepath.Join(dir, "prompts", "hello.mp3"), 10)
	write(filepath.Join(dir, "big.mp3"), 101)
	write(filepath.Join(outside, "secret.mp3"), 10)
	if err := os.Symlink(filepath.Join(outside, "secret.mp3"), filepath.Join(dir, "escape.mp3")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("ok.mp3", filepath.Join(dir, "alias.mp3")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "outdir")); err != nil {
		t.Fatal(err)
	}
	lib, err := openLibrary(dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()

	tests := []struct {
		name string
		want error // nil: opens
	}{
		{"ok.mp3", nil},
		{"prompts/hello.mp3", nil},
		{"./ok.mp3", nil},
		{"alias.mp3", nil}, // a symlink inside the directory is fine
		{"missing.mp3", ErrNotFound},
		{"", ErrBadName},
		{"../ok.mp3", ErrBadName},
		{"../../etc/passwd", ErrBadName},
		{"prompts/../../etc/passwd", ErrBadName},
		{"/etc/passwd", ErrBadName},
		{`..\..\windows`, ErrBadName},
		{"ok.mp3\x00.txt", ErrBadName},
		{"escape.mp3", ErrBadName},
		{"outdir/secret.mp3", ErrBadName},
		{"prompts", ErrNotAFile},
		{"big.mp3", ErrTooLarge},
		{string(make([]byte, 300)), ErrBadName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := lib.Open(tt.name)
			if f != nil {
				f.Close()
			}
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Open(%q): %v", tt.name, err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open(%q) = %v, want %v", tt.name, err, tt.want)
			}
		})
	}
}
