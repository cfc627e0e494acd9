// Package audio turns audio files into what a phone call carries: G.711
// μ-law, 8000 Hz, mono out; FrameSize bytes = 20 ms.
//
// Inputs, recognised by their content and never by a file name:
//
//   - MP3: MPEG-1, MPEG-2 and MPEG-2.5 Layer III (32–48, 16–24 and
//     8–12 kHz), CBR or VBR, mono or stereo, behind any number of ID3v2
//     tags. A Xing/Info frame is not played, and the encoder delay and
//     padding recorded in a LAME tag are trimmed, so the output lasts
//     exactly as long as the audio that was encoded; without a LAME tag
//     LAME's usual delay (576 + 529 samples) is trimmed from the start.
//     Layer I and II are refused with ErrUnsupported.
//   - WAV: 16-bit PCM at any rate with any number of channels (including
//     WAVE_FORMAT_EXTENSIBLE), and G.711 μ-law; 8000 Hz mono μ-law is
//     passed through byte for byte.
//
// The pipeline streams: MP3 decoder (the channels mixed to mono before its
// synthesis filter bank) → polyphase windowed-sinc low-pass resampler to 8000 Hz →
// G.711 μ-law. Each stage reuses its buffers, so memory does not grow with
// the length of the input, and the first output is ready after the first
// few MP3 frames. Framer cuts the μ-law stream into 20 ms frames and
// base64-encodes them for the wire.
package audio

import (
	"errors"
	"time"
)

const (
	// SampleRate is the output sample rate, Hz.
	SampleRate = 8000
	// FrameSize is the number of μ-law bytes (one byte a sample) in 20 ms.
	FrameSize = 160
	// PipelineVersion changes whenever the output for the same input can
	// change, so it can key a cache of transcoded audio. History: 1, the
	// first pipeline; 2, the 3.75 kHz multistage filter, encoder delay
	// trimmed without a LAME tag, MPEG-2 padding, MPEG-2.5 decoding and
	// bad MP3 frames replaced by silence; 3, MP3 synthesis output rounded
	// (ISO 11172-4 full accuracy) instead of truncated; 4, the project's
	// own MP3 decoder (LSF intensity stereo, channels mixed before the
	// synthesis filter bank, streams decoded through mode and rate
	// changes, one-frame files, concealed frames faded); 5, the
	// resampler's edge placed as soxr's (−6 dB at 3825 Hz, 100 dB down
	// from 3965 Hz); 6, the MP3 decoder's fast transforms (unrolled IMDCT
	// and DCT-32, SSE window) and stereo mixed before the IMDCT (sums in
	// another order: a μ-law code may differ by one); 7, the polyphase
	// stage at 12 and 16 kHz computed in split form, across outputs
	// (sums in another order: a μ-law code may differ by one), and a
	// sample split between two reads of a WAV source kept; 8, that
	// kernel's taps summed in pairs eight apart (a μ-law code may differ
	// by one).
	PipelineVersion = "8"
)

// Errors returned by NewTranscoder and Transcoder.Read; they wrap the cause.
var (
	// ErrBadInput: empty input, random bytes, not audio, corrupt audio, or
	// a decoder failure.
	ErrBadInput = errors.New("audio: bad input")
	// ErrUnsupported: recognised, but not something this package plays;
	// the message names the format and says how to convert it.
	ErrUnsupported = errors.New("audio: unsupported format")
	// ErrTruncated is returned by Read after all decodable audio of an
	// input that ends early (mid-frame, or short of its recorded length).
	ErrTruncated = errors.New("audio: truncated input")
)

// Info describes a Transcoder's source.
type Info struct {
	Format     string        // "mp3", "wav-pcm16" or "wav-mulaw"
	SampleRate int           // source sample rate, Hz
	Channels   int           // source channels
	Duration   time.Duration // true duration if the file records it (LAME/Xing frame count, WAV data size), else 0
}

// Options configures a Transcoder. The zero value is ready to use and is
// what production uses.
type Options struct{}
