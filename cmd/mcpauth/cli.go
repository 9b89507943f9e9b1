package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// command is one subcommand: its help text and how it binds its flags.
type command struct {
	name     string
	args     string // the positional arguments in the usage line, e.g. "<mcp-url>"
	nargs    int    // how many positional arguments it takes
	summary  string // one line, for the command list
	about    string // paragraphs for --help
	examples []string
	timeout  time.Duration // default --timeout
	// bind registers the command's own flags on fs and returns its action,
	// which reads them once fs is parsed.
	bind func(fs *flag.FlagSet) action
}

// action runs a parsed command.
type action func(ctx context.Context, inv *invocation) error

// invocation is one parsed command line.
type invocation struct {
	env     *env
	cmd     *command
	args    []string
	verbose bool
	timeout time.Duration
}

// commands lists the subcommands in the order help shows them.
func commands() []*command {
	return []*command{demoCommand(), loginCommand(), tokenCommand(), toolsCommand(), statusCommand(), logoutCommand(), diagramCommand()}
}

func lookup(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

// run is the whole program: it parses args, runs the command and returns
// the exit code. Tests call it in-process.
func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 {
		mainUsage(e.stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if len(args) > 1 {
			if c := lookup(args[1]); c != nil {
				fs, _, _, _ := newFlagSet(c)
				commandHelp(e.stdout, c, fs)
				return exitOK
			}
			fmt.Fprintf(e.stderr, "mcpauth: unknown command %q\n\n", args[1])
			mainUsage(e.stderr)
			return exitUsage
		}
		mainUsage(e.stdout)
		return exitOK
	}
	c := lookup(args[0])
	if c == nil {
		fmt.Fprintf(e.stderr, "mcpauth: unknown command %q\n\n", args[0])
		mainUsage(e.stderr)
		return exitUsage
	}
	fs, act, verbose, timeout := newFlagSet(c)
	pos, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		commandHelp(e.stdout, c, fs)
		return exitOK
	}
	if err == nil && len(pos) != c.nargs {
		switch {
		case len(pos) < c.nargs:
			err = fmt.Errorf("missing %s", c.args)
		default:
			err = fmt.Errorf("unexpected argument %q", pos[c.nargs])
		}
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "mcpauth %s: %v\nusage: mcpauth %s\nrun 'mcpauth %s --help' for the flags and examples\n", c.name, err, usageLine(c), c.name)
		return exitUsage
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	inv := &invocation{env: e, cmd: c, args: pos, verbose: *verbose, timeout: *timeout}
	if err := act(ctx, inv); err != nil {
		return report(e, c, inv, err)
	}
	return exitOK
}

// newFlagSet builds the flag set of c with the flags every command has.
func newFlagSet(c *command) (*flag.FlagSet, action, *bool, *time.Duration) {
	fs := flag.NewFlagSet("mcpauth "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by run, help by commandHelp
	timeout := fs.Duration("timeout", c.timeout, "give up after this long (0: never)")
	verbose := fs.Bool("v", false, "print the live trace (transitions, effects, HTTP exchanges) on stderr")
	return fs, c.bind(fs), verbose, timeout
}

// parseInterspersed parses flags wherever they appear, so that
// `mcpauth login URL --no-browser` works as well as the flags-first form.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func usageLine(c *command) string {
	if c.args == "" {
		return c.name + " [flags]"
	}
	return c.name + " [flags] " + c.args
}

func mainUsage(w io.Writer) {
	fmt.Fprint(w, `mcpauth signs in to OAuth-protected MCP servers and shows the state machine that does it.

Usage:
  mcpauth <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Start with:
  mcpauth demo                                  # the whole flow against in-repo servers, no setup
  mcpauth login https://mcp.example.com/mcp     # sign in for real
  curl -H "Authorization: Bearer $(mcpauth token https://mcp.example.com/mcp)" ...

Every command takes --help, --timeout and -v. Exit codes: 0 ok, 1 failure, 2 usage.
Run 'mcpauth <command> --help' for its flags and examples.
`)
}

func commandHelp(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "mcpauth %s: %s\n\nUsage:\n  mcpauth %s\n\n", c.name, c.summary, usageLine(c))
	for _, p := range strings.Split(strings.TrimSpace(c.about), "\n\n") {
		fmt.Fprintf(w, "%s\n\n", p)
	}
	if len(c.examples) > 0 {
		fmt.Fprintln(w, "Examples:")
		for _, ex := range c.examples {
			fmt.Fprintf(w, "  %s\n", ex)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "Flags:")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}
