package workflows

import "testing"

func TestFineTuneSettingsWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   FineTuneSettings
		want FineTuneSettings
	}{
		{"empty gets the recipe", FineTuneSettings{},
			FineTuneSettings{Epochs: 3, LearningRate: 1e-4, BatchSize: 16, WarmupRatio: 0.1}},
		{"set fields stay", FineTuneSettings{Epochs: 1, LearningRate: 3e-5, BatchSize: 8, WarmupRatio: 0.2, MaxSteps: 7, ReplayWeight: 0.3, Seed: 9, CheckpointEvery: 50},
			FineTuneSettings{Epochs: 1, LearningRate: 3e-5, BatchSize: 8, WarmupRatio: 0.2, MaxSteps: 7, ReplayWeight: 0.3, Seed: 9, CheckpointEvery: 50}},
		{"optional zeros stay zero", FineTuneSettings{LearningRate: 2e-4},
			FineTuneSettings{Epochs: 3, LearningRate: 2e-4, BatchSize: 16, WarmupRatio: 0.1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.WithDefaults(); got != tc.want {
				t.Errorf("WithDefaults() = %+v, want %+v", got, tc.want)
			}
		})
	}
}
