package torchrt

import (
	"errors"
	"runtime"
	"strings"
	"testing"
)

func TestRunRepairsThreadState(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := NumThreads()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = SetNumThreads(orig) })

	// Poison this OS thread the way an interrupted ts.NoGrad would.
	if err := setGradEnabled(false); err != nil {
		t.Fatal(err)
	}
	if err := SetNumThreads(2); err != nil {
		t.Fatal(err)
	}
	err = Run(func() error {
		on, err := GradEnabled()
		if err != nil {
			return err
		}
		if !on {
			return errors.New("grad mode still off inside Run")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if on, err := GradEnabled(); err != nil || !on {
		t.Errorf("after Run: grad enabled = %v, %v; want true", on, err)
	}
}

func TestRunErrors(t *testing.T) {
	sentinel := errors.New("boom")
	tests := []struct {
		name    string
		fn      func() error
		wantErr string
	}{
		{name: "ok", fn: func() error { return nil }},
		{name: "error", fn: func() error { return sentinel }, wantErr: "boom"},
		{name: "panic", fn: func() error { panic("gotch Must failed") }, wantErr: "panicked: gotch Must failed"},
		{name: "panic with grad off", fn: func() error {
			if err := setGradEnabled(false); err != nil {
				return err
			}
			panic("inside NoGrad")
		}, wantErr: "panicked: inside NoGrad"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Lock so that the check below runs on fn's OS thread.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			err := Run(tc.fn)
			if on, gerr := GradEnabled(); gerr != nil || !on {
				t.Errorf("grad mode after Run = %v, %v; want on", on, gerr)
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("Run = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Run = %v, want error containing %q", err, tc.wantErr)
			}
		})
	}
}
