package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// testProgram is a program of a default command taking -n and no
// arguments, and a command "echo" printing its arguments.
func testProgram(stdout, stderr *bytes.Buffer) Program {
	return Program{
		Name: "prog", Summary: "prog does things.", Stdout: stdout, Stderr: stderr,
		Commands: []Command{
			{Args: "[flags]", Summary: "serve", Setup: func(f *Flags) RunFunc {
				var n int
				f.IntMin(&n, "n", "PROG_TEST_N", 1, 1, "how many")
				return func(_ context.Context, args []string) error {
					if err := NoArgs(args); err != nil {
						return err
					}
					if n == 13 {
						return errors.New("prog: unlucky") // a package error already prefixed
					}
					fmt.Fprintf(stdout, "served %d\n", n)
					return nil
				}
			}},
			{Name: "echo", Args: "[-upper] WORD...", Summary: "print the words", Help: "Echo prints its words.", Setup: func(f *Flags) RunFunc {
				upper := f.FlagSet.Bool("upper", false, "in capitals")
				return func(_ context.Context, args []string) error {
					if len(args) == 0 {
						return Usagef("echo: want a word")
					}
					s := strings.Join(args, " ")
					if *upper {
						s = strings.ToUpper(s)
					}
					fmt.Fprintln(stdout, s)
					return nil
				}
			}},
		},
	}
}

func TestProgramMain(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // each must appear
		stderr string   // exactly
	}{
		{name: "default", code: 0, stdout: []string{"served 1\n"}},
		{name: "default with a flag", args: []string{"-n", "3"}, stdout: []string{"served 3\n"}},
		{name: "help", args: []string{"-h"}, stdout: []string{"prog does things.", "prog [flags]", "prog echo [-upper] WORD...", "print the words", "-n int", "(env PROG_TEST_N)"}},
		{name: "long help", args: []string{"--help"}, stdout: []string{"prog echo"}},
		{name: "help command", args: []string{"help"}, stdout: []string{"prog echo", "-n int"}},
		{name: "help of a command", args: []string{"help", "echo"}, stdout: []string{"usage: prog echo [-upper] WORD...", "Echo prints its words.", "-upper"}},
		{name: "command help", args: []string{"echo", "-h"}, stdout: []string{"usage: prog echo [-upper] WORD..."}},
		{name: "command", args: []string{"echo", "-upper", "hi", "there"}, stdout: []string{"HI THERE\n"}},
		{name: "unknown command", args: []string{"bogus"}, code: 2, stderr: "prog: unknown command \"bogus\"\nRun 'prog -h' for usage.\n"},
		{name: "unknown help topic", args: []string{"help", "bogus"}, code: 2, stderr: "prog: unknown help topic \"bogus\"\nRun 'prog -h' for usage.\n"},
		{name: "unknown flag", args: []string{"-bogus"}, code: 2, stderr: "prog: flag provided but not defined: -bogus\nRun 'prog -h' for usage.\n"},
		{name: "bad value", args: []string{"-n", "x"}, code: 2, stderr: "prog: invalid value \"x\" for flag -n: parse error\nRun 'prog -h' for usage.\n"},
		{name: "value out of range", args: []string{"-n", "0"}, code: 2, stderr: "prog: invalid value 0 for -n (env PROG_TEST_N): want at least 1\nRun 'prog -h' for usage.\n"},
		{name: "argument after flags", args: []string{"-n", "2", "extra"}, code: 2, stderr: "prog: unexpected argument \"extra\"\nRun 'prog -h' for usage.\n"},
		{name: "command usage error", args: []string{"echo"}, code: 2, stderr: "prog: echo: want a word\nRun 'prog echo -h' for usage.\n"},
		{name: "command unknown flag", args: []string{"echo", "-n", "1"}, code: 2, stderr: "prog: flag provided but not defined: -n\nRun 'prog echo -h' for usage.\n"},
		{name: "failure, prefix once", args: []string{"-n", "13"}, code: 1, stderr: "prog: unlucky\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := testProgram(&stdout, &stderr).Main(context.Background(), tt.args)
			if code != tt.code {
				t.Errorf("exit status %d, want %d (stderr %q)", code, tt.code, stderr.String())
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

func TestProgramEnvironmentOutOfRange(t *testing.T) {
	t.Setenv("PROG_TEST_N", "0")
	var stdout, stderr bytes.Buffer
	if code := testProgram(&stdout, &stderr).Main(context.Background(), nil); code != 2 || !strings.Contains(stderr.String(), "PROG_TEST_N") {
		t.Errorf("exit status %d, stderr %q; want 2 naming PROG_TEST_N", code, stderr.String())
	}
}
