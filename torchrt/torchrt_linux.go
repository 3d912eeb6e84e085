package torchrt

// Link flags on Linux. The libtorch library folder comes from CGO_LDFLAGS
// (scripts/env.sh adds -L$LIBTORCH/lib for an official libtorch); Debian's
// libtorch lives in the default search path.

/*
#cgo LDFLAGS: -ltorch_cpu -lc10 -lstdc++
*/
import "C"
