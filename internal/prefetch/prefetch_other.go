//go:build !amd64 || purego

package prefetch

import "unsafe"

func lines(p unsafe.Pointer, size uintptr) {}
