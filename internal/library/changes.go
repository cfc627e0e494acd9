package library

import (
	"encoding/base64"
	"strings"
)

// AudioChanges is the subject on which the Object Store announces a change
// to an object of AudioBucket as it is made: an upload or a replacement
// (Put, `worker upload`, `nats object put`), or a deletion by an Object
// Store client (`nats object rm`). Each is published, with the object's new
// description, on "$O.callcast-audio.M." and the object's name in URL-safe
// base64 (see ChangedName); a plain NATS subscription hears it, with no
// JetStream consumer, and learns names and sizes only, never the audio.
//
// Remove is not announced: it leaves nothing behind in the bucket, not even
// the deletion marker that would carry the news.
const AudioChanges = audioChangesPrefix + ">"

const audioChangesPrefix = "$O." + AudioBucket + ".M."

// ChangedName returns the name of the object an AudioChanges message is
// about, from its subject, or false if the subject is not one of them.
func ChangedName(subject string) (string, bool) {
	enc, ok := strings.CutPrefix(subject, audioChangesPrefix)
	if !ok || enc == "" {
		return "", false
	}
	name, err := base64.URLEncoding.DecodeString(enc)
	if err != nil || len(name) == 0 {
		return "", false
	}
	return string(name), true
}
