package workflows

import (
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"
)

func TestRunConfigDensityTargetAndWarmup(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*RunConfig)
		err  string
	}{
		{"density", func(c *RunConfig) { c.Strategy = "density" }, ""},
		{"density mix", func(c *RunConfig) { c.Strategy = "density=0.5,random=0.5" }, ""},
		{"target with a sample", func(c *RunConfig) { c.Strategy = "target"; c.TargetURI = "mem://target" }, ""},
		{"target without a sample", func(c *RunConfig) { c.Strategy = "target" }, "target_uri"},
		{"target draw with a sample", func(c *RunConfig) { c.Strategy = "target-random"; c.TargetURI = "mem://target" }, ""},
		{"target draw without a sample", func(c *RunConfig) { c.Strategy = "target-random" }, "target_uri"},
		{"target draw in a mix without a sample", func(c *RunConfig) { c.Strategy = "entropy=0.5,target-random=0.5" }, "target_uri"},
		{"target in a mix without a sample", func(c *RunConfig) { c.Strategy = "entropy=0.5,target=0.5" }, "target_uri"},
		{"domain draw with a sample", func(c *RunConfig) { c.Strategy = "domain-random"; c.TargetURI = "mem://target" }, ""},
		{"domain draw without a sample", func(c *RunConfig) { c.Strategy = "domain-random" }, "target_uri"},
		{"domain without a sample", func(c *RunConfig) { c.Strategy = "domain" }, "target_uri"},
		{"domain draw in a mix without a sample", func(c *RunConfig) { c.Strategy = "random=0.5,domain-random=0.5" }, "target_uri"},
		{"warm-up", func(c *RunConfig) { c.FineTune.WarmupRatio = 0.1 }, ""},
		{"warm-up of 1", func(c *RunConfig) { c.FineTune.WarmupRatio = 1 }, "warmup_ratio"},
		{"negative warm-up", func(c *RunConfig) { c.FineTune.WarmupRatio = -0.1 }, "warmup_ratio"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig()
			tc.mod(&cfg)
			err := cfg.Validate()
			if tc.err == "" && err != nil {
				t.Fatalf("rejected: %v", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.err)
			}
		})
	}
}

func TestTargetURIReachesTheScorer(t *testing.T) {
	for _, strategy := range []string{"target", "target-random", "domain", "domain-random"} {
		t.Run(strategy, func(t *testing.T) {
			l := newLab(12)
			cfg := baseConfig()
			cfg.Strategy = strategy
			cfg.TargetURI = "mem://target"
			var outs []*outcome
			res, _ := chain(t, cfg, l, func(env *testsuite.TestWorkflowEnvironment, run int) {
				env.RegisterDelayedCallback(func() { answerAll(t, env, &outs, "ann-a", "ann-b") }, time.Hour)
			})
			mustAccept(t, outs)
			if res.Rounds != 1 || len(l.scored) != cfg.PoolShards {
				t.Fatalf("%d rounds, %d shard scorings", res.Rounds, len(l.scored))
			}
			for _, in := range l.scored {
				if in.TargetURI != "mem://target" || len(in.Strategies) != 1 || in.Strategies[0] != strategy {
					t.Errorf("shard input %+v, want the %s strategy and sample", in, strategy)
				}
			}
		})
	}
}

func TestHeartbeatTimeoutValidation(t *testing.T) {
	base := RunConfig{RunID: "r", PoolURI: "p", EvalURI: "e", ModelURI: "m", Strategy: "random", BatchSize: 4,
		RoundDeadline: Duration(time.Hour)}
	tests := []struct {
		hb      time.Duration
		wantErr bool
	}{
		{0, false},
		{15 * time.Second, false},
		{10 * time.Minute, false},
		{5 * time.Second, true},
		{-time.Second, true},
	}
	for _, tt := range tests {
		c := base
		c.FineTune.HeartbeatTimeout = Duration(tt.hb)
		if err := c.Validate(); (err != nil) != tt.wantErr {
			t.Errorf("heartbeat_timeout %s: Validate() = %v, want error %v", tt.hb, err, tt.wantErr)
		}
	}
}
