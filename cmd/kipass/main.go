// Command kipass is the one binary of kipass: every service, the scanner, the
// authority tooling and the investigator tools, as subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"syscall"
)

// command is one subcommand. Run gets the arguments after the subcommand's name.
type command struct {
	Summary string
	Run     func(ctx context.Context, env *Env, args []string) error
}

// Env is what a command may touch of the outside world, so that tests can run commands
// in-process with their own streams.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// commands is filled by each command's file in its init function, so that adding a
// command never means editing this file.
var commands = map[string]command{}

func register(name string, c command) {
	if _, ok := commands[name]; ok {
		panic("kipass: command registered twice: " + name)
	}
	commands[name] = c
}

// exitError carries a process exit code (2 for bad input) up to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf reports bad input: the message goes to stderr and kipass exits 2.
func usageErrorf(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// gcPercent is the garbage collector's target unless GOGC says otherwise. A central
// node's live heap is about 10 MB while ingest allocates some 100 MB/s (decoded
// uploads, answers): at Go's default of 100 the collector ran 30 times a second and
// its bursts were a large part of the ingest benchmark's p99. At 400 it runs a
// quarter as often for about 40 MB more memory (docs/benchmarks-ingest.md).
const gcPercent = 400

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	os.Exit(run(ctx, env, os.Args[1:]))
}

// run runs one command line and returns the process exit code.
func run(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.Stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(env.Stderr, "kipass: unknown command %q\n", args[0])
		usage(env.Stderr)
		return 2
	}
	err := c.Run(ctx, env, args[1:])
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(env.Stderr, "kipass %s: %v\n", args[0], err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: kipass <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].Summary)
	}
}
