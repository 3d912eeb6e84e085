package devserver

import (
	"errors"
	"strings"
	"testing"

	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/log/tag"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestServerLogger(t *testing.T) {
	tests := []struct {
		name      string
		phase     string // "running", "starting" or "stopping"
		with      bool
		log       func(l log.Logger)
		wantLevel zapcore.Level
	}{
		{"warning while running", "running", false, func(l log.Logger) { l.Warn("Failed to poll for task.") }, zapcore.WarnLevel},
		{"error while running", "running", false, func(l log.Logger) { l.Error("error fetching user data from parent") }, zapcore.ErrorLevel},
		{"info while running", "running", false, func(l log.Logger) { l.Info("started") }, zapcore.InfoLevel},
		{"benign warning", "running", false, func(l log.Logger) {
			l.Warn("HTTP API port has not been set. Nexus HTTP endpoints will not be available.")
		}, zapcore.DebugLevel},
		{"warning while stopping", "stopping", false, func(l log.Logger) { l.Warn("Failed to poll for task.") }, zapcore.DebugLevel},
		{"error while stopping", "stopping", false, func(l log.Logger) { l.Error("error fetching user data from parent") }, zapcore.DebugLevel},
		{"error while stopping, tagged logger", "stopping", true, func(l log.Logger) { l.Error("error fetching user data from parent") }, zapcore.DebugLevel},
		{"error while running, tagged logger", "running", true, func(l log.Logger) { l.Error("boom") }, zapcore.ErrorLevel},
		{"info while stopping", "stopping", false, func(l log.Logger) { l.Info("stopped") }, zapcore.InfoLevel},
		{"dpanic while stopping", "stopping", false, func(l log.Logger) { l.DPanic("broken invariant") }, zapcore.DPanicLevel},
		{"scanner fatal while stopping", "stopping", false, func(l log.Logger) { l.Fatal("unable to start scanner") }, zapcore.DebugLevel},
		{"scanner fatal while stopping, tagged logger", "stopping", true, func(l log.Logger) { l.Fatal("unable to start scanner") }, zapcore.DebugLevel},
		{"scanner fatal while starting", "starting", false, func(l log.Logger) { l.Fatal("unable to start scanner") }, zapcore.WarnLevel},
		{"scanner fatal while running", "running", false, func(l log.Logger) { l.Fatal("unable to start scanner") }, zapcore.WarnLevel},
		{"other fatal while stopping", "stopping", false, func(l log.Logger) { l.Fatal("unable to start server") }, zapcore.FatalLevel},
		{"other fatal while running", "running", false, func(l log.Logger) { l.Fatal("unable to start server") }, zapcore.FatalLevel},
		// A Fatal while starting panics with a *startFatal (checked below).
		{"listener fatal while starting", "starting", false, func(l log.Logger) {
			l.Fatal("Failed to start gRPC listener", tag.Address("127.0.0.1:21000"))
		}, zapcore.ErrorLevel},
		{"listener fatal while starting, tagged logger", "starting", true, func(l log.Logger) {
			l.Fatal("Failed to start gRPC listener", tag.Address("127.0.0.1:21000"))
		}, zapcore.ErrorLevel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			var state serverState
			// A Fatal that gets through panics here instead of exiting.
			var l log.Logger = newServerLogger(log.NewZapLogger(zap.New(core, zap.WithFatalHook(zapcore.WriteThenPanic))), &state)
			if tt.with {
				l = log.With(l, tag.NewStringTag("component", "matching-engine"))
			}
			state.starting.Store(tt.phase == "starting")
			state.stopping.Store(tt.phase == "stopping")
			wantStartFatal := tt.phase == "starting" && tt.wantLevel == zapcore.ErrorLevel
			func() {
				defer func() {
					r := recover()
					var fatal *startFatal
					switch {
					case wantStartFatal:
						err, _ := r.(error)
						if !errors.As(err, &fatal) || !strings.Contains(fatal.Error(), "Failed to start gRPC listener address=127.0.0.1:21000") {
							t.Errorf("recovered %v, want a *startFatal naming the message and the address", r)
						}
					case r != nil && tt.wantLevel < zapcore.DPanicLevel:
						t.Errorf("logging panicked (a Fatal got through): %v", r)
					}
				}()
				tt.log(l)
			}()
			entries := logs.All()
			if len(entries) != 1 {
				t.Fatalf("%d entries, want 1", len(entries))
			}
			if entries[0].Level != tt.wantLevel {
				t.Errorf("level %v, want %v", entries[0].Level, tt.wantLevel)
			}
			if tt.with && entries[0].ContextMap()["component"] != "matching-engine" {
				t.Errorf("tags lost: %v", entries[0].ContextMap())
			}
		})
	}
}
