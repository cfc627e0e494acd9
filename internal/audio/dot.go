package audio

// The two inner loops of the resampler. On amd64 with AVX2 and FMA they
// run in assembly (dot_amd64.s), eight products per instruction; elsewhere,
// or built with the purego tag, in the Go below. dot's two versions differ
// in the order of the additions and in FMA's single rounding (a few parts
// in 10⁷ of the result); fir's give the same bits, because a block of
// outputs is computed by either depending on how it is chunked.

// dot returns the inner product of c and x[:len(c)].
func dot(c, x []float32) float32 {
	x = x[:len(c)]
	n8 := 0
	var s float32
	if useAVX2 && len(c) >= 8 {
		n8 = len(c) &^ 7
		s = dotAVX2(&c[0], &x[0], n8)
	}
	return s + dotGo(c[n8:], x[n8:])
}

// fir sets dst[t] to the inner product of c and x[t:t+len(c)], for every
// t: a filter run over a block of outputs, vectorised across outputs. x
// must hold len(dst)+len(c)-1 samples.
func fir(dst, x, c []float32) {
	if len(dst) == 0 {
		return
	}
	_ = x[len(dst)+len(c)-2]
	n8 := 0
	if useAVX2 && len(dst) >= 8 && len(c) > 0 {
		n8 = len(dst) &^ 7
		firAVX2(&dst[0], &x[0], &c[0], n8, len(c))
	}
	firGo(dst[n8:], x[n8:], c)
}

// firGo is fir in Go, summing each output in the order of the taps as
// firAVX2 does, so that both give the same bits.
func firGo(dst, x, c []float32) {
	for t := range dst {
		xx := x[t : t+len(c)]
		var a float32
		for i, v := range c {
			a += float32(v * xx[i]) // the conversion forbids a fused multiply-add
		}
		dst[t] = a
	}
}

// dotGo is dot in Go: four accumulators, four products an iteration.
func dotGo(c, x []float32) float32 {
	x = x[:len(c)]
	var a0, a1, a2, a3 float32
	i := 0
	for ; i+4 <= len(c); i += 4 {
		// Fixed-length subslices: one bounds check per four products.
		cc, xx := c[i:i+4:i+4], x[i:i+4:i+4]
		a0 += cc[0] * xx[0]
		a1 += cc[1] * xx[1]
		a2 += cc[2] * xx[2]
		a3 += cc[3] * xx[3]
	}
	for ; i < len(c); i++ {
		a0 += c[i] * x[i]
	}
	return (a0 + a1) + (a2 + a3)
}

// firAdd adds to dst[t] the inner product of c and x[t:t+len(c)], for
// every t, onto what dst holds: the kernel of the resampler's split
// tables. len(dst) must be a multiple of 8 and x must hold
// len(dst)+len(c)-1 samples. Every output is computed by the same
// instructions wherever it falls in dst, so that a stream cut anywhere
// gives the same bits: with AVX2, one chain of fused multiply-adds in the
// order dot_amd64.s describes (taps in pairs eight apart); in Go, in the
// order of the taps, with what the compiler makes of a += c·x. The two
// differ in rounding, but a build uses one or the other for every output.
func firAdd(dst, x, c []float32) {
	if len(dst) == 0 || len(c) == 0 {
		return
	}
	_ = x[len(dst)+len(c)-2]
	if useAVX2 {
		splitAVX2(&dst[0], &x[0], &c[0], len(dst), len(c))
		return
	}
	firAddGo(dst, x, c)
}

// firAddGo is firAdd in Go, four outputs at a time (four independent
// sums, each in the order of the taps).
func firAddGo(dst, x, c []float32) {
	t := 0
	for ; t+4 <= len(dst); t += 4 {
		a0, a1, a2, a3 := dst[t], dst[t+1], dst[t+2], dst[t+3]
		xx := x[t : t+len(c)+3]
		for i, v := range c {
			w := xx[i : i+4 : i+4]
			a0 += v * w[0]
			a1 += v * w[1]
			a2 += v * w[2]
			a3 += v * w[3]
		}
		dst[t], dst[t+1], dst[t+2], dst[t+3] = a0, a1, a2, a3
	}
	for ; t < len(dst); t++ {
		a := dst[t]
		for i, v := range c {
			a += v * x[t+i]
		}
		dst[t] = a
	}
}

// firAdd2 is firAdd(dst, x, c) and firAdd(dst2, x2, c2), for filters of
// the same length and runs of the same length, computed together: the
// same bits, with twice the independent sums in flight.
func firAdd2(dst, x, c, dst2, x2, c2 []float32) {
	if len(dst) == 0 || len(c) == 0 {
		return
	}
	_ = x[len(dst)+len(c)-2]
	_ = x2[len(dst)+len(c)-2]
	_ = dst2[len(dst)-1]
	_ = c2[len(c)-1]
	if useAVX2 {
		split2AVX2(&dst[0], &x[0], &c[0], &dst2[0], &x2[0], &c2[0], len(dst), len(c))
		return
	}
	firAddGo(dst, x, c)
	firAddGo(dst2, x2, c2)
}
