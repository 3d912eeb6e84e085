// torchrt.h is the C interface of clozeloop's own libtorch shims. Every
// function catches C++ exceptions: a non-NULL return value is an error message
// allocated with malloc that the caller must free.
#ifndef CLOZELOOP_TORCHRT_H
#define CLOZELOOP_TORCHRT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// torchrt_compiled_version returns TORCH_VERSION from torch/version.h as seen
// when this file was compiled (a static string; do not free).
const char *torchrt_compiled_version(void);

// torchrt_compat returns the value of CLOZELOOP_COMPAT (the hash of the
// compatibility header) when the build used it, or "" (static; do not free).
const char *torchrt_compat(void);

// torchrt_show_config stores at::show_config() in *out (malloc'd).
char *torchrt_show_config(char **out);

// torchrt_parallel_info stores at::get_parallel_info() in *out (malloc'd).
char *torchrt_parallel_info(char **out);

// torchrt_set_num_threads calls at::set_num_threads(n).
char *torchrt_set_num_threads(int n);

// torchrt_num_threads stores in *out the intra-op thread count that libtorch
// gives a thread that has not run any parallel work yet: it asks from a fresh
// thread, so the answer does not depend on which OS thread calls it.
char *torchrt_num_threads(int *out);

// torchrt_manual_seed seeds libtorch's default generators.
char *torchrt_manual_seed(uint64_t seed);

// torchrt_cuda stores torch::cuda::is_available() and
// torch::cuda::device_count() in *available and *count.
char *torchrt_cuda(int *available, int64_t *count);

// torchrt_prepare_thread readies the calling OS thread for libtorch work:
// it applies the process-wide intra-op thread count (at::init_num_threads)
// and switches autograd's thread-local grad mode on.
char *torchrt_prepare_thread(void);

// torchrt_grad_enabled stores c10::GradMode::is_enabled() of the calling OS
// thread in *out.
char *torchrt_grad_enabled(int *out);

// torchrt_set_grad_enabled sets the calling OS thread's grad mode.
char *torchrt_set_grad_enabled(int enabled);

// torchrt_version_sum stores in *out the sum of the autograd version
// counters (at::Tensor::_version()) of the n tensors handles[i], each a
// torch::Tensor* (a gotch libtch handle). Every in-place operation on a
// tensor increments its counter, so the sum changes when any of them was
// modified.
char *torchrt_version_sum(const uintptr_t *handles, int64_t n, uint64_t *out);

// torchrt_encoder_layer runs at::_transformer_encoder_layer_fwd, a
// post-LayerNorm transformer encoder layer (norm_first false), on src and
// stores a new torch::Tensor* with the result in *out (free it with delete,
// as gotch's at_free does). Every tensor argument is a torch::Tensor*.
// params are, in order: the stacked q, k, v weight and bias, the output
// projection's weight and bias, the first LayerNorm's weight and bias, the
// second LayerNorm's weight and bias, and the two feed-forward linear
// layers' weights and biases (12 handles). use_gelu selects the erf GELU
// (else ReLU) in the feed-forward. mask is 0 for none (passed as an absent
// optional, which gotch's generated wrapper cannot do) or a bool key padding
// mask [batch, length], true at padding (mask_type 1).
char *torchrt_encoder_layer(uintptr_t src, int64_t embed_dim, int64_t num_heads,
                            const uintptr_t *params, int use_gelu, double eps,
                            uintptr_t mask, void **out);

// torchrt_gelu stores in *out a new torch::Tensor* with at::gelu of src (a
// torch::Tensor*), the tanh approximation when tanh_approx is not 0, else
// the exact erf form. (gotch's generated atg_gelu copies its approximate
// argument with C.CString and never frees it: one leaked chunk per call.)
char *torchrt_gelu(uintptr_t src, int tanh_approx, void **out);

// torchrt_use_huge_pages makes libtorch's CPU allocator give every
// allocation of at least threshold bytes its own anonymous mapping, aligned
// to 2 MiB and advised for transparent huge pages (madvise
// MADV_HUGEPAGE), and unmapped when freed; smaller allocations go to the
// allocator it replaces. Only the first call installs it (later calls,
// whatever their threshold, do nothing); *installed is 1 when the
// allocator is in place after the call. On systems without
// MADV_HUGEPAGE it installs nothing.
char *torchrt_use_huge_pages(uint64_t threshold, int *installed);

// torchrt_huge_page_bytes returns the number of bytes the allocator of
// torchrt_use_huge_pages holds mapped now.
uint64_t torchrt_huge_page_bytes(void);

// torchrt_adamw_options are the settings of one torchrt_adamw step.
typedef struct {
  double lr;            // learning rate of this step
  double beta1, beta2;  // moment decay rates
  double eps;           // added to the denominator
  double weight_decay;  // decoupled weight decay of the decayed parameters
  int64_t step;         // 1-based number of this step (bias corrections)
  double max_norm;      // clip the gradients' global L2 norm to this; <= 0: no clipping
} torchrt_adamw_options;

// torchrt_adamw takes one AdamW step (torch.optim.AdamW's arithmetic) on n
// parameters: it reads each parameter's gradient, computes the gradients'
// global L2 norm (stored in *norm), scales them by max_norm / (norm + 1e-6)
// when the norm exceeds max_norm (torch.nn.utils.clip_grad_norm_), updates
// the parameter and its moments exp_avg[i] and exp_avg_sq[i], and zeroes
// the gradient (kept, not set to none: the next backward adds into it, which
// measured faster than fresh gradient memory every step). decay[i] != 0
// applies weight decay to parameter i.
// Parameters without a gradient are left alone. Every handle is a
// torch::Tensor*. Float32 CPU tensors that are contiguous take one fused
// pass over memory per parameter; others (CUDA, other dtypes or layouts)
// take libtorch's in-place operations with the same arithmetic. Runs
// without autograd recording; the version counters of every tensor it
// writes are bumped.
char *torchrt_adamw(const uintptr_t *params, const uintptr_t *exp_avg,
                     const uintptr_t *exp_avg_sq, const uint8_t *decay, int64_t n,
                     torchrt_adamw_options opts, double *norm);

#ifdef __cplusplus
}
#endif

#endif
