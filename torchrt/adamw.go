package torchrt

/*
#include "torchrt.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// AdamWStep are the settings of one AdamW step.
type AdamWStep struct {
	LR           float64 // learning rate of this step
	Beta1, Beta2 float64 // moment decay rates
	Eps          float64 // added to the denominator
	WeightDecay  float64 // decoupled weight decay of the decayed parameters
	Step         int64   // 1-based number of this step (bias corrections)
	MaxNorm      float64 // clip the gradients' global L2 norm to this; <= 0: no clipping
}

// AdamW takes one AdamW step (torch.optim.AdamW's arithmetic, gradients
// clipped as torch.nn.utils.clip_grad_norm_ does) on the parameters whose
// libtorch handles (torch::Tensor*, as gotch's libtch.Ctensor) are params,
// with first and second moments expAvg[i] and expAvgSq[i], and zeroes their
// gradients in the same pass. (Setting them to none instead, as PyTorch's
// zero_grad does by default, measured slower for bert-base: the next
// backward pass then needs fresh gradient memory.) decay[i] applies weight decay to parameter i. It returns the
// gradients' global L2 norm before clipping. Parameters without a gradient
// are left alone.
//
// Contiguous float32 CPU tensors are updated in one fused pass over memory
// per parameter (gradient, parameter and moments read once, written once);
// other tensors (CUDA, other dtypes or layouts) take libtorch's in-place
// operations, one per term, with the same arithmetic. The version counters
// of the tensors it writes are bumped, as in-place operations bump them.
// The handles must stay valid during the call.
func AdamW(params, expAvg, expAvgSq []uintptr, decay []bool, s AdamWStep) (norm float64, err error) {
	n := len(params)
	if len(expAvg) != n || len(expAvgSq) != n || len(decay) != n {
		return 0, fmt.Errorf("adamw step: %d parameters, %d first moments, %d second moments, %d decay flags",
			n, len(expAvg), len(expAvgSq), len(decay))
	}
	if n == 0 {
		return 0, nil
	}
	flags := make([]uint8, n)
	for i, d := range decay {
		if d {
			flags[i] = 1
		}
	}
	opts := C.torchrt_adamw_options{
		lr: C.double(s.LR), beta1: C.double(s.Beta1), beta2: C.double(s.Beta2), eps: C.double(s.Eps),
		weight_decay: C.double(s.WeightDecay), step: C.int64_t(s.Step), max_norm: C.double(s.MaxNorm),
	}
	var out C.double
	if err := cError(C.torchrt_adamw((*C.uintptr_t)(unsafe.Pointer(&params[0])), (*C.uintptr_t)(unsafe.Pointer(&expAvg[0])),
		(*C.uintptr_t)(unsafe.Pointer(&expAvgSq[0])), (*C.uint8_t)(unsafe.Pointer(&flags[0])), C.int64_t(n), opts, &out)); err != nil {
		return 0, err
	}
	return float64(out), nil
}
