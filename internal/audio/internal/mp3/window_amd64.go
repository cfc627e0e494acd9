//go:build amd64 && !purego

package mp3

// window is windowGeneric with SSE (baseline on amd64): four outputs a
// vector, eight vector sums.
//
//go:noescape
func window(out *[32]float32, b *[1024]float32, w *[512]float32)
