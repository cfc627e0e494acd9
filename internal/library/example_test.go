package library

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// A source is transcoded on its first playback and served from the cache
// after that.
func ExampleLibrary_Open() {
	dir, err := os.MkdirTemp("", "audio")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "hello.wav"), toneWAV(time.Second, 440), 0o644); err != nil {
		panic(err)
	}
	ctx := context.Background()
	lib, err := New(ctx, Options{Dir: dir}) // with JS set, also the Object Store
	if err != nil {
		panic(err)
	}
	defer lib.Close()

	for range 2 {
		s, err := lib.Open(ctx, "hello.wav")
		if err != nil {
			panic(err)
		}
		n, err := io.Copy(io.Discard, s) // a worker sends it in 20 ms frames
		s.Close()
		if err != nil {
			panic(err)
		}
		fmt.Printf("%d bytes of μ-law (%s), cached: %v\n", n, s.Info().Duration, s.Cached())
	}
	// Output:
	// 8000 bytes of μ-law (1s), cached: false
	// 8000 bytes of μ-law (1s), cached: true
}
