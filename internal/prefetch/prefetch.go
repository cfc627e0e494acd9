// Package prefetch asks the processor to start loading memory into its
// caches before it is read.
//
// A server with hundreds of calls visits each call's state once every
// 20 ms, by which time the state has left the core's caches; every cache
// line it then reads is a trip to memory that the core mostly waits out,
// one after another. Asked for at once, early, the lines come in parallel
// while the core does other work: parsing the message the state is for,
// say.
package prefetch

import "unsafe"

// LineSize is the cache line size assumed: 64 bytes on the processors
// callcast runs on.
const LineSize = 64

// Range asks for every cache line of the size bytes from p to be loaded.
// It is only a hint: it never faults, whatever p is, and on processors
// without an implementation here it does nothing.
func Range(p unsafe.Pointer, size uintptr) {
	if size == 0 {
		return
	}
	lines(p, size)
}
