// Package rss measures the memory of pool scoring: the resident set size
// (VmRSS) and its peak (VmHWM) of the process while the model engine
// scores a large pool, sampled after every tenth of the pool, to show
// whether memory stays flat or grows with the pool.
package rss

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Status holds the memory fields of /proc/self/status, in bytes.
type Status struct {
	// RSS is VmRSS, the resident set size now.
	RSS int64
	// HWM is VmHWM, the peak resident set size since the process started
	// or since ResetPeak.
	HWM int64
	// File is RssFile, the part of RSS that maps files (the code and data
	// of libtorch and the other shared libraries, as far as they were
	// touched), or 0 where the kernel does not report it.
	File int64
}

// ParseStatus reads VmRSS, VmHWM and (when present) RssFile from the text
// of /proc/<pid>/status.
func ParseStatus(r io.Reader) (Status, error) {
	var st Status
	var haveRSS, haveHWM bool
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM" && key != "RssFile") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return st, fmt.Errorf("parse %s: want \"<number> kB\", got %q", key, strings.TrimSpace(val))
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 {
			return st, fmt.Errorf("parse %s: %q is not a size in kB", key, f[0])
		}
		switch key {
		case "VmRSS":
			st.RSS, haveRSS = n*1024, true
		case "VmHWM":
			st.HWM, haveHWM = n*1024, true
		default:
			st.File = n * 1024
		}
	}
	if err := sc.Err(); err != nil {
		return st, fmt.Errorf("read process status: %w", err)
	}
	if !haveRSS || !haveHWM {
		return st, errors.New("process status has no VmRSS or VmHWM line")
	}
	return st, nil
}

// Self returns the Status of the current process.
func Self() (Status, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return Status{}, fmt.Errorf("read /proc/self/status (memory is measured on Linux only): %w", err)
	}
	st, err := ParseStatus(bytes.NewReader(b))
	if err != nil {
		return st, fmt.Errorf("/proc/self/status: %w", err)
	}
	return st, nil
}

// ResetPeak resets the process's VmHWM to its current VmRSS (Linux: "5"
// written to /proc/self/clear_refs).
func ResetPeak() error {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak RSS through /proc/self/clear_refs: %w", err)
	}
	return nil
}

// MiB converts bytes to mebibytes.
func MiB(b int64) float64 { return float64(b) / (1 << 20) }
