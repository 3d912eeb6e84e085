// Command clozeloop trains fill-mask (masked-language-model) models by active
// learning, orchestrated as Temporal workflows.
//
// Usage:
//
//	clozeloop <command> [flags] [args]
//
// Run "clozeloop help" for the list of commands and "clozeloop <command> -h"
// for the flags of one command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// A command is one subcommand of the clozeloop CLI.
type command struct {
	name    string
	summary string
	// run executes the command with the arguments that follow its name.
	run func(ctx context.Context, env *cmdEnv, args []string) error
}

// cmdEnv is what every command gets from main: its output streams and logger.
type cmdEnv struct {
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
}

// commands lists every subcommand. Add new commands here; each lives in its
// own cmd_<name>.go file.
func commands() []command {
	return []command{
		versionCmd(),
		doctorCmd(),
		dataCmd(),
		predictCmd(),
		benchCmd(),
		s3Cmd(),
		workerCmd(),
		startCmd(),
		statusCmd(),
		labelCmd(),
		scheduleCmd(),
		deploymentCmd(),
		pretrainCmd(),
		finetuneCmd(),
		simulateCmd(),
		serverCmd(),
		hookCmd(),
		annotatorsCmd(),
		devCmd(),
		convertCmd(),
		evalCmd(),
		modelCmd(),
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &cmdEnv{
		stdout: stdout,
		stderr: stderr,
		log:    slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel()})),
	}
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range cmds {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, env, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		default:
			var ue usageError
			fmt.Fprintf(stderr, "clozeloop %s: %v\n", c.name, err)
			if errors.As(err, &ue) {
				return 2
			}
			return 1
		}
	}
	fmt.Fprintf(stderr, "clozeloop: unknown command %q\n\n", args[0])
	usage(stderr, cmds)
	return 2
}

// usageError marks an error caused by bad command-line input (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// usagef returns a usageError with a formatted message.
func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func usage(w io.Writer, cmds []command) {
	fmt.Fprintln(w, "clozeloop trains fill-mask models by active learning on Temporal.")
	fmt.Fprintln(w, "\nUsage:\n  clozeloop <command> [flags] [args]\n\nCommands:")
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'clozeloop <command> -h' for the flags of a command.")
}

// logLevel reads CLOZELOOP_LOG_LEVEL (debug, info, warn, error; default info).
func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("CLOZELOOP_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

// newFlagSet returns a flag set for a subcommand that reports errors instead
// of exiting, writing its usage to env.stderr.
func newFlagSet(env *cmdEnv, name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet("clozeloop "+name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stderr, "Usage: clozeloop %s %s\n\nFlags:\n", name, usageLine)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs, turning parse failures into usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}

// flagGiven reports whether the flag name was set on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	return found
}

// parseFlagsOnly parses args into fs like parseFlags and then rejects
// positional arguments and each flag of required left empty, naming the
// first one missing.
func parseFlagsOnly(fs *flag.FlagSet, args []string, required ...string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	for _, name := range required {
		f := fs.Lookup(name)
		if f == nil {
			return fmt.Errorf("internal error: no flag --%s", name)
		}
		if f.Value.String() == "" {
			return usagef("--%s is required", name)
		}
	}
	return nil
}
