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

#ifdef __cplusplus
}
#endif

#endif
