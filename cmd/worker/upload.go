package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/cli"
	"github.com/callcast/callcast/internal/library"
)

const uploadHelp = `Stores FILE (MP3 or WAV; - for standard input, with -name) in the JetStream
Object Store bucket callcast-audio, where every worker plays it by NAME
(default: FILE's base name), replacing an object of that name. The audio is
checked and transcoded first and its μ-law goes into the shared transcode
cache, so that its first playback anywhere needs no transcoding. It connects
as a worker does (the worker's credentials may use the buckets).`

// uploadCommand is `worker upload`.
func uploadCommand(stdout io.Writer) cli.Command {
	return cli.Command{
		Name: "upload", Args: "[-name NAME] FILE", Help: uploadHelp,
		Summary: "store audio in the shared library (bucket callcast-audio), playable by name",
		Setup: func(f *cli.Flags) cli.RunFunc {
			var (
				nopts   bus.ConnOptions
				name    string
				timeout time.Duration
			)
			f.String(&nopts.URL, "nats", "NATS_URL", "nats://127.0.0.1:4222", "NATS URL(s), comma-separated")
			f.NATSCredentials(&nopts.Creds, &nopts.User, &nopts.Password, &nopts.Token)
			f.StringVar(&name, "name", "", "the audio's name; default: FILE's base name")
			f.DurationVar(&timeout, "timeout", time.Minute, "give up after this long")
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return cli.Usagef("upload: want exactly one file")
				}
				return upload(ctx, nopts, args[0], name, timeout, stdout)
			}
		},
	}
}

// runUpload runs the upload command with args.
func runUpload(ctx context.Context, args []string, stdout, _ io.Writer) error {
	return uploadCommand(stdout).Run(ctx, args)
}

// upload stores the file in (- for standard input) under name.
func upload(ctx context.Context, nopts bus.ConnOptions, in, name string, timeout time.Duration, stdout io.Writer) error {
	if name == "" {
		if in == "-" {
			return cli.Usagef("upload: standard input needs -name")
		}
		name = filepath.Base(in)
	}
	if err := library.CheckName(name); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	var src io.Reader = os.Stdin
	if in != "-" {
		file, err := os.Open(in)
		if err != nil {
			return fmt.Errorf("upload: %w", err)
		}
		defer file.Close()
		src = file
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nopts.Name = "callcast-upload"
	nc, err := bus.Connect(nopts)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	bindCtx, cancelBind := context.WithTimeout(ctx, 10*time.Second)
	defer cancelBind()
	lib, err := library.New(bindCtx, library.Options{JS: js, MemoryBytes: -1})
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	defer lib.Close()
	if !lib.Shared() {
		return fmt.Errorf("upload: no JetStream Object Store reachable at %s", nopts.URL)
	}
	start := time.Now()
	up, err := lib.Put(ctx, name, src)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	fmt.Fprintf(stdout, "%s → %s/%s: %s, %d Hz, %s, %s, %d bytes, sha256 %s, cached %v, in %s\n",
		in, library.AudioBucket, up.Name, up.Info.Format, up.Info.SampleRate, channels(up.Info.Channels),
		fmtSeconds(up.Info.Duration), up.Size, up.SHA256, up.Cached, time.Since(start).Round(time.Millisecond))
	return nil
}
