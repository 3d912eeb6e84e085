package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/clozeloop/clozeloop/torchrt"
)

// gotchModule is the module path of gotch, looked up in the build info.
const gotchModule = "github.com/sugarme/gotch"

// versionInfo is what "clozeloop version" reports.
type versionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
	// Gotch is the gotch module version linked into the binary.
	Gotch string `json:"gotch"`
	// Libtorch is the libtorch version of the headers the binary was built with.
	Libtorch string `json:"libtorch"`
}

func buildVersion() versionInfo {
	v := versionInfo{
		Version:   "(devel)",
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
		Gotch:     "(not linked)",
		Libtorch:  torchrt.Version(),
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v.Version += " " + s.Value[:12]
			}
		}
		for _, d := range bi.Deps {
			if d.Path == gotchModule {
				v.Gotch = d.Version
				if d.Replace != nil {
					v.Gotch += " => " + d.Replace.Path + " " + d.Replace.Version
				}
			}
		}
	}
	return v
}

func versionCmd() command {
	return command{
		name:    "version",
		summary: "print the clozeloop, Go, gotch and libtorch versions",
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
			fmt.Fprintf(env.stdout, "clozeloop %s\ngo        %s\nplatform  %s\ngotch     %s\nlibtorch  %s\n",
				v.Version, v.GoVersion, v.Platform, v.Gotch, v.Libtorch)
			return nil
		},
	}
}
