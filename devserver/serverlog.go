package devserver

import (
	"fmt"
	"strings"
	"sync/atomic"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
)

// benignWarnings are server warnings that say nothing to a clozeloop user:
// the embedded server deliberately runs without Nexus's HTTP API. They are
// logged at debug level. Each entry is a message prefix.
var benignWarnings = [...]string{
	"HTTP API port has not been set",
}

// shutdownFatals are the server's Fatal messages that only a stop of the
// service reporting them can cause (service/worker/scanner: the scanner
// workflows' start retries end when the scanner's context is cancelled,
// and the last attempt's error is reported). Each entry is a message
// prefix.
var shutdownFatals = [...]string{
	"unable to start scanner",
}

// serverLogger is the embedded Temporal server's logger. It passes every
// message to base, except:
//
//   - once the server is stopping, warnings and errors are logged at debug
//     level: while its services shut down one by one they report peers that
//     already stopped ("Not enough hosts to serve the request", failed
//     polls), with stack traces, which is the expected course of a stop and
//     not a fault;
//
//   - the benignWarnings, at any time.
//
//   - the shutdownFatals are logged (at debug level once the server is
//     stopping, as warnings otherwise) and return instead of exiting. The
//     server's worker service reports as fatal that it could not start its
//     scanner workflows, but only reaches that line after the scanner was
//     stopped: when the server stops before they started (on a loaded
//     machine, a server stopped seconds after its start), or when a slow
//     start of another service rolls the worker service back. Exiting
//     would end the whole process (clozeloop dev, or a test binary with all
//     its tests) during a normal stop, or turn a start error that Start
//     reports into an exit.
//
//   - any other Fatal while the server is starting (state.starting) is
//     logged as an error and panics with a *startFatal, which
//     Server.startTemporal recovers and returns as an error: the server
//     reports a listener it cannot open (a port that another process took
//     after it was picked) as fatal, and Start can try again on other
//     ports instead of ending the process.
//
// DPanic and Panic are never changed, nor Fatal at other times.
type serverLogger struct {
	base  log.Logger
	state *serverState
}

// serverState is the phase of a server's life its logger needs to know.
type serverState struct {
	starting atomic.Bool // set while the Temporal services are created and started
	stopping atomic.Bool // set once Stop begins, or a failed start is undone
}

// startFatal is a Fatal the server reported while it was starting.
type startFatal struct {
	msg  string
	tags []tag.Tag
}

func (f *startFatal) Error() string {
	var b strings.Builder
	b.WriteString(f.msg)
	for _, t := range f.tags {
		fmt.Fprintf(&b, " %s=%v", t.Key(), t.Value())
	}
	return b.String()
}

// newServerLogger wraps base, which keeps reporting its callers' file and
// line, not this wrapper's.
func newServerLogger(base log.Logger, state *serverState) serverLogger {
	if s, ok := base.(log.SkipLogger); ok {
		base = s.Skip(1)
	}
	return serverLogger{base: base, state: state}
}

func (l serverLogger) Debug(msg string, tags ...tag.Tag) { l.base.Debug(msg, tags...) }
func (l serverLogger) Info(msg string, tags ...tag.Tag)  { l.base.Info(msg, tags...) }

func (l serverLogger) Warn(msg string, tags ...tag.Tag) {
	if l.state.stopping.Load() || isBenignWarning(msg) {
		l.base.Debug(msg, tags...)
		return
	}
	l.base.Warn(msg, tags...)
}

func (l serverLogger) Error(msg string, tags ...tag.Tag) {
	if l.state.stopping.Load() {
		l.base.Debug(msg, tags...)
		return
	}
	l.base.Error(msg, tags...)
}

func (l serverLogger) DPanic(msg string, tags ...tag.Tag) { l.base.DPanic(msg, tags...) }
func (l serverLogger) Panic(msg string, tags ...tag.Tag)  { l.base.Panic(msg, tags...) }
func (l serverLogger) Fatal(msg string, tags ...tag.Tag) {
	if hasPrefix(msg, shutdownFatals[:]) {
		if l.state.stopping.Load() {
			l.base.Debug(msg, tags...)
		} else {
			l.base.Warn(msg, tags...)
		}
		return
	}
	if l.state.starting.Load() {
		l.base.Error(msg, tags...)
		panic(&startFatal{msg: msg, tags: tags})
	}
	l.base.Fatal(msg, tags...)
}

// With implements log.WithLogger: the tags are prepended by base, the
// state's rules stay.
func (l serverLogger) With(tags ...tag.Tag) log.Logger {
	return serverLogger{base: log.With(l.base, tags...), state: l.state}
}

func isBenignWarning(msg string) bool { return hasPrefix(msg, benignWarnings[:]) }

// hasPrefix reports whether msg starts with one of prefixes.
func hasPrefix(msg string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}
