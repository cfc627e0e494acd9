package twilio

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"sort"
)

// HeaderSignature is the request header carrying Twilio's signature.
const HeaderSignature = "X-Twilio-Signature"

// Sign computes Twilio's request signature: base64 of HMAC-SHA1, keyed by
// the account's auth token, over the full URL Twilio requested followed by
// every POST parameter, sorted by name, as name then value. For GET and for
// the media stream upgrade, params is empty. Twilio's side of a test uses it
// to sign what it sends; the edge checks signatures with twilio-go's
// request validator.
func Sign(authToken, url string, params map[string]string) string {
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	sort.Strings(names)
	h := hmac.New(sha1.New, []byte(authToken))
	h.Write([]byte(url))
	for _, name := range names {
		h.Write([]byte(name))
		h.Write([]byte(params[name]))
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}
