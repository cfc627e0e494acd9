package audio

import "testing"

func TestMulawRoundTrip(t *testing.T) {
	for c := range 256 {
		code := byte(c)
		got := EncodeMulaw(DecodeMulaw(code))
		want := code
		if code == 0x7F { // negative zero decodes to 0, which encodes as 0xFF
			want = 0xFF
		}
		if got != want {
			t.Errorf("EncodeMulaw(DecodeMulaw(%#02x)) = %#02x, want %#02x", code, got, want)
		}
	}
}
