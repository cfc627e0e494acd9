package twilio

import (
	"fmt"
	"sort"

	"github.com/beevik/etree"
	"github.com/twilio/twilio-go/twiml"
)

// MaxParameterLen is Twilio's limit on a <Parameter>'s name and value combined.
const MaxParameterLen = 500

// ConnectStream returns the TwiML document that connects the call to a
// bidirectional media stream at streamURL (a wss:// URL without a query
// string), passing params as <Parameter> elements, which Twilio hands back in
// start.customParameters. A non-empty say is spoken first.
func ConnectStream(streamURL string, params map[string]string, say string) (string, error) {
	names := make([]string, 0, len(params))
	for name, value := range params {
		if name == "" {
			return "", fmt.Errorf("twilio: parameter with an empty name")
		}
		if len(name)+len(value) >= MaxParameterLen {
			return "", fmt.Errorf("twilio: parameter %q: name and value must be under %d characters", name, MaxParameterLen)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	inner := make([]twiml.Element, 0, len(names))
	for _, name := range names {
		inner = append(inner, twiml.VoiceParameter{Name: name, Value: params[name]})
	}
	var verbs []twiml.Element
	if say != "" {
		verbs = append(verbs, twiml.VoiceSay{Message: say})
	}
	verbs = append(verbs, twiml.VoiceConnect{
		InnerElements: []twiml.Element{twiml.VoiceStream{Url: streamURL, InnerElements: inner}},
	})
	// twiml.Voice writes each element's attributes in map order, so the
	// same input could give different bytes; sort them.
	doc, response := twiml.CreateDocument()
	twiml.AddAllVerbs(response, verbs)
	sortAttrs(response)
	return twiml.ToXML(doc)
}

func sortAttrs(e *etree.Element) {
	e.SortAttrs()
	for _, c := range e.ChildElements() {
		sortAttrs(c)
	}
}
