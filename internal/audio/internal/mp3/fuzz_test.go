package mp3

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeFrame feeds arbitrary frames to the decoder, in both of its
// modes: whatever the side information and main data say, it must not
// panic (the pipeline recovers, but a panic is a bug) and must report the
// samples its header promises.
func FuzzDecodeFrame(f *testing.F) {
	for _, name := range []string{"onset-44k-stereo-vbr.mp3", "onset-16k-mono-cbr.mp3", "mpeg25-8k.mp3", "speech-22k-mono-vbr.mp3", "sideinfo-corrupt.mp3"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), 6000)])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var st, mo Decoder
		var pcm [2 * 1152]int16
		var mono [1152]float32
		for i := 0; i+4 <= len(data); {
			h, ok := ParseHeader(data[i:])
			if !ok {
				i++
				continue
			}
			// The frame as far as the input goes: a short one is an error.
			frame := data[i:min(i+h.Size, len(data))]
			i += len(frame)
			mo.NextMainDataBegin(MainDataBegin(data[i:]))
			if hh, err := st.DecodeFrame(frame, pcm[:]); err == nil && hh.Samples*hh.Channels > len(pcm) {
				t.Fatalf("header %+v", hh)
			} else if err != nil {
				st.Reset()
			}
			if _, err := mo.DecodeFrameMono(frame, mono[:]); err != nil {
				mo.ConcealMono(h, mono[:])
			}
			for _, v := range mono[:h.Samples] {
				if v != v { // NaN
					t.Fatal("NaN out of the decoder")
				}
			}
		}
	})
}
