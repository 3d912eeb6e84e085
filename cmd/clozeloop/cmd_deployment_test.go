package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestDeploymentUsageErrors checks the worker-versioning flags refuse what
// Temporal would, before dialling anything (the address is unreachable).
func TestDeploymentUsageErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"deployment"}, "usage: clozeloop deployment describe"},
		{"unknown subcommand", []string{"deployment", "promote"}, `unknown deployment command "promote"`},
		{"set-current without build id", []string{"deployment", "set-current"}, "--build-id is required"},
		{"set-current with a bad build id", []string{"deployment", "set-current", "--build-id", "v1:2"}, `build id "v1:2"`},
		{"deployment name with a dot", []string{"deployment", "set-current", "--build-id", "v1", "--deployment", "a.b"}, `worker deployment "a.b"`},
		{"worker with a bad build id", []string{"worker", "--build-id", "-v1"}, `build id "-v1"`},
		{"worker deployment without build id", []string{"worker", "--deployment", "team-a"}, "without a build id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CLOZELOOP_TEMPORAL_ADDRESS", "127.0.0.1:1")
			t.Setenv("CLOZELOOP_BUILD_ID", "")
			t.Setenv("CLOZELOOP_DEPLOYMENT", "")
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q: want exit 2 and %q", code, stderr.String(), tc.want)
			}
		})
	}
}
