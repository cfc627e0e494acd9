// Package client is the Go client of callcast's bus contract (the "Bus
// contract" section of callcast's README): it plays files into live phone
// calls, streams a producer's own audio into them, interrupts and clears
// them, follows their events, lists the live calls and listens to callers,
// so that integrators never write the JSON and headers by hand.
//
// A Client wraps a *nats.Conn that the caller connects (and closes):
//
//	nc, _ := nats.Connect("nats://127.0.0.1:4222")
//	c := client.New(nc, client.Options{})
//	pb, err := c.Play(ctx, "MZ…", "welcome.mp3", client.PlayOptions{})
//
// Audio formats a producer may stream (Format): "mulaw" (G.711 μ-law,
// 8000 Hz mono, one byte per sample), "pcm_s16le" (signed 16-bit
// little-endian PCM, 8000–48000 Hz, 1 or 2 channels interleaved), "mp3" (an
// MPEG audio byte stream, cut anywhere) and "wav" (a RIFF WAVE file, header
// first). Caller audio (Listen) is G.711 μ-law, 8000 Hz mono: 160 bytes =
// 20 ms.
//
// Every method that waits takes a context first; without a deadline,
// Options.Timeout bounds it. Errors answered by callcast are *Error values
// that match the Err* sentinels of their code with errors.Is.
package client

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// Options configures a Client. The zero value is ready to use.
type Options struct {
	// Timeout bounds a request (play, listen, calls, a flush) when its
	// context has no deadline. Zero: 5 s.
	Timeout time.Duration
	// CallsQuiet is how long Calls waits for more edges to answer after
	// the last answer. Zero: 200 ms.
	CallsQuiet time.Duration
	// ChunkSize bounds the audio bytes of one message a StreamWriter
	// publishes. Zero, or more than 64 KiB: 64 KiB. It is lowered to fit
	// the NATS server's maximum payload.
	ChunkSize int
}

// Defaults of Options.
const (
	DefaultTimeout    = 5 * time.Second
	DefaultCallsQuiet = 200 * time.Millisecond
	DefaultChunkSize  = 64 << 10
)

// headerRoom is what the headers of an audio message take, at most.
const headerRoom = 256

// Client talks to callcast over one NATS connection. It is safe for
// concurrent use.
type Client struct {
	nc   *nats.Conn
	opts Options
}

// New returns a Client using nc, which stays the caller's to close.
func New(nc *nats.Conn, opts Options) *Client {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.CallsQuiet <= 0 {
		opts.CallsQuiet = DefaultCallsQuiet
	}
	if opts.ChunkSize <= 0 || opts.ChunkSize > DefaultChunkSize {
		opts.ChunkSize = DefaultChunkSize
	}
	return &Client{nc: nc, opts: opts}
}

// Conn returns the client's NATS connection.
func (c *Client) Conn() *nats.Conn { return c.nc }

// withTimeout gives ctx the client's timeout unless it has a deadline.
func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.opts.Timeout)
}

// request sends a request and waits for its one reply.
func (c *Client) request(ctx context.Context, subject string, data []byte) (*nats.Msg, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	msg, err := c.nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return nil, err
	}
	return msg, nil
}

// flush waits until the server has what was published so far.
func (c *Client) flush(ctx context.Context) error {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	return c.nc.FlushWithContext(ctx)
}

// chunkSize is the payload of one audio message.
func (c *Client) chunkSize() int {
	n := c.opts.ChunkSize
	if max := int(c.nc.MaxPayload()) - headerRoom; max > 0 && n > max {
		n = max
	}
	return n
}

// opError wraps err, from NATS or a context, with the operation.
func opError(op string, err error) error { return fmt.Errorf("client: %s: %w", op, err) }
