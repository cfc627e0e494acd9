package callsim

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestReadCallerAudio(t *testing.T) {
	ulaw, err := ReadCallerAudio("testdata/hello.wav")
	if err != nil {
		t.Fatal(err)
	}
	if len(ulaw) != 2*BytesPerSecond {
		t.Fatalf("hello.wav: %d bytes of μ-law, want 2 s", len(ulaw))
	}
	raw := filepath.Join(t.TempDir(), "x.ulaw")
	if err := os.WriteFile(raw, ulaw[:800], 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadCallerAudio(raw); err != nil || !bytes.Equal(got, ulaw[:800]) {
		t.Fatalf("raw μ-law: %d bytes, %v", len(got), err)
	}
	notAudio := filepath.Join(t.TempDir(), "x.wav")
	if err := os.WriteFile(notAudio, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCallerAudio(notAudio); err == nil {
		t.Fatal("a text file read as audio")
	}
}

func TestSpeak(t *testing.T) {
	b, err := io.ReadAll(Speak([]byte{1, 2, 3}, 2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if want := append(bytes.Repeat([]byte{0xFF}, 16), 1, 2, 3); !bytes.Equal(b, want) {
		t.Fatalf("Speak = %v, want %v", b, want)
	}
}
