package client_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/client"
)

// The examples run against the whole product on loopback, started by
// TestMain (system_test.go): a NATS server at natsURL, an edge "edge-1",
// a worker playing hello.wav (1 s) and long.wav (20 s), and one live call
// from the Twilio double per example, with the stream SID the example uses.

func Example() {
	nc, err := nats.Connect(natsURL) // e.g. nats://127.0.0.1:4222
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c := client.New(nc, client.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Follow the call's events first, so that none is missed.
	const sid = "MZplay01" // the call's stream SID (see Calls, or stream.started)
	evs, err := c.Events(ctx, sid)
	if err != nil {
		log.Fatal(err)
	}
	defer evs.Close()
	pb, err := c.Play(ctx, sid, "hello.wav", client.PlayOptions{ID: "greeting"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("queued %s, %d ms\n", pb.RequestID, pb.DurationMs)
	end, err := evs.WaitPlayback(ctx, pb.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: the caller heard %d ms\n", end.Kind, end.Playback.HeardMs)
	// Output:
	// queued greeting, 1000 ms
	// playback.finished: the caller heard 1000 ms
}

func ExampleClient_Stream() {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c := client.New(nc, client.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// One second of a 440 Hz tone, as a TTS engine would make speech:
	// 16-bit little-endian PCM, 24 kHz mono.
	pcm := make([]byte, 2*24000)
	for i := range 24000 {
		s := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/24000))
		binary.LittleEndian.PutUint16(pcm[2*i:], uint16(s))
	}

	const sid = "MZstream01"
	evs, err := c.Events(ctx, sid)
	if err != nil {
		log.Fatal(err)
	}
	defer evs.Close()
	w, err := c.Stream(ctx, sid, client.PCM(24000, 1), client.PlayOptions{ID: "tts-1"})
	if err != nil {
		log.Fatal(err)
	}
	// Write as the audio comes; it is heard as it arrives.
	if _, err := io.Copy(w, bytes.NewReader(pcm)); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil { // the end of the utterance
		log.Fatal(err)
	}
	end, err := evs.WaitPlayback(ctx, w.Playback().ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: heard %.1f s of %s\n", end.Kind, float64(end.Playback.HeardMs)/1000, end.Playback.Stream)
	// Output: playback.finished: heard 1.0 s of pcm_s16le/24000/1
}

func ExampleClient_Calls() {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c := client.New(nc, client.Options{})
	calls, err := c.Calls(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	for _, call := range calls {
		fmt.Println(call.StreamSid, "on", call.Edge, "for", call.Parameters["customer"])
	}
	// Output:
	// MZplay01 on edge-1 for ada
	// MZstream01 on edge-1 for grace
	// MZevents01 on edge-1 for alan
	// MZclear01 on edge-1 for barbara
	// MZlisten01 on edge-1 for edsger
	// MZlibrary01 on edge-1 for frances
}

func ExampleEvents_Next() {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c := client.New(nc, client.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const sid = "MZevents01"
	evs, err := c.Events(ctx, sid)
	if err != nil {
		log.Fatal(err)
	}
	defer evs.Close()
	if _, err := c.Play(ctx, sid, "hello.wav", client.PlayOptions{}); err != nil {
		log.Fatal(err)
	}
	for {
		ev, err := evs.Next(ctx)
		if err == io.EOF { // the call ended
			return
		}
		if err != nil {
			log.Fatal(err)
		}
		switch ev.Kind {
		case client.EventDTMF:
			fmt.Println("the caller pressed", ev.DTMF.Digit)
		case client.EventPlaybackStarted, client.EventPlaybackFinished:
			fmt.Println(ev.Kind, ev.Playback.Audio)
		}
		if ev.Kind == client.EventPlaybackFinished {
			return
		}
	}
	// Output:
	// playback.started hello.wav
	// playback.finished hello.wav
}

func ExampleClient_Clear() {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c := client.New(nc, client.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const sid = "MZclear01"
	evs, err := c.Events(ctx, sid)
	if err != nil {
		log.Fatal(err)
	}
	defer evs.Close()
	pb, err := c.Play(ctx, sid, "long.wav", client.PlayOptions{})
	if err != nil {
		log.Fatal(err)
	}
	for { // until the caller hears it
		ev, err := evs.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		if ev.Kind == client.EventPlaybackStarted {
			break
		}
	}
	// The caller said something: stop talking.
	if err := c.Clear(ctx, sid); err != nil {
		log.Fatal(err)
	}
	end, err := evs.WaitPlayback(ctx, pb.ID)
	if errors.Is(err, client.ErrInterrupted) {
		fmt.Println(end.Kind, "by", end.Playback.Reason)
	}
	// Output: playback.interrupted by clear
}

func ExampleError() {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c := client.New(nc, client.Options{})
	ctx := context.Background()

	_, err = c.Play(ctx, "MZplay01", "no-such-file.mp3", client.PlayOptions{})
	fmt.Println(errors.Is(err, client.ErrUnknownAudio))
	_, err = c.Play(ctx, "MZhungup", "hello.wav", client.PlayOptions{})
	fmt.Println(errors.Is(err, client.ErrUnknownStream))
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.Code)
	}
	// Output:
	// true
	// true
	// unknown_stream
}

func ExampleClient_Listen() {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c := client.New(nc, client.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	l, err := c.Listen(ctx, "MZlisten01", client.ListenOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	var heard []byte // μ-law, 8 kHz mono: 8000 bytes a second
	for len(heard) < 4000 {
		chunk, err := l.Next(ctx)
		if err != nil {
			log.Fatal(err)
		}
		heard = append(heard, chunk.Audio...)
	}
	fmt.Println("heard the caller for half a second")
	// Output: heard the caller for half a second
}
