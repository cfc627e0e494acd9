package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/callcast/callcast/internal/bus"
	"github.com/callcast/callcast/internal/library"
)

func TestUpload(t *testing.T) {
	ns, err := bus.RunServer(bus.ServerOptions{Listen: "127.0.0.1:0", JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	url := ns.ClientURL()

	var stdout, stderr bytes.Buffer
	err = runUpload(context.Background(), []string{"-nats", url, "-name", "prompts/hello.mp3", testdata + "speech-22k-mono-vbr.mp3"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("upload: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"→ callcast-audio/prompts/hello.mp3", "mp3, 22050 Hz, mono", "cached true", "sha256 "} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary %q lacks %q", stdout.String(), want)
		}
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := js.ObjectStore(context.Background(), library.AudioBucket)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := obs.GetInfo(context.Background(), "prompts/hello.mp3"); err != nil || info.Size == 0 {
		t.Fatalf("object: %+v, %v", info, err)
	}

	noJS, err := bus.RunServer(bus.ServerOptions{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { noJS.Shutdown(); noJS.WaitForShutdown() })
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no file", []string{"-nats", url}, "want exactly one file"},
		{"missing file", []string{"-nats", url, "nope.mp3"}, "no such file"},
		{"stdin without a name", []string{"-nats", url, "-"}, "needs -name"},
		{"bad name", []string{"-nats", url, "-name", "../x.mp3", testdata + "speech-22k-mono-vbr.mp3"}, "not allowed"},
		{"not audio", []string{"-nats", url, testdata + "not-audio.txt"}, "bad input"},
		{"no JetStream", []string{"-nats", noJS.ClientURL(), testdata + "speech-22k-mono-vbr.mp3"}, "no JetStream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runUpload(context.Background(), tt.args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want one containing %q", err, tt.want)
			}
		})
	}
}
