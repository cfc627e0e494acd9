package audio_test

import (
	"fmt"
	"io"
	"log"
	"os"

	"github.com/callcast/callcast/internal/audio"
)

func ExampleNewTranscoder() {
	f, err := os.Open("testdata/onset-44k-stereo-vbr.mp3")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	t, err := audio.NewTranscoder(f, audio.Options{})
	if err != nil {
		log.Fatal(err) // errors.Is(err, audio.ErrBadInput) or audio.ErrUnsupported
	}
	ulaw, err := io.ReadAll(t) // μ-law, 8000 Hz, mono
	if err != nil {
		log.Fatal(err) // errors.Is(err, audio.ErrTruncated): ulaw holds what was decodable
	}
	info := t.Info()
	fmt.Printf("%s %d Hz %d ch, %v: %d bytes, %d frames\n", info.Format, info.SampleRate, info.Channels,
		info.Duration, len(ulaw), len(ulaw)/audio.FrameSize)
	// Output: mp3 44100 Hz 2 ch, 1s: 8000 bytes, 50 frames
}

func ExampleFramer() {
	f, err := os.Open("testdata/speech-22k-mono-vbr.mp3")
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	t, err := audio.NewTranscoder(f, audio.Options{})
	if err != nil {
		log.Fatal(err)
	}
	framer := audio.NewFramer(t)
	payload := make([]byte, 0, 256) // reused: no allocation per frame
	frames, last := 0, 0
	for {
		payload, err = framer.AppendNext(payload[:0])
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		frames++ // send payload as a media message's base64 payload
		last = len(payload)
	}
	fmt.Println(frames, "media messages; the last, shorter, has", last, "bytes of base64")
	// Output: 132 media messages; the last, shorter, has 180 bytes of base64
}
