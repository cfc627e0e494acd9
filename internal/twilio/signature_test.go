package twilio

import (
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
