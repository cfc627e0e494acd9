package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// ErrUsage marks an error in how a command was invoked (an unknown
// command or flag, a bad value, a missing or extra argument), which a
// Program reports with exit status 2, as the go tool does.
var ErrUsage = errors.New("usage")

// usageError is an error in how a command was invoked.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() []error {
	return []error{ErrUsage, e.err}
}

// Usage marks err as a usage error (ErrUsage). Nil stays nil.
func Usage(err error) error {
	if err == nil || errors.Is(err, ErrUsage) {
		return err
	}
	return usageError{err}
}

// Usagef is a usage error with the message fmt.Sprintf(format, args...).
func Usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// NoArgs is a usage error naming the first of args, if any: for commands
// that take flags only.
func NoArgs(args []string) error {
	if len(args) > 0 {
		return Usagef("unexpected argument %q", args[0])
	}
	return nil
}

// RunFunc runs a command once its flags are parsed; args are the operands
// left after the flags.
type RunFunc func(ctx context.Context, args []string) error

// Command is one of a program's commands.
type Command struct {
	// Name is what selects the command (`edge healthcheck`); empty for the
	// program's default command (serving), run when no name is given.
	Name string
	// Args is the synopsis after the name, e.g. "[-o OUT] IN".
	Args string
	// Summary is one line for the program's list of commands.
	Summary string
	// Help, if set, is printed under the synopsis by -h.
	Help string
	// Setup defines the command's flags on f and returns what runs the
	// command once they are parsed.
	Setup func(f *Flags) RunFunc
}

// Program is a command-line program of one or more commands, which behaves
// as the go and nats tools do: `-h` (or `help [command]`) prints the usage
// with the list of commands and exits 0; an unknown command, flag or
// argument, or a bad value, is reported in one line with exit status 2;
// any other failure with exit status 1. Every message is prefixed with the
// program's name once.
type Program struct {
	Name     string
	Summary  string // what the program does, one or two lines
	Commands []Command
	Stdout   io.Writer
	Stderr   io.Writer
}

// Main runs the command args select and returns the process's exit status.
func (p Program) Main(ctx context.Context, args []string) int {
	cmd, rest, err := p.lookup(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		p.usage(p.Stdout, cmd)
		return 0
	case err != nil:
		return p.fail(err, nil)
	}
	err = cmd.Run(ctx, rest)
	if errors.Is(err, flag.ErrHelp) {
		p.usage(p.Stdout, cmd)
		return 0
	}
	return p.fail(err, cmd)
}

// Run parses args with the command's flags and runs it. A flag error is a
// usage error; -h returns flag.ErrHelp and runs nothing. Nothing is printed.
func (c Command) Run(ctx context.Context, args []string) error {
	f := NewFlags(c.Name)
	f.SetOutput(io.Discard)
	f.Usage = func() {}
	run := c.Setup(f)
	if err := f.Parse(args); errors.Is(err, flag.ErrHelp) {
		return err
	} else if err != nil {
		return Usage(err)
	}
	return run(ctx, f.Args())
}

// lookup finds the command args name, and the arguments left for it. A
// request for help returns flag.ErrHelp and the command it is about (nil:
// the program).
func (p Program) lookup(args []string) (*Command, []string, error) {
	def := p.command("")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if def == nil {
			if len(args) > 0 && isHelp(args[0]) {
				return nil, nil, flag.ErrHelp
			}
			return nil, nil, Usagef("no command given")
		}
		return def, args, nil
	}
	if args[0] == "help" {
		if len(args) > 1 {
			if c := p.command(args[1]); c != nil && c.Name != "" {
				return c, nil, flag.ErrHelp
			}
			return nil, nil, Usagef("unknown help topic %q", args[1])
		}
		return def, nil, flag.ErrHelp
	}
	if c := p.command(args[0]); c != nil && c.Name != "" {
		return c, args[1:], nil
	}
	return nil, nil, Usagef("unknown command %q", args[0])
}

func isHelp(a string) bool { return a == "-h" || a == "-help" || a == "--help" }

func (p Program) command(name string) *Command {
	for i := range p.Commands {
		if p.Commands[i].Name == name {
			return &p.Commands[i]
		}
	}
	return nil
}

func (p Program) commandName(c *Command) string {
	if c == nil || c.Name == "" {
		return p.Name
	}
	return p.Name + " " + c.Name
}

// fail reports err (if any) on Stderr and returns the exit status for it.
func (p Program) fail(err error, cmd *Command) int {
	if err == nil {
		return 0
	}
	// Packages prefix their errors with their own name ("edge: listen: …");
	// the program's prefix is not repeated.
	msg := strings.TrimPrefix(err.Error(), p.Name+": ")
	fmt.Fprintf(p.Stderr, "%s: %s\n", p.Name, msg)
	if errors.Is(err, ErrUsage) {
		fmt.Fprintf(p.Stderr, "Run '%s -h' for usage.\n", p.commandName(cmd))
		return 2
	}
	return 1
}

// usage prints the usage of cmd, or of the program when cmd is its default
// command or nil: the synopsis, the other commands, and the flags.
func (p Program) usage(w io.Writer, cmd *Command) {
	if cmd != nil && cmd.Name != "" {
		fmt.Fprintf(w, "usage: %s %s\n", p.commandName(cmd), cmd.Args)
		if cmd.Help != "" {
			fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.Help))
		}
		p.flags(w, cmd)
		return
	}
	fmt.Fprintf(w, "%s\n\nusage:\n", strings.TrimSpace(p.Summary))
	// Synopses and summaries side by side, unless a synopsis is too long
	// for that: then each summary goes under its synopsis.
	wide := false
	for _, c := range p.Commands {
		wide = wide || len(p.commandName(&c)+" "+c.Args) > 44
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, c := range p.Commands {
		synopsis := strings.TrimSpace(p.commandName(&c) + " " + c.Args)
		if wide {
			fmt.Fprintf(w, "  %s\n      %s\n", synopsis, c.Summary)
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\n", synopsis, c.Summary)
	}
	tw.Flush()
	if len(p.Commands) > 1 {
		fmt.Fprintf(w, "\nRun '%s help <command>' (or '%s <command> -h') for a command's flags.\n", p.Name, p.Name)
	}
	if cmd != nil {
		if cmd.Help != "" {
			fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(cmd.Help))
		}
		p.flags(w, cmd)
	}
}

func (p Program) flags(w io.Writer, cmd *Command) {
	f := NewFlags(p.commandName(cmd))
	cmd.Setup(f)
	n := 0
	f.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	fmt.Fprintf(w, "\nflags (each also read from the environment variable named, a flag wins):\n")
	f.SetOutput(w)
	f.PrintDefaults()
}
