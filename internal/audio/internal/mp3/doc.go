// Package mp3 decodes MPEG-1, MPEG-2 and MPEG-2.5 Audio Layer III (ISO/IEC
// 11172-3, 13818-3) frame by frame: whole frames in (header included, as
// a frame walker delivers them), 16-bit PCM or a float mono mix out.
//
// It decodes the ISO/IEC 11172-4 and 13818-4 compliance bitstreams at
// "full accuracy" (TestConformance, against ../shared/mp3-conformance),
// including MPEG-1 and MPEG-2 (LSF) intensity stereo and streams that
// switch between mono and stereo. A frame whose main data begins before
// the bit reservoir does (the first frames of a stream) decodes as
// silence.
//
// Structure: side information and scalefactors; Huffman decoding by
// table lookup with the requantisation (|v|^(4/3) and 2^(q/4) from tables)
// done as the values come out; joint stereo; alias reduction; the IMDCT as
// an 18-point DCT-IV split into two 9-point DCT-IIs; the polyphase
// synthesis as a 32-point DCT-II (Lee's recursive split) and a windowed
// sum over a ring of its outputs (SSE on amd64). The IMDCT and DCT-32 run
// as straight-line code written by mkunrolled.go; imdctLong and dct32 are
// the same algorithms in loops, which the tests hold them to.
// DecodeFrameMono mixes the channels before the hybrid and synthesis
// filter banks (both linear), so a stereo frame costs one of each.
//
// The Huffman code tables and the synthesis window are go-mp3's
// (github.com/hajimehoshi/go-mp3, Apache License 2.0, see LICENSE), which
// this package replaced; the rest is this project's own.
package mp3
