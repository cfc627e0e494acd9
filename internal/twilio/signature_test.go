package twilio

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/twilio/twilio-go/client"
)

// Twilio's published example (https://www.twilio.com/docs/usage/security).
func TestSignPublishedVector(t *testing.T) {
	params := map[string]string{
		"CallSid": "CA1234567890ABCDE",
		"Caller":  "+14158675310",
		"Digits":  "1234",
		"From":    "+14158675310",
		"To":      "+18005551212",
	}
	const url = "https://example.com/myapp.php?foo=1&bar=2"
	const want = "L/OH5YylLD5NRKLltdqwSvS0BnU="
	if got := Sign("12345", url, params); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	v := client.NewRequestValidator("12345")
	if !v.Validate(url, params, want) {
		t.Fatal("twilio-go rejects the published vector")
	}
	if v.Validate(url, params, Sign("54321", url, params)) {
		t.Fatal("a signature made with another token validates")
	}
}

// FuzzCheckPayload: CheckPayload accepts exactly the non-empty strings
// that decode as padded standard base64 (without the line breaks Go's
// decoder skips).
func FuzzCheckPayload(f *testing.F) {
	for _, s := range []string{"", "AA==", "AAA=", "AAAA", "A===", "=AAA", "AA=A", "-_8=", "//7+", "AB==", "AAAAAAAA-AAAAAA=", "AAAAAAAAAAAAA\nA=", "AAAAAAAAAAAA//7+", "AAAAAAAAAAAA\"AAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := base64.StdEncoding.DecodeString(s)
		want := s != "" && err == nil && !strings.ContainsAny(s, "\r\n")
		if got := CheckPayload(s) == nil; got != want {
			t.Fatalf("CheckPayload(%q) ok=%v, base64 decodes=%v", s, got, want)
		}
	})
}
