//go:build !purego

package audio

import "golang.org/x/sys/cpu"

// useAVX2 selects the assembly kernels: AVX2 and FMA, with the operating
// system saving the YMM registers (x/sys/cpu checks that too).
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// dotAVX2 returns Σ c[i]·x[i] for i < n; n is a positive multiple of 8.
//
//go:noescape
func dotAVX2(c, x *float32, n int) float32

// firAVX2 sets dst[t] = Σ c[i]·x[t+i], i < taps, for t < n; n is a
// positive multiple of 8 and taps at least 1.
//
//go:noescape
func firAVX2(dst, x, c *float32, n, taps int)

// splitAVX2 adds Σ c[i]·x[t+i], i < taps, to dst[t] for t < n, one fused
// multiply-add at a time in order of i; n is a positive multiple of 8 and
// taps at least 1.
//
//go:noescape
func splitAVX2(dst, x, c *float32, n, taps int)

// split2AVX2 is splitAVX2 on two filters of the same length at once.
//
//go:noescape
func split2AVX2(dst, x, c, dst2, x2, c2 *float32, n, taps int)
