package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callcast/callcast/client"
)

func ExampleLibrary() {
	// The library needs the worker's permissions (deploy/nats/auth.conf:
	// user worker, and the workers' inbox prefix).
	nc, err := nats.Connect(natsURL, nats.CustomInboxPrefix(client.WorkerInboxPrefix))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	c := client.New(nc, client.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lib, err := c.Library(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer lib.Close()

	f, err := os.Open(promptFile) // e.g. thanks.wav
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	p, err := lib.Upload(ctx, "prompts/thanks.wav", f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("uploaded %s: %s, %d Hz, %s, cached %v\n", p.Name, p.Format, p.SampleRate, p.Duration, p.Cached)
	prompts, err := lib.List(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range prompts {
		fmt.Printf("%s\t%d bytes\n", p.Name, p.Size)
	}

	// Every worker plays it by name now.
	const sid = "MZlibrary01"
	evs, err := c.Events(ctx, sid)
	if err != nil {
		log.Fatal(err)
	}
	defer evs.Close()
	pb, err := c.Play(ctx, sid, "prompts/thanks.wav", client.PlayOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := evs.WaitPlayback(ctx, pb.ID); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("played %d ms\n", pb.DurationMs)

	// Removed, it is no longer playable.
	if _, err := lib.Remove(ctx, "prompts/thanks.wav"); err != nil {
		log.Fatal(err)
	}
	_, err = c.Play(ctx, sid, "prompts/thanks.wav", client.PlayOptions{})
	fmt.Println("after rm:", errors.Is(err, client.ErrUnknownAudio))
	// Output:
	// uploaded prompts/thanks.wav: wav-mulaw, 8000 Hz, 1.5s, cached true
	// prompts/thanks.wav	12058 bytes
	// played 1500 ms
	// after rm: true
}
