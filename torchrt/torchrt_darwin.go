package torchrt

// Link flags on macOS: official libtorch builds for macOS (CPU/MPS) come with
// libc++; scripts/env.sh adds -L$LIBTORCH/lib and an rpath through CGO_LDFLAGS.

/*
#cgo LDFLAGS: -ltorch_cpu -lc10 -lc++
*/
import "C"
