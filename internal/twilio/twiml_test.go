package twilio

import (
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// golden compares got with testdata/name, or rewrites the file with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\ngot  %s\nwant %s", path, got, want)
	}
}

func TestConnectStreamGolden(t *testing.T) {
	tests := []struct {
		name   string
		url    string
		params map[string]string
		say    string
	}{
		{name: "bare", url: "wss://voice.example.com/twilio/media"},
		{
			name:   "params",
			url:    "wss://voice.example.com/twilio/media",
			params: map[string]string{"token": "9f2c0a", "clipId": "welcome-01", "audio": "sample.mp3"},
		},
		{
			name:   "say",
			url:    "wss://voice.example.com/twilio/media",
			params: map[string]string{"token": "9f2c0a"},
			say:    "Please hold & listen <now>.",
		},
		{
			name:   "escaping",
			url:    "wss://voice.example.com/twilio/media",
			params: map[string]string{"quote\"d": `<a href="x">&'`, "unicode": "é\u00a0✓"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConnectStream(tt.url, tt.params, tt.say)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "connect_stream_"+tt.name+".xml", got)
			checkTwiML(t, got, tt.url, tt.params, tt.say)
		})
	}
}

// checkTwiML parses doc as XML and checks that it says what was asked,
// independently of the golden bytes.
func checkTwiML(t *testing.T, doc, url string, params map[string]string, say string) {
	t.Helper()
	var resp struct {
		XMLName xml.Name `xml:"Response"`
		Say     []string `xml:"Say"`
		Connect []struct {
			Stream []struct {
				URL    string `xml:"url,attr"`
				Params []struct {
					Name  string `xml:"name,attr"`
					Value string `xml:"value,attr"`
				} `xml:"Parameter"`
			} `xml:"Stream"`
		} `xml:"Connect"`
	}
	if err := xml.Unmarshal([]byte(doc), &resp); err != nil {
		t.Fatalf("TwiML does not parse: %v", err)
	}
	if say == "" && len(resp.Say) != 0 || say != "" && (len(resp.Say) != 1 || resp.Say[0] != say) {
		t.Errorf("Say = %q, want %q", resp.Say, say)
	}
	if say != "" && strings.Index(doc, "<Say>") > strings.Index(doc, "<Connect>") {
		t.Error("<Say> must come before <Connect>")
	}
	if len(resp.Connect) != 1 || len(resp.Connect[0].Stream) != 1 {
		t.Fatalf("want one <Connect><Stream>, got %+v", resp.Connect)
	}
	s := resp.Connect[0].Stream[0]
	if s.URL != url {
		t.Errorf("url = %q, want %q", s.URL, url)
	}
	got := map[string]string{}
	for _, p := range s.Params {
		got[p.Name] = p.Value
	}
	if len(got) != len(params) || len(s.Params) != len(params) {
		t.Errorf("parameters = %v, want %v", got, params)
	}
	for k, v := range params {
		if got[k] != v {
			t.Errorf("parameter %q = %q, want %q", k, got[k], v)
		}
	}
}

func TestConnectStreamParameterLimit(t *testing.T) {
	const url = "wss://voice.example.com/twilio/media"
	tests := []struct {
		name   string
		params map[string]string
		ok     bool
	}{
		{"499 characters", map[string]string{"token": strings.Repeat("x", MaxParameterLen-1-len("token"))}, true},
		{"500 characters", map[string]string{"token": strings.Repeat("x", MaxParameterLen-len("token"))}, false},
		{"long name", map[string]string{strings.Repeat("n", MaxParameterLen): ""}, false},
		{"empty name", map[string]string{"": "v"}, false},
		{"empty value", map[string]string{"k": ""}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := ConnectStream(url, tt.params, "")
			if tt.ok != (err == nil) {
				t.Fatalf("ConnectStream = %v, want ok=%v", err, tt.ok)
			}
			if err == nil {
				checkTwiML(t, doc, url, tt.params, "")
			} else if doc != "" {
				t.Errorf("document returned with an error: %q", doc)
			}
		})
	}
}
