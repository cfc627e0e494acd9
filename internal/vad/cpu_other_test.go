//go:build !linux

package vad

func threadCPUNs() int64 { return -1 }
