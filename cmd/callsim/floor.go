package main

import (
	"context"
	"io"
	"time"

	"github.com/callcast/callcast/internal/callsim"
	"github.com/callcast/callcast/internal/cli"
)

const floorHelp = `Serves the floor callcast is measured against: the least a server can do
for a Twilio media stream. On start it sends the clip (transcoded once, at
start-up) in 200 ms media messages each followed by a mark, at once up to
the lead ahead of the mark echoes, then one message per echo: no bus, no
worker, no transcoding. Any path takes the WebSocket; /metrics serves the
process's CPU and memory.`

// floorCommand is `callsim floor`.
func floorCommand(stderr io.Writer) cli.Command {
	return cli.Command{
		Name: "floor", Args: "[-addr ADDR] [-audio FILE] [-lead D]", Help: floorHelp,
		Summary: "serve the floor: a clip paced by mark echoes, no bus, no worker, no transcoding",
		Setup: func(f *cli.Flags) cli.RunFunc {
			var (
				addr, clip string
				lead       time.Duration
				log        cli.Log
			)
			f.String(&addr, "addr", "FLOOR_ADDR", "127.0.0.1:8090", "listen address")
			f.String(&clip, "audio", "FLOOR_AUDIO", "audio/sample.mp3", "the clip every call gets (MP3 or WAV)")
			f.DurationPositive(&lead, "lead", "PLAYBACK_LEAD", 2*time.Second, "how far sending may run ahead of the mark echoes")
			log.Define(f)
			return func(ctx context.Context, args []string) error {
				if err := cli.NoArgs(args); err != nil {
					return err
				}
				l, err := log.Logger(stderr)
				if err != nil {
					return cli.Usage(err)
				}
				return callsim.RunFloor(ctx, addr, clip, lead, l, nil)
			}
		},
	}
}
