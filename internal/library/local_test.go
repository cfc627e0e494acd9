package library

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLocalNames(t *testing.T) {
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
	l := newLibrary(t, Options{Dir: dir, MaxFileSize: 100})

	tests := []struct {
		name string
		want error // nil: found
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
		{".", ErrBadName},
		{"prompts/..", ErrBadName},
		{"big.mp3", ErrTooLarge},
		{string(make([]byte, 300)), ErrBadName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := l.resolve(context.Background(), tt.name)
			if src != nil {
				src.close()
			}
			if tt.want == nil {
				if err != nil {
					t.Fatalf("resolve(%q): %v", tt.name, err)
				}
				if src.key == "" {
					t.Fatalf("resolve(%q): no cache key", tt.name)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("resolve(%q) = %v, want %v", tt.name, err, tt.want)
			}
		})
	}
}

func FuzzCheckName(f *testing.F) {
	for _, s := range []string{"ok.mp3", "a/b/c.wav", "../x", "/etc/passwd", "a/./b", "a//b", `a\b`, "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if CheckName(name) != nil {
			return
		}
		clean := cleanName(name)
		if !filepath.IsLocal(clean) || clean == "." {
			t.Fatalf("CheckName accepted %q, which cleans to the non-local %q", name, clean)
		}
	})
}
