package callsim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/callcast/callcast/internal/audio"
)

// MaxCallerAudio bounds what ReadCallerAudio reads: an hour of μ-law.
const MaxCallerAudio = 3600 * BytesPerSecond

// ReadCallerAudio reads a file for the caller to say and returns it as
// μ-law, 8000 Hz, mono: WAV or MP3, recognised by content and converted by
// the project's own transcoder (package audio), or raw μ-law bytes for
// the extensions .ulaw, .mulaw, .ul and .raw.
func ReadCallerAudio(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("callsim: caller audio: %w", err)
	}
	defer f.Close()
	switch strings.ToLower(filepath.Ext(path)) {
	case ".ulaw", ".mulaw", ".ul", ".raw":
		b, err := io.ReadAll(io.LimitReader(f, MaxCallerAudio+1))
		if err != nil {
			return nil, fmt.Errorf("callsim: caller audio: %w", err)
		}
		if len(b) > MaxCallerAudio {
			return nil, fmt.Errorf("callsim: caller audio %s: longer than an hour", path)
		}
		return b, nil
	}
	t, err := audio.NewTranscoder(f, audio.Options{})
	if err != nil {
		return nil, fmt.Errorf("callsim: caller audio %s: %w", path, err)
	}
	var b bytes.Buffer
	_, err = io.Copy(&b, io.LimitReader(t, MaxCallerAudio+1))
	if err != nil && !errors.Is(err, audio.ErrTruncated) {
		return nil, fmt.Errorf("callsim: caller audio %s: %w", path, err)
	}
	if b.Len() > MaxCallerAudio {
		return nil, fmt.Errorf("callsim: caller audio %s: longer than an hour", path)
	}
	return b.Bytes(), nil
}

// Speak returns caller audio for Config.CallerAudio that says ulaw at
// stream time at: μ-law silence (0xFF) until then, as Twilio sends while
// the caller is quiet, and silence again once ulaw is said. at is rounded
// down to whole samples.
func Speak(ulaw []byte, at time.Duration) io.Reader {
	n := max(0, int(at*BytesPerSecond/time.Second))
	return io.MultiReader(bytes.NewReader(bytes.Repeat([]byte{0xFF}, n)), bytes.NewReader(ulaw))
}
