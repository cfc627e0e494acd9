//go:build !amd64 || purego

package mp3

func window(out *[32]float32, b *[1024]float32, w *[512]float32) {
	windowGeneric(out, b, w)
}
