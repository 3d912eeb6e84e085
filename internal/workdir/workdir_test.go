package workdir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOrTemp(t *testing.T) {
	given := t.TempDir()
	tests := []struct {
		name     string
		dir      string
		wantTemp bool
	}{
		{"named folder kept", given, false},
		{"temporary folder removed", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, cleanup, err := OrTemp(tc.dir, "clozeloop-workdir-test-")
			if err != nil {
				t.Fatal(err)
			}
			if !tc.wantTemp && path != tc.dir {
				t.Errorf("path %q, want the named %q", path, tc.dir)
			}
			if tc.wantTemp && !strings.HasPrefix(filepath.Base(path), "clozeloop-workdir-test-") {
				t.Errorf("temporary path %q does not follow the pattern", path)
			}
			if err := os.WriteFile(filepath.Join(path, "f"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			cleanup()
			_, err = os.Stat(path)
			if removed := os.IsNotExist(err); removed != tc.wantTemp {
				t.Errorf("after cleanup: removed %v, want %v (stat: %v)", removed, tc.wantTemp, err)
			}
		})
	}
}

func TestOrTempError(t *testing.T) {
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	if _, _, err := OrTemp("", "x-"); err == nil || !strings.Contains(err.Error(), "temporary work folder") {
		t.Errorf("error %v, want one naming the temporary work folder", err)
	}
}
