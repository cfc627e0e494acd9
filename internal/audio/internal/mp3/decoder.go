package mp3

import (
	"errors"
	"fmt"
	"math"
)

// Errors of DecodeFrame.
var (
	// ErrCorrupt: the frame's side information or main data is
	// inconsistent; its audio is lost.
	ErrCorrupt = errors.New("mp3: corrupt frame")
	// ErrNotLayer3: the frame is not an MPEG Layer III frame this decoder
	// can read (another layer, free format, reserved values).
	ErrNotLayer3 = errors.New("mp3: not a Layer III frame")
)

// Header is what a frame header says.
type Header struct {
	LSF        bool // MPEG-2 or MPEG-2.5: one granule a frame, LSF scalefactors
	MPEG25     bool
	CRC        bool
	SampleRate int
	Channels   int
	Size       int // bytes, header included
	Samples    int // samples per channel
	mode       int // 0 stereo, 1 joint stereo, 2 dual channel, 3 mono
	modeExt    int
	rateIndex  int // 0..8, see sfbLong
	sideInfo   int // bytes
}

var bitratesL3 = [2][16]int{
	{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0},
	{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0},
}

// ParseHeader decodes the 4-byte header at b[0:]. ok is false unless it
// is a Layer III header with a bitrate and a sample rate.
func ParseHeader(b []byte) (h Header, ok bool) {
	if len(b) < 4 || b[0] != 0xFF || b[1]&0xE0 != 0xE0 || (b[1]>>1)&3 != 1 {
		return h, false
	}
	ver := (b[1] >> 3) & 3
	bri := int(b[2] >> 4)
	ri := int(b[2]>>2) & 3
	if ver == 1 || bri == 0 || bri == 15 || ri == 3 {
		return h, false
	}
	h.CRC = b[1]&1 == 0
	h.LSF = ver != 3
	h.MPEG25 = ver == 0
	h.SampleRate = [3]int{44100, 48000, 32000}[ri]
	h.rateIndex = ri
	switch ver {
	case 2:
		h.SampleRate /= 2
		h.rateIndex += 3
	case 0:
		h.SampleRate /= 4
		h.rateIndex += 6
	}
	h.mode = int(b[3] >> 6)
	h.modeExt = int(b[3]>>4) & 3
	h.Channels = 2
	if h.mode == 3 {
		h.Channels = 1
	}
	pad := int(b[2]>>1) & 1
	if h.LSF {
		h.Size = 72*bitratesL3[1][bri]*1000/h.SampleRate + pad
		h.Samples = 576
		h.sideInfo = [2]int{17, 9}[h.Channels&1]
	} else {
		h.Size = 144*bitratesL3[0][bri]*1000/h.SampleRate + pad
		h.Samples = 1152
		h.sideInfo = [2]int{32, 17}[h.Channels&1]
	}
	return h, true
}

func (h Header) granules() int {
	if h.LSF {
		return 1
	}
	return 2
}

// stream identifies the frames that may share a bit reservoir.
func (h Header) stream() int { return h.rateIndex }

// granule is one granule's side information for one channel, and what
// decoding it found.
type granule struct {
	part23      int
	bigValues   int
	globalGain  int
	sfCompress  int
	blockType   int // 0 normal, 1 start, 2 short, 3 stop
	mixed       bool
	tableSelect [3]int
	subGain     [3]int
	region1     int // first line of region 1
	region2     int // first line of region 2
	preflag     bool
	sfScale     int
	count1Table int

	bands *bandList
	scf   [40]uint8 // scalefactors in band order
	ist   [40]uint8 // intensity positions (right channel), 255: none
	limit int       // lines from here up are zero
}

// Decoder decodes MPEG-1, MPEG-2 and MPEG-2.5 Layer III frames. The zero
// value is ready to use; a Decoder allocates nothing after its first
// frame.
type Decoder struct {
	si      [2][2]granule // [granule][channel]
	mdBegin int
	scfsi   [2][4]bool

	res    [resCap]byte // bit reservoir: recent main data
	resLen int

	xr      [2][576]float32 // the granule's spectrum, then its subband samples
	overlap [2][32][18]float32
	olBands [2]int       // subbands with non-zero overlap
	synth   [3]synthesis // left, right, and the mono mix
	// The mono mix's overlap (DecodeFrameMono).
	olMix      [32][18]float32
	olMixBands int

	last    Header
	started bool
	silent  bool // the frame's main data is not in the reservoir
	fadeIn  bool // a frame was concealed: fade in the next that has data
	// nextBegin is the next frame's main_data_begin + 1, 0 if unknown.
	nextBegin int
	bits      bitReader
}

const (
	maxReach = 511 // main_data_begin's largest value
	resCap   = maxReach + 2881 + 16
)

// Reset forgets everything carried from frame to frame: the bit
// reservoir, the overlap of the hybrid filter bank and the synthesis
// filter's history. The next frame decodes as the first of a stream.
func (d *Decoder) Reset() {
	d.resLen = 0
	d.overlap = [2][32][18]float32{}
	d.olBands = [2]int{}
	d.olMix = [32][18]float32{}
	d.olMixBands = 0
	d.synth = [3]synthesis{}
	d.started = false
	d.fadeIn = false
}

// DecodeFrame decodes one whole frame (header included) into pcm, which
// must hold h.Samples·h.Channels values: 16-bit samples, interleaved when
// stereo. It returns the header. A frame whose main data begins before the
// bit reservoir does (the first frames of a stream, or after Reset)
// decodes as silence. After an error pcm holds nothing useful and the
// Decoder should be Reset.
func (d *Decoder) DecodeFrame(frame []byte, pcm []int16) (Header, error) {
	h, err := d.begin(frame)
	if err != nil {
		return h, err
	}
	if len(pcm) < h.Samples*h.Channels {
		return h, fmt.Errorf("mp3: output buffer of %d samples for %d", len(pcm), h.Samples*h.Channels)
	}
	for gr := range h.granules() {
		if err := d.spectrum(gr, h); err != nil {
			return h, err
		}
		out := pcm[gr*576*h.Channels:]
		for ch := range h.Channels {
			d.hybrid(gr, ch)
			d.synth[ch].run(&d.xr[ch], out[ch:], h.Channels)
		}
	}
	return h, nil
}

// DecodeFrameMono decodes one whole frame into out (at least h.Samples
// values), mixed down to mono: the average of the channels, in units of
// 16-bit samples, neither rounded nor clipped. The channels are mixed
// before the hybrid and synthesis filter banks, which are linear, so a
// stereo frame costs one IMDCT and one synthesis instead of two. A Decoder
// should be used with DecodeFrame or with DecodeFrameMono, not both.
func (d *Decoder) DecodeFrameMono(frame []byte, out []float32) (Header, error) {
	h, err := d.begin(frame)
	if err != nil {
		return h, err
	}
	if len(out) < h.Samples {
		return h, fmt.Errorf("mp3: output buffer of %d samples for %d", len(out), h.Samples)
	}
	for gr := range h.granules() {
		if err := d.spectrum(gr, h); err != nil {
			return h, err
		}
		d.mixHybrid(gr, h.Channels)
		d.synth[2].runFloat(&d.xr[0], out[gr*576:])
		if d.fadeIn && !d.silent {
			// The first granule after a concealed frame has no overlap
			// to cancel its alias: fade it in.
			for i, w := range fadeRamp {
				out[gr*576+i] *= w
			}
			d.fadeIn = false
		}
	}
	return h, nil
}

// mixHybrid runs the hybrid filter bank of granule gr on the average of
// its channels, into d.xr[0], with the mix's own overlap: both stages are
// linear. When the channels' block types agree (nearly always) the
// spectra are mixed first and transformed once.
func (d *Decoder) mixHybrid(gr, nch int) {
	g0, a := &d.si[gr][0], &d.xr[0]
	if nch == 1 {
		hybridWith(g0, a, &d.olMix, &d.olMixBands)
		return
	}
	g1, b := &d.si[gr][1], &d.xr[1]
	if g0.blockType == g1.blockType && g0.mixed == g1.mixed {
		lim := max(g0.limit, g1.limit)
		for i := range lim {
			a[i] = 0.5 * (a[i] + b[i])
		}
		g0.limit = lim
		hybridWith(g0, a, &d.olMix, &d.olMixBands)
		return
	}
	for i := range 576 {
		a[i] *= 0.5
		b[i] *= 0.5
	}
	hybridWith(g0, a, &d.olMix, &d.olMixBands)
	var ol [32][18]float32
	bands := 0
	hybridWith(g1, b, &ol, &bands)
	for i := range 576 {
		a[i] += b[i]
	}
	for sb := range bands {
		for i := range 18 {
			d.olMix[sb][i] += ol[sb][i]
		}
	}
	d.olMixBands = max(d.olMixBands, bands)
}

// begin parses the frame's header and side information and assembles its
// main data behind the bit reservoir; spectrum then decodes the granules
// one at a time.
func (d *Decoder) begin(frame []byte) (Header, error) {
	h, ok := ParseHeader(frame)
	if !ok {
		return h, ErrNotLayer3
	}
	if len(frame) < h.Size {
		return h, fmt.Errorf("%w: %d of %d bytes", ErrCorrupt, len(frame), h.Size)
	}
	if d.started && h.stream() != d.last.stream() {
		d.Reset() // another stream: nothing carries over
	}
	d.last, d.started = h, true
	off := 4
	if h.CRC {
		off += 2
	}
	if err := d.readSideInfo(frame[off:off+h.sideInfo], h); err != nil {
		return h, err
	}
	main := frame[off+h.sideInfo : h.Size]
	// The main data: mdBegin bytes of the reservoir, then this frame's.
	silent := d.mdBegin > d.resLen
	if d.resLen+len(main)+8 > len(d.res) {
		keep := min(d.resLen, maxReach)
		copy(d.res[:], d.res[d.resLen-keep:d.resLen])
		d.resLen = keep
	}
	start := max(d.resLen-d.mdBegin, 0)
	copy(d.res[d.resLen:], main)
	d.resLen += len(main)
	clear(d.res[d.resLen : d.resLen+8])
	d.silent = silent
	d.bits = bitReader{buf: d.res[:d.resLen+8], pos: start * 8}
	if silent {
		return h, nil
	}
	need := 0
	for gr := range h.granules() {
		for ch := range h.Channels {
			need += d.si[gr][ch].part23
		}
	}
	avail := d.resLen - start
	if d.nextBegin > 0 {
		// The next frame's main data begins nextBegin-1 bytes before the
		// end of this one's: this frame's ends there at the latest.
		avail -= d.nextBegin - 1
	}
	d.nextBegin = 0
	if need > avail*8 {
		return h, fmt.Errorf("%w: %d bits of main data, %d present", ErrCorrupt, need, avail*8)
	}
	return h, nil
}

// NextMainDataBegin tells the decoder, before DecodeFrame or
// DecodeFrameMono, where the frame after the next one to decode starts its
// main data (its main_data_begin, from MainDataBegin), so that side
// information claiming more main data than the frame has is caught as
// corrupt rather than decoded as noise. It holds for one frame.
func (d *Decoder) NextMainDataBegin(n int) { d.nextBegin = max(n+1, 0) }

// MainDataBegin returns the main_data_begin field of the frame that b
// starts with, or -1.
func MainDataBegin(b []byte) int {
	h, ok := ParseHeader(b)
	off := 4
	if h.CRC {
		off += 2
	}
	if !ok || len(b) < off+2 {
		return -1
	}
	v := int(b[off])<<8 | int(b[off+1])
	if h.LSF {
		return v >> 8
	}
	return v >> 7
}

// ConcealMono stands in for a frame with header h that would not decode:
// it drops the bit reservoir (which may hold the bad frame's data, so the
// frames that lean on it decode as silence) and decodes h.Samples samples
// of a silent spectrum into out. What the filter banks still hold of the
// frames before fades out over the first granule instead of stopping
// with a click, and the frames after fade in from silence.
func (d *Decoder) ConcealMono(h Header, out []float32) {
	d.resLen = 0
	if h.Channels == 0 {
		h.Channels = 1
	}
	for gr := range h.granules() {
		g := &d.si[gr][0]
		*g = granule{bands: &bandLists[h.rateIndex][0]}
		clear(d.xr[0][:])
		d.mixHybrid(gr, 1)
		d.synth[2].runFloat(&d.xr[0], out[gr*576:])
	}
	// Half of what the filter banks still held is time-domain alias that
	// the lost frame would have cancelled: fade it out within the first
	// granule. By the end of it the banks are empty.
	o := out[:h.Samples]
	for i := range 576 {
		o[i] *= fadeRamp[575-i]
	}
	clear(o[576:])
	d.last, d.started = h, true
	d.fadeIn = true
}

// fadeRamp rises from 0 to 1 over a granule (sin²).
var fadeRamp = func() (r [576]float32) {
	for i := range r {
		s := math.Sin(math.Pi / 2 * (float64(i) + 0.5) / 576)
		r[i] = float32(s * s)
	}
	return r
}()
