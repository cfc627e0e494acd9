// Package mp3 is a copy of github.com/hajimehoshi/go-mp3 v0.3.4 (Apache
// License 2.0, see LICENSE) with fixes the transcoder needs:
//
//   - MPEG-2 and MPEG-2.5 Layer III frame sizes: 72·bitrate/rate plus the
//     padding byte. Upstream halves the MPEG-1 size after adding the
//     padding, which drops the last byte of some padded frames (22.05 kHz
//     at 32 kb/s, for one), shifts the bit reservoir and decodes to noise.
//   - MPEG-2.5 (8, 11.025 and 12 kHz) is decoded instead of refused: its
//     sample rates and scalefactor bands, and the short-block region
//     boundary at 8 kHz.
//   - No allocation per frame: one Frame (side information, main data,
//     bit reservoir in two alternating buffers) and one output buffer are
//     reused for the whole stream, and the IMDCT writes into the caller's
//     array. Upstream allocated about 140 objects and 57 KB per frame.
//   - A frame whose main data begins before the bit reservoir does (at the
//     start of a stream, or after a gap) decodes to silence, not garbage.
//   - Streaming only: Seek and Length, which scanned the whole source, are
//     gone.
//   - Cheaper requantisation and IMDCT: zero coefficients and silent
//     subbands are skipped, and 2^(n/4) comes from a table of math.Pow's
//     own results (the output is unchanged).
//
// Where upstream decodes correctly the output is byte for byte the same
// (TestPatchedDecoderMatchesUpstream). Synthesis output is rounded at 2^15 (ISO 11172-4 full accuracy; upstream truncated). Changed lines are marked
// "callcast:". The decoder delivers 16-bit
// little-endian stereo samples (mono sources are duplicated), at the
// source's sample rate.
package mp3
