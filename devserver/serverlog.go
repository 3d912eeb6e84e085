package devserver

import (
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
// DPanic and Panic are never changed, nor Fatal otherwise.
type serverLogger struct {
	base     log.Logger
	stopping *atomic.Bool
}

// newServerLogger wraps base; stopping is set when the server starts to
// stop. base keeps reporting its callers' file and line, not this wrapper's.
func newServerLogger(base log.Logger, stopping *atomic.Bool) serverLogger {
	if s, ok := base.(log.SkipLogger); ok {
		base = s.Skip(1)
	}
	return serverLogger{base: base, stopping: stopping}
}

func (l serverLogger) Debug(msg string, tags ...tag.Tag) { l.base.Debug(msg, tags...) }
func (l serverLogger) Info(msg string, tags ...tag.Tag)  { l.base.Info(msg, tags...) }

func (l serverLogger) Warn(msg string, tags ...tag.Tag) {
	if l.stopping.Load() || isBenignWarning(msg) {
		l.base.Debug(msg, tags...)
		return
	}
	l.base.Warn(msg, tags...)
}

func (l serverLogger) Error(msg string, tags ...tag.Tag) {
	if l.stopping.Load() {
		l.base.Debug(msg, tags...)
		return
	}
	l.base.Error(msg, tags...)
}

func (l serverLogger) DPanic(msg string, tags ...tag.Tag) { l.base.DPanic(msg, tags...) }
func (l serverLogger) Panic(msg string, tags ...tag.Tag)  { l.base.Panic(msg, tags...) }
func (l serverLogger) Fatal(msg string, tags ...tag.Tag) {
	if hasPrefix(msg, shutdownFatals[:]) {
		if l.stopping.Load() {
			l.base.Debug(msg, tags...)
		} else {
			l.base.Warn(msg, tags...)
		}
		return
	}
	l.base.Fatal(msg, tags...)
}

// With implements log.WithLogger: the tags are prepended by base, the
// stopping rule stays.
func (l serverLogger) With(tags ...tag.Tag) log.Logger {
	return serverLogger{base: log.With(l.base, tags...), stopping: l.stopping}
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
