package library

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestAudioChanges: an upload, a replacement and a deletion of an object
// are each heard on AudioChanges, by a plain subscription, with the
// object's name.
func TestAudioChanges(t *testing.T) {
	js := connectJS(t, runNATS(t, true))
	nc := js.Conn()
	changes := make(chan *nats.Msg, 64)
	if _, err := nc.ChanSubscribe(AudioChanges, changes); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	heard := func(what, want string) {
		t.Helper()
		select {
		case m := <-changes:
			if name, ok := ChangedName(m.Subject); !ok || name != want {
				t.Fatalf("%s: heard %q (%q, %v), want %q", what, m.Subject, name, ok, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: nothing heard on %s", what, AudioChanges)
		}
	}

	l := newLibrary(t, Options{JS: js})
	ctx := context.Background()
	const name = "prompts/welcome – ünïcode?.wav"
	if _, err := l.Put(ctx, name, bytes.NewReader(toneWAV(200*time.Millisecond, 440))); err != nil {
		t.Fatal(err)
	}
	heard("upload", name)
	if _, err := l.Put(ctx, name, bytes.NewReader(toneWAV(200*time.Millisecond, 880))); err != nil {
		t.Fatal(err)
	}
	heard("replacement", name)
	obs, err := js.ObjectStore(ctx, AudioBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := obs.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	heard("deletion by an Object Store client", name)
}

func TestChangedName(t *testing.T) {
	for subject, want := range map[string]string{
		"$O.callcast-audio.M.aGVsbG8ud2F2":         "hello.wav",
		"$O.callcast-audio.M.cHJvbXB0cy9hLm1wMw==": "prompts/a.mp3",
		"$O.callcast-audio.M.":                     "",
		"$O.callcast-audio.M.!!!":                  "",
		"$O.callcast-cache.M.aGVsbG8ud2F2":         "",
		"$O.callcast-audio.C.aGVsbG8ud2F2":         "",
		"callcast.stream.started":                  "",
	} {
		got, ok := ChangedName(subject)
		if got != want || ok != (want != "") {
			t.Errorf("ChangedName(%q) = %q, %v; want %q", subject, got, ok, want)
		}
	}
}
