package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// versionInfo is what "clozeloop version" reports.
type versionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

func buildVersion() versionInfo {
	v := versionInfo{Version: "(devel)", GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v.Version += " " + s.Value[:12]
			}
		}
	}
	return v
}

func versionCmd() command {
	return command{
		name:    "version",
		summary: "print the clozeloop, Go and platform versions",
		run: func(ctx context.Context, env *cmdEnv, args []string) error {
			fs := newFlagSet(env, "version", "[--json]")
			asJSON := fs.Bool("json", false, "print JSON")
			if err := parseFlags(fs, args); err != nil {
				return err
			}
			v := buildVersion()
			if *asJSON {
				return writeJSON(env.stdout, v)
			}
			fmt.Fprintf(env.stdout, "clozeloop %s\ngo        %s\nplatform  %s\n", v.Version, v.GoVersion, v.Platform)
			return nil
		},
	}
}
