package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestCommandLine runs the worker's command line as a user would and checks
// the exit status and what is printed. None of these cases starts anything.
func TestCommandLine(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr string // all of stderr
	}{
		{name: "help", args: []string{"-h"}, stdout: []string{"usage:", "worker [flags]", "worker transcode [-o OUT] IN", "worker upload [-name NAME] FILE", "worker healthcheck", "-concurrency", "(env WORKER_CONCURRENCY)"}},
		{name: "transcode help", args: []string{"transcode", "-h"}, stdout: []string{"usage: worker transcode [-o OUT] IN", "G.711 μ-law", "-o string"}},
		{name: "upload help", args: []string{"help", "upload"}, stdout: []string{"usage: worker upload [-name NAME] FILE", "callcast-audio", "-name string", "(env NATS_URL)"}},
		{name: "unknown command", args: []string{"bogus"}, code: 2, stderr: "worker: unknown command \"bogus\"\nRun 'worker -h' for usage.\n"},
		{name: "argument after flags", args: []string{"-nats", "nats://127.0.0.1:1", "bogus"}, code: 2, stderr: "worker: unexpected argument \"bogus\"\nRun 'worker -h' for usage.\n"},
		{name: "no playbacks", args: []string{"-concurrency", "0"}, code: 2, stderr: "worker: invalid value 0 for -concurrency (env WORKER_CONCURRENCY): want at least 1\nRun 'worker -h' for usage.\n"},
		{name: "lead out of range", args: []string{"-lead", "2m"}, code: 2, stderr: "worker: lead 2m0s: want 400ms to 1m0s\nRun 'worker -h' for usage.\n"},
		{name: "zero drain", args: []string{"-drain-timeout", "0"}, code: 2, stderr: "worker: invalid value 0s for -drain-timeout (env DRAIN_TIMEOUT): want more than 0\nRun 'worker -h' for usage.\n"},
		{name: "transcode without input", args: []string{"transcode"}, code: 2, stderr: "worker: transcode: want exactly one input file\nRun 'worker transcode -h' for usage.\n"},
		{name: "transcode unknown flag", args: []string{"transcode", "-x", "in.mp3"}, code: 2, stderr: "worker: flag provided but not defined: -x\nRun 'worker transcode -h' for usage.\n"},
		{name: "transcode missing file", args: []string{"transcode", "-o", "/nonexistent/x.ulaw", "/nonexistent/in.mp3"}, code: 1, stderr: "worker: transcode: open /nonexistent/in.mp3: no such file or directory\n"},
		{name: "upload without file", args: []string{"upload"}, code: 2, stderr: "worker: upload: want exactly one file\nRun 'worker upload -h' for usage.\n"},
		{name: "library help", args: []string{"help", "library"}, stdout: []string{"usage: worker library ls [-cache] | info NAME | get [-o FILE] NAME | rm NAME | upload [-name NAME] FILE", "unknown_audio", "-json", "(env LIBRARY_MAX_BYTES)"}},
		{name: "library verb help", args: []string{"library", "ls", "-h"}, stdout: []string{"usage: worker library ls"}},
		{name: "library without verb", args: []string{"library"}, code: 2, stderr: "worker: library: want a verb: ls [-cache] | info NAME | get [-o FILE] NAME | rm NAME | upload [-name NAME] FILE\nRun 'worker library -h' for usage.\n"},
		{name: "library unknown verb", args: []string{"library", "list"}, code: 2, stderr: "worker: library: unknown verb \"list\"; want ls [-cache] | info NAME | get [-o FILE] NAME | rm NAME | upload [-name NAME] FILE\nRun 'worker library -h' for usage.\n"},
		{name: "library missing name", args: []string{"library", "info"}, code: 2, stderr: "worker: library info: want 1 argument(s), got 0\nRun 'worker library -h' for usage.\n"},
		{name: "library flag of another verb", args: []string{"library", "rm", "-o", "x", "a.mp3"}, code: 2, stderr: "worker: library rm: -o is for get\nRun 'worker library -h' for usage.\n"},
		{name: "library bad name", args: []string{"library", "-nats", "nats://127.0.0.1:1", "rm", "../a.mp3"}, code: 1, stderr: "worker: library rm: library: audio name not allowed: \"../a.mp3\" leaves the audio directory\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := program(&stdout, &stderr).Main(context.Background(), tt.args)
			if code != tt.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			for _, w := range tt.stdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout.String())
				}
			}
			if stderr.String() != tt.stderr {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.stderr)
			}
		})
	}
}
