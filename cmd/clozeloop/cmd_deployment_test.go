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

// TestUnauthenticatedListenRefused checks that the commands serving the
// Temporal frontend and Web UI, which do not authenticate clients, refuse
// non-loopback addresses unless told the network is private.
func TestUnauthenticatedListenRefused(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"server frontend on every interface", []string{"server", "--addr", "0.0.0.0:7233", "--data", "x"}, "--addr 0.0.0.0:7233"},
		{"server UI on a LAN address", []string{"server", "--ui-addr", "10.1.2.3:8233", "--data", "x"}, "--ui-addr 10.1.2.3:8233"},
		{"server frontend without host", []string{"server", "--addr", ":7233", "--data", "x"}, "loopback only"},
		{"dev frontend on every interface", []string{"dev", "--temporal-addr", "0.0.0.0:7233"}, "--temporal-addr 0.0.0.0:7233"},
		{"dev UI on every interface", []string{"dev", "--ui-addr", "[::]:8233"}, "--ui-addr [::]:8233"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tc.want) || !strings.Contains(stderr.String(), "loopback only") {
				t.Fatalf("exit %d, stderr %q: want exit 2 naming %q and loopback only", code, stderr.String(), tc.want)
			}
		})
	}
}
