//go:build !amd64 || purego

package audio

const useAVX2 = false

func dotAVX2(c, x *float32, n int) float32 { panic("audio: no AVX2 kernel") }

func firAVX2(dst, x, c *float32, n, taps int) { panic("audio: no AVX2 kernel") }

func splitAVX2(dst, x, c *float32, n, taps int) { panic("audio: no AVX2 kernel") }

func split2AVX2(dst, x, c, dst2, x2, c2 *float32, n, taps int) { panic("audio: no AVX2 kernel") }
