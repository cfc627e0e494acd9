package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/callcast/callcast/internal/audio"
)

const testdata = "../../internal/audio/testdata/"

// libraryOutput is what the audio package produces for a fixture.
func libraryOutput(t *testing.T, name string) []byte {
	t.Helper()
	f, err := os.Open(testdata + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := audio.NewTranscoder(f, audio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(tr)
	if err != nil && !errors.Is(err, audio.ErrTruncated) {
		t.Fatal(err)
	}
	return b
}

func TestTranscodeStdout(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := runTranscode([]string{testdata + "speech-22k-mono-vbr.mp3"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stdout.Bytes(), libraryOutput(t, "speech-22k-mono-vbr.mp3")) {
		t.Error("stdout differs from the library's output")
	}
	line := stderr.String()
	for _, want := range []string{"mp3, 22050 Hz, mono", "→ stdout", "2.637 s", "real time"} {
		if !strings.Contains(line, want) {
			t.Errorf("summary %q lacks %q", line, want)
		}
	}
	if strings.Count(line, "\n") != 1 {
		t.Errorf("summary is not one line: %q", line)
	}
}

func TestTranscodeFiles(t *testing.T) {
	dir := t.TempDir()
	want := libraryOutput(t, "music-44k-stereo-cbr128.mp3")
	for _, name := range []string{"out.ulaw", "out.raw", "OUT.WAV"} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(dir, name)
			var stderr bytes.Buffer
			if err := runTranscode([]string{"-o", out, testdata + "music-44k-stereo-cbr128.mp3"}, io.Discard, &stderr); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(name, ".WAV") {
				if len(got) != 58+len(want) {
					t.Fatalf("WAV of %d bytes, want a 58-byte header and %d bytes of audio", len(got), len(want))
				}
				// Read back as a WAV: 8 kHz mono μ-law passes through.
				tr, err := audio.NewTranscoder(bytes.NewReader(got), audio.Options{})
				if err != nil {
					t.Fatal(err)
				}
				if info := tr.Info(); info.Format != "wav-mulaw" || info.SampleRate != 8000 || info.Channels != 1 || info.Duration.Seconds() != 3 {
					t.Errorf("WAV reads back as %+v", info)
				}
				got, err = io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(got, want) {
				t.Error("file differs from the library's output")
			}
			if !strings.Contains(stderr.String(), "3.000 s") {
				t.Errorf("summary %q lacks the duration", stderr.String())
			}
		})
	}
	// Nothing left behind but the outputs.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("%d files in the output directory, want 3", len(entries))
	}
}

func TestTranscodeOddLengthWAV(t *testing.T) {
	out := filepath.Join(t.TempDir(), "odd.wav")
	// 0.25 s at 16 kHz → 2000 bytes; take speech (21093 bytes, odd).
	if err := runTranscode([]string{"-o", out, testdata + "speech-22k.wav"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	if len(got) != 58+21093+1 {
		t.Fatalf("%d bytes, want header, 21093 bytes and a pad byte", len(got))
	}
	tr, err := audio.NewTranscoder(bytes.NewReader(got), audio.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(tr)
	if err != nil || len(b) != 21093 {
		t.Errorf("read back %d bytes, %v; want 21093", len(b), err)
	}
}

func TestTranscodeTruncated(t *testing.T) {
	out := filepath.Join(t.TempDir(), "t.ulaw")
	err := runTranscode([]string{"-o", out, testdata + "truncated.mp3"}, io.Discard, io.Discard)
	if !errors.Is(err, audio.ErrTruncated) {
		t.Fatalf("err = %v, want ErrTruncated", err)
	}
	got, _ := os.ReadFile(out)
	if want := libraryOutput(t, "truncated.mp3"); len(want) == 0 || !bytes.Equal(got, want) {
		t.Errorf("wrote %d bytes, want the %d decodable ones", len(got), len(want))
	}
}

func TestTranscodeErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want error
		msg  string
	}{
		{"no input", nil, nil, "exactly one input"},
		{"two inputs", []string{"a", "b"}, nil, "exactly one input"},
		{"missing file", []string{filepath.Join(dir, "nope.mp3")}, os.ErrNotExist, ""},
		{"bad extension", []string{"-o", filepath.Join(dir, "x.mp3"), testdata + "speech-22k.wav"}, nil, "extension"},
		{"not audio", []string{"-o", filepath.Join(dir, "x.ulaw"), testdata + "not-audio.txt"}, audio.ErrBadInput, ""},
		{"layer II", []string{testdata + "layer2.mp2"}, audio.ErrUnsupported, "convert with"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runTranscode(tt.args, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %q, want it to mention %q", err, tt.msg)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed runs left %d files behind", len(entries))
	}
}
