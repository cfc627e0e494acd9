package callsim_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/callcast/callcast/internal/callsim"
)

// A test places a call, waits until the product has played its clip, and
// checks what the caller heard.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	call, err := callsim.Dial(ctx, callsim.Config{
		URL:        "ws://127.0.0.1:8080/media-stream",
		Parameters: map[string]string{"audio": "sample.mp3"},
		Speed:      10, // play ten times faster than real time
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// Done when everything has played and the server went quiet, or
	// when the server closed the stream.
	if err := call.WaitIdle(ctx, time.Second); err != nil && !errors.Is(err, callsim.ErrClosed) {
		fmt.Println(err)
	}
	if err := call.Hangup(ctx); err != nil {
		fmt.Println(err)
	}
	st := call.Stats()
	fmt.Printf("heard %d bytes, %d underruns, %d protocol errors\n", st.Played, st.Underruns, st.Errors)
	f, err := os.Create("call.wav")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	if err := callsim.WriteWAV(f, call.Played()); err != nil {
		fmt.Println(err)
	}
}
