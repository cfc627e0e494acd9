package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestLeadBounds: a lead too short to pace by marks or longer than MaxLead
// is refused with the range in the error.
func TestLeadBounds(t *testing.T) {
	var nc *nats.Conn // New refuses before it touches the connection
	for _, lead := range []time.Duration{100 * time.Millisecond, 399 * time.Millisecond, MaxLead + time.Second} {
		if _, err := New(nc, Config{Lead: lead, AudioDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "want 400ms to 1m0s") {
			t.Errorf("lead %v: err %v, want a range error", lead, err)
		}
	}
}
