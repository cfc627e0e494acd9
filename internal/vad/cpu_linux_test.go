package vad

import "syscall"

// threadCPUNs returns the CPU time of the calling OS thread, ns.
func threadCPUNs() int64 {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if syscall.Getrusage(rusageThread, &ru) != nil {
		return -1
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
