package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/callcast/callcast/internal/audio"
	"github.com/callcast/callcast/internal/cli"
)

const transcodeHelp = `Converts IN (MP3 or WAV, recognised by content; - for standard input) to
G.711 μ-law, 8000 Hz, mono, as the worker plays it. OUT's extension picks
the container: .ulaw, .mulaw or .raw for raw μ-law bytes, .wav for a μ-law
WAV. Without -o, raw μ-law goes to standard output. A one-line summary goes
to standard error.`

// transcodeCommand is `worker transcode`.
func transcodeCommand(stdout, stderr io.Writer) cli.Command {
	return cli.Command{
		Name: "transcode", Args: "[-o OUT] IN", Help: transcodeHelp,
		Summary: "convert a file offline to raw μ-law (.ulaw) or a μ-law WAV (.wav)",
		Setup: func(f *cli.Flags) cli.RunFunc {
			out := f.FlagSet.String("o", "", "output file: .ulaw/.mulaw/.raw (raw μ-law) or .wav (μ-law WAV)")
			return func(_ context.Context, args []string) error {
				if len(args) != 1 {
					return cli.Usagef("transcode: want exactly one input file")
				}
				return transcode(args[0], *out, stdout, stderr)
			}
		},
	}
}

// runTranscode runs the transcode command with args.
func runTranscode(args []string, stdout, stderr io.Writer) error {
	return transcodeCommand(stdout, stderr).Run(context.Background(), args)
}

// transcode converts in to out ("": stdout).
func transcode(in, out string, stdout, stderr io.Writer) error {
	wav := false
	if out != "" {
		switch strings.ToLower(filepath.Ext(out)) {
		case ".ulaw", ".mulaw", ".raw", ".ul":
		case ".wav":
			wav = true
		default:
			return cli.Usagef("transcode: %s: unknown output extension (want .ulaw, .mulaw, .raw or .wav)", out)
		}
	}

	var src io.Reader = os.Stdin
	if in != "-" {
		f, err := os.Open(in)
		if err != nil {
			return fmt.Errorf("transcode: %w", err)
		}
		defer f.Close()
		src = f
	}

	start := time.Now()
	t, err := audio.NewTranscoder(src, audio.Options{})
	if err != nil {
		return fmt.Errorf("transcode: %s: %w", in, err)
	}

	var n int64
	var readErr error
	if out == "" {
		n, readErr = copyAudio(stdout, t)
	} else {
		n, readErr = writeFile(out, t, wav)
	}
	if readErr != nil && !errors.Is(readErr, audio.ErrTruncated) {
		return fmt.Errorf("transcode: %s: %w", in, readErr)
	}
	elapsed := time.Since(start)

	info := t.Info()
	dur := time.Duration(n) * time.Second / audio.SampleRate
	dest := out
	if dest == "" {
		dest = "stdout"
	}
	fmt.Fprintf(stderr, "%s: %s, %d Hz, %s → %s: %s of 8000 Hz μ-law (%d frames) in %s, %.0fx real time\n",
		in, info.Format, info.SampleRate, channels(info.Channels), dest,
		fmtSeconds(dur), (n+audio.FrameSize-1)/audio.FrameSize,
		elapsed.Round(time.Millisecond), dur.Seconds()/max(elapsed.Seconds(), 1e-9))
	if readErr != nil {
		return fmt.Errorf("transcode: %s: wrote the %s before the damage: %w", in, fmtSeconds(dur), readErr)
	}
	return nil
}

func channels(n int) string {
	switch n {
	case 1:
		return "mono"
	case 2:
		return "stereo"
	}
	return fmt.Sprintf("%d channels", n)
}

func fmtSeconds(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }

// copyAudio copies the μ-law stream to w; it returns how many bytes it
// wrote and the error that ended the stream (nil at a clean end).
func copyAudio(w io.Writer, t *audio.Transcoder) (int64, error) {
	buf := make([]byte, 32*audio.FrameSize)
	var n int64
	for {
		k, err := t.Read(buf)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// writeFile writes the stream to path, through a temporary file renamed
// into place at the end so that a failed run leaves nothing half-written.
// A truncated input still produces its file, with ErrTruncated returned.
func writeFile(path string, t *audio.Transcoder, wav bool) (int64, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return 0, err
	}
	defer func() {
		f.Close()
		os.Remove(f.Name()) // fails harmlessly once renamed
	}()
	if wav {
		if _, err := f.Write(mulawWAVHeader(0)); err != nil {
			return 0, err
		}
	}
	n, readErr := copyAudio(f, t)
	if readErr != nil && !errors.Is(readErr, audio.ErrTruncated) {
		return n, readErr
	}
	if wav {
		if n%2 == 1 { // RIFF chunks are padded to an even length
			if _, err := f.Write([]byte{0}); err != nil {
				return n, err
			}
		}
		if _, err := f.WriteAt(mulawWAVHeader(n), 0); err != nil {
			return n, err
		}
	}
	if err := f.Close(); err != nil {
		return n, err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return n, err
	}
	return n, readErr
}

// mulawWAVHeader is the 58-byte header of a WAV holding n bytes of 8000 Hz
// mono μ-law: RIFF, fmt (WAVE_FORMAT_MULAW, with the cbSize field), fact
// (the sample count, required for non-PCM data) and the data chunk header.
func mulawWAVHeader(n int64) []byte {
	le := binary.LittleEndian
	h := make([]byte, 0, 58)
	h = append(h, "RIFF"...)
	h = le.AppendUint32(h, uint32(50+n+n%2))
	h = append(h, "WAVEfmt "...)
	h = le.AppendUint32(h, 18)
	h = le.AppendUint16(h, 7) // WAVE_FORMAT_MULAW
	h = le.AppendUint16(h, 1) // channels
	h = le.AppendUint32(h, audio.SampleRate)
	h = le.AppendUint32(h, audio.SampleRate) // bytes per second
	h = le.AppendUint16(h, 1)                // block align
	h = le.AppendUint16(h, 8)                // bits per sample
	h = le.AppendUint16(h, 0)                // cbSize
	h = append(h, "fact"...)
	h = le.AppendUint32(h, 4)
	h = le.AppendUint32(h, uint32(n))
	h = append(h, "data"...)
	h = le.AppendUint32(h, uint32(n))
	return h
}
