package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/callcast/callcast/internal/cli"
	"github.com/callcast/callcast/internal/library"
)

const uploadHelp = `Stores FILE (MP3 or WAV; - for standard input, with -name) in the JetStream
Object Store bucket callcast-audio, where every worker plays it by NAME
(default: FILE's base name), replacing an object of that name. The audio is
checked and transcoded first and its μ-law goes into the shared transcode
cache, so that its first playback anywhere needs no transcoding. Past
LIBRARY_MAX_BYTES it is refused, with nothing written. The same as
'worker library upload'; see 'worker library -h' for the other verbs. It
connects as a worker does (under deploy/nats/auth.conf, as user worker).`

// uploadCommand is `worker upload`, kept beside `worker library upload`.
func uploadCommand(stdout io.Writer) cli.Command {
	return cli.Command{
		Name: "upload", Args: "[-name NAME] FILE", Help: uploadHelp,
		Summary: "store audio in the shared library (same as 'library upload')",
		Setup: func(f *cli.Flags) cli.RunFunc {
			var lf libraryFlags
			f.String(&lf.nats.URL, "nats", "NATS_URL", "nats://127.0.0.1:4222", "NATS URL(s), comma-separated")
			f.NATSCredentials(&lf.nats.Creds, &lf.nats.User, &lf.nats.Password, &lf.nats.Token)
			f.StringVar(&lf.name, "name", "", "the audio's name; default: FILE's base name")
			f.BoolVar(&lf.json, "json", false, "print JSON instead of a summary")
			f.DurationVar(&lf.timeout, "timeout", time.Minute, "give up after this long")
			defineBucketFlags(f, &lf)
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return cli.Usagef("upload: want exactly one file")
				}
				return upload(ctx, lf, args[0], lf.name, stdout)
			}
		},
	}
}

// runUpload runs the upload command with args.
func runUpload(ctx context.Context, args []string, stdout, _ io.Writer) error {
	return uploadCommand(stdout).Run(ctx, args)
}

// upload stores the file in (- for standard input) under name.
func upload(ctx context.Context, lf libraryFlags, in, name string, stdout io.Writer) error {
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

	ctx, cancel := context.WithTimeout(ctx, lf.timeout)
	defer cancel()
	ctx, lib, done, err := openLibrary(ctx, lf)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	defer done()
	start := time.Now()
	up, err := lib.Put(ctx, name, src)
	if err != nil {
		return fmt.Errorf("upload: %w", lib.explain(err))
	}
	if lf.json {
		return printObject(stdout, up, true)
	}
	fmt.Fprintf(stdout, "%s → %s/%s: %s, %d Hz, %s, %s, %d bytes, sha256 %s, cached %v, in %s\n",
		in, library.AudioBucket, up.Name, up.Info.Format, up.Info.SampleRate, channels(up.Info.Channels),
		fmtSeconds(up.Info.Duration), up.Size, up.SHA256, up.Cached, time.Since(start).Round(time.Millisecond))
	return nil
}
