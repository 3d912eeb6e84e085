package devserver

import (
	"sync/atomic"
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
		stopping  bool
		with      bool
		log       func(l log.Logger)
		wantLevel zapcore.Level
	}{
		{"warning while running", false, false, func(l log.Logger) { l.Warn("Failed to poll for task.") }, zapcore.WarnLevel},
		{"error while running", false, false, func(l log.Logger) { l.Error("error fetching user data from parent") }, zapcore.ErrorLevel},
		{"info while running", false, false, func(l log.Logger) { l.Info("started") }, zapcore.InfoLevel},
		{"benign warning", false, false, func(l log.Logger) {
			l.Warn("HTTP API port has not been set. Nexus HTTP endpoints will not be available.")
		}, zapcore.DebugLevel},
		{"warning while stopping", true, false, func(l log.Logger) { l.Warn("Failed to poll for task.") }, zapcore.DebugLevel},
		{"error while stopping", true, false, func(l log.Logger) { l.Error("error fetching user data from parent") }, zapcore.DebugLevel},
		{"error while stopping, tagged logger", true, true, func(l log.Logger) { l.Error("error fetching user data from parent") }, zapcore.DebugLevel},
		{"error while running, tagged logger", false, true, func(l log.Logger) { l.Error("boom") }, zapcore.ErrorLevel},
		{"info while stopping", true, false, func(l log.Logger) { l.Info("stopped") }, zapcore.InfoLevel},
		{"dpanic while stopping", true, false, func(l log.Logger) { l.DPanic("broken invariant") }, zapcore.DPanicLevel},
		{"scanner fatal while stopping", true, false, func(l log.Logger) { l.Fatal("unable to start scanner") }, zapcore.DebugLevel},
		{"scanner fatal while stopping, tagged logger", true, true, func(l log.Logger) { l.Fatal("unable to start scanner") }, zapcore.DebugLevel},
		{"scanner fatal while starting", false, false, func(l log.Logger) { l.Fatal("unable to start scanner") }, zapcore.WarnLevel},
		{"other fatal while stopping", true, false, func(l log.Logger) { l.Fatal("unable to start server") }, zapcore.FatalLevel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			var stopping atomic.Bool
			// A Fatal that gets through panics here instead of exiting.
			var l log.Logger = newServerLogger(log.NewZapLogger(zap.New(core, zap.WithFatalHook(zapcore.WriteThenPanic))), &stopping)
			if tt.with {
				l = log.With(l, tag.NewStringTag("component", "matching-engine"))
			}
			stopping.Store(tt.stopping)
			func() {
				defer func() {
					if r := recover(); r != nil && tt.wantLevel < zapcore.DPanicLevel {
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
