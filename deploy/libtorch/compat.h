// compat.h lets an unmodified github.com/sugarme/gotch v0.9.1 (whose
// libtch/torch_api_generated.cpp.h is generated against libtorch 2.1) compile
// against an older libtorch such as Debian 12's 1.13.
//
// It is passed to the C++ compiler only through the environment
// (scripts/env.sh adds `-include <abs path>/compat.h` to CGO_CXXFLAGS when the
// detected libtorch is older than 2.1). It never edits gotch's sources.
//
// How it works:
//   1. Every torch header that gotch's torch_api.h / torch_api.cpp include is
//      included here first, so the macros at the end cannot touch torch's own
//      headers (they are all #pragma once and will not be re-read).
//   2. Ops that 1.13 lacks are declared directly in `namespace torch`: the
//      qualified name torch::foo then finds that declaration before it would
//      follow `using namespace at`. Where 1.13 can compute the same result
//      cheaply the op is rebuilt from 1.13 ops; otherwise it throws a
//      std::runtime_error that names the op and the libtorch version it needs
//      (gotch's PROTECT macro turns that into a Go error).
//   3. Ops whose signature changed get a using-declaration of the at:: overload
//      set plus an extra overload with the 2.1 signature.
//   4. Member calls on at::Tensor whose signature changed (self->to_dense(dtype,
//      masked_grad), self->squeeze_(dims), self->_to_sparse(...), ...) are
//      rewritten by function-like macros defined after all headers:
//      `self->name(args)` becomes `self->getIntrusivePtr() ->* helper(args)`,
//      where helper returns a small callable and operator->* applies it to a
//      Tensor handle that shares self's TensorImpl.
//
// On libtorch >= 2.1, or when the translation unit is not gotch's libtch (no
// "torch_api_generated.h" on the quote include path) and
// CLOZELOOP_COMPAT_FORCE is not defined, this header does nothing.
#ifndef CLOZELOOP_DEPLOY_LIBTORCH_COMPAT_H
#define CLOZELOOP_DEPLOY_LIBTORCH_COMPAT_H

#ifdef __cplusplus
#if defined(CLOZELOOP_COMPAT_FORCE) || __has_include("torch_api_generated.h")

#include <torch/version.h>

#if TORCH_VERSION_MAJOR < 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR < 1)
#define CLOZELOOP_COMPAT_ACTIVE 1

// (1) Everything gotch's torch_api.h and torch_api.cpp include.
#include <stdint.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <ATen/autocast_mode.h>
#include <ATen/core/interned_strings.h>
#include <torch/csrc/autograd/engine.h>
#include <torch/csrc/jit/passes/fixup_trace_scope_blocks.h>
#include <torch/csrc/jit/passes/normalize_ops.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>
#include <torch/torch.h>

namespace clozeloop_compat {

// unsupported throws the error that gotch reports as a Go error for an op that
// this libtorch cannot run.
[[noreturn]] inline void unsupported(const std::string& op) {
  throw std::runtime_error("clozeloop: torch::" + op + " needs libtorch >= 2.1 (this is libtorch " +
                           std::to_string(TORCH_VERSION_MAJOR) + "." +
                           std::to_string(TORCH_VERSION_MINOR) + ")");
}

using Tensor2 = std::tuple<at::Tensor, at::Tensor>;
using Tensor3 = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using Tensor4 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using Tensor5 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using Tensor6 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using Tensor7 =
    std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// copy_into stores result in out, resizing out when its shape differs, the
// way an ATen out= variant does.
inline at::Tensor& copy_into(at::Tensor& out, const at::Tensor& result) {
  if (!out.sizes().equals(result.sizes())) {
    out.resize_(result.sizes());
  }
  out.copy_(result);
  return out;
}

// opt_tensor maps the undefined Tensor that gotch passes for "None" to nullopt.
inline c10::optional<at::Tensor> opt_tensor(const c10::optional<at::Tensor>& t) {
  if (t.has_value() && t->defined()) {
    return t;
  }
  return c10::nullopt;
}

// int_correction turns libtorch 2.1's Scalar correction into 1.13's integer
// one; a fractional correction has no 1.13 equivalent.
inline c10::optional<int64_t> int_correction(const c10::Scalar& correction, const char* op) {
  if (correction.isIntegral(/*includeBool=*/false)) {
    return correction.toLong();
  }
  if (correction.isFloatingPoint()) {
    const double v = correction.toDouble();
    if (std::isfinite(v) && v == std::floor(v)) {
      return static_cast<int64_t>(v);
    }
  }
  unsupported(std::string(op) + " with a fractional correction");
}

// squeeze_dims returns the wrapped dims of a 2.1 squeeze(self, dims) call in
// descending order, rejecting duplicates like libtorch 2.1 does.
inline std::vector<int64_t> squeeze_dims(const at::Tensor& self, at::IntArrayRef dims) {
  std::vector<int64_t> wrapped;
  wrapped.reserve(dims.size());
  for (const int64_t d : dims) {
    const int64_t w = c10::maybe_wrap_dim(d, self.dim());
    TORCH_CHECK(std::find(wrapped.begin(), wrapped.end(), w) == wrapped.end(), "dim ", w,
                " appears multiple times in the list of dims");
    wrapped.push_back(w);
  }
  std::sort(wrapped.begin(), wrapped.end(), std::greater<int64_t>());
  return wrapped;
}

inline at::Tensor squeeze(const at::Tensor& self, at::IntArrayRef dims) {
  at::Tensor result = self;
  for (const int64_t d : squeeze_dims(self, dims)) {
    result = at::squeeze(result, d);
  }
  return result;
}

inline std::vector<int64_t> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.to(at::kLong).contiguous().cpu();
  const int64_t* p = c.data_ptr<int64_t>();
  return std::vector<int64_t>(p, p + c.numel());
}

// sdpa_math is the reference ("math") scaled dot product attention of
// libtorch 2.1, built from 1.13 ops. It returns the output and the attention
// weights.
inline Tensor2 sdpa_math(const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
                         const c10::optional<at::Tensor>& attn_mask_in, double dropout_p,
                         bool is_causal, const c10::optional<at::Tensor>& dropout_mask_in,
                         c10::optional<double> scale) {
  TORCH_CHECK(query.dim() >= 2 && key.dim() >= 2 && value.dim() >= 2,
              "scaled_dot_product_attention: query, key and value need at least 2 dims");
  const c10::optional<at::Tensor> attn_mask = opt_tensor(attn_mask_in);
  const c10::optional<at::Tensor> dropout_mask = opt_tensor(dropout_mask_in);
  TORCH_CHECK(!(is_causal && attn_mask.has_value()),
              "scaled_dot_product_attention: explicit attn_mask should not be set when is_causal=True");
  const double scale_factor =
      scale.has_value() ? *scale : 1.0 / std::sqrt(static_cast<double>(query.size(-1)));
  at::Tensor attn = at::matmul(query, key.transpose(-2, -1)).mul(scale_factor);
  if (is_causal) {
    const int64_t l = query.size(-2);
    const int64_t s = key.size(-2);
    const at::Tensor keep = at::ones({l, s}, query.options().dtype(at::kBool)).tril();
    attn = attn.masked_fill(keep.logical_not(), -std::numeric_limits<double>::infinity());
  } else if (attn_mask.has_value()) {
    if (attn_mask->scalar_type() == at::kBool) {
      attn = attn.masked_fill(attn_mask->logical_not(), -std::numeric_limits<double>::infinity());
    } else {
      attn = attn.add(*attn_mask);
    }
  }
  attn = at::softmax(attn, -1);
  if (dropout_p > 0.0) {
    if (dropout_mask.has_value()) {
      attn = attn.masked_fill(dropout_mask->logical_not(), 0.0).mul(1.0 / (1.0 - dropout_p));
    } else {
      attn = at::dropout(attn, dropout_p, /*train=*/true);
    }
  }
  return Tensor2(at::matmul(attn, value), attn);
}

// no_dense_dim rejects the dense_dim argument that 1.13's compressed sparse
// conversions do not have.
inline void no_dense_dim(c10::optional<int64_t> dense_dim, const char* op) {
  if (dense_dim.has_value() && *dense_dim != 0) {
    unsupported(std::string(op) + " with dense_dim > 0");
  }
}

// to_sparse_layout is libtorch 2.1's Tensor::to_sparse(layout, blocksize,
// dense_dim) on 1.13's per-layout conversions.
inline at::Tensor to_sparse_layout(const at::Tensor& self, c10::optional<at::Layout> layout,
                                   c10::optional<at::IntArrayRef> blocksize,
                                   c10::optional<int64_t> dense_dim, const char* op) {
  const at::Layout l = layout.value_or(at::kSparse);
  switch (l) {
    case at::kSparse:
      TORCH_CHECK(!blocksize.has_value(), op, ": blocksize is only for BSR/BSC layouts");
      if (dense_dim.has_value()) {
        return self.to_sparse(self.dim() - *dense_dim);
      }
      return self.to_sparse();
    case at::kSparseCsr:
      no_dense_dim(dense_dim, op);
      return self.to_sparse_csr();
    case at::kSparseCsc:
      no_dense_dim(dense_dim, op);
      return self.to_sparse_csc();
    case at::kSparseBsr:
      TORCH_CHECK(blocksize.has_value(), op, ": a blocksize is required for the BSR layout");
      no_dense_dim(dense_dim, op);
      return self.to_sparse_bsr(*blocksize);
    case at::kSparseBsc:
      TORCH_CHECK(blocksize.has_value(), op, ": a blocksize is required for the BSC layout");
      no_dense_dim(dense_dim, op);
      return self.to_sparse_bsc(*blocksize);
    default:
      TORCH_CHECK(false, op, ": expected a sparse layout, got ", l);
  }
}

// Member is a deferred member call: operator->* applies fn to a Tensor handle
// that shares the TensorImpl of the object the call was written on.
template <class F>
struct Member {
  F fn;
};

template <class F>
Member<F> member(F fn) {
  return Member<F>{std::move(fn)};
}

template <class F>
at::Tensor operator->*(const c10::intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>& impl,
                       Member<F>&& call) {
  const at::Tensor self(impl);
  return call.fn(self);
}

// Helpers behind the member-call macros at the end of this header.
inline auto member_to_dense(c10::optional<at::ScalarType> dtype = c10::nullopt,
                            bool /*masked_grad*/ = true) {
  return member([dtype](const at::Tensor& s) { return s.to_dense(dtype); });
}

inline auto member__to_dense(c10::optional<at::ScalarType> dtype = c10::nullopt,
                             bool /*masked_grad*/ = true) {
  return member([dtype](const at::Tensor& s) { return s._to_dense(dtype); });
}

inline auto member_to_sparse_layout(c10::optional<at::Layout> layout,
                                    c10::optional<at::IntArrayRef> blocksize,
                                    c10::optional<int64_t> dense_dim, const char* op) {
  c10::optional<std::vector<int64_t>> bs;
  if (blocksize.has_value()) {
    bs = blocksize->vec();
  }
  return member([layout, bs, dense_dim, op](const at::Tensor& s) {
    c10::optional<at::IntArrayRef> b;
    if (bs.has_value()) {
      b = at::IntArrayRef(*bs);
    }
    return to_sparse_layout(s, layout, b, dense_dim, op);
  });
}

inline auto member_to_sparse(c10::optional<at::Layout> layout,
                             c10::optional<at::IntArrayRef> blocksize,
                             c10::optional<int64_t> dense_dim) {
  return member_to_sparse_layout(layout, blocksize, dense_dim, "to_sparse");
}
inline auto member_to_sparse(int64_t sparse_dim) {
  return member([sparse_dim](const at::Tensor& s) { return s.to_sparse(sparse_dim); });
}
inline auto member_to_sparse() {
  return member([](const at::Tensor& s) { return s.to_sparse(); });
}
inline auto member__to_sparse(c10::optional<at::Layout> layout,
                              c10::optional<at::IntArrayRef> blocksize,
                              c10::optional<int64_t> dense_dim) {
  return member_to_sparse_layout(layout, blocksize, dense_dim, "_to_sparse");
}
inline auto member__to_sparse(int64_t sparse_dim) { return member_to_sparse(sparse_dim); }
inline auto member__to_sparse() { return member_to_sparse(); }

inline auto member_to_sparse_csr(c10::optional<int64_t> dense_dim = c10::nullopt) {
  return member_to_sparse_layout(at::kSparseCsr, c10::nullopt, dense_dim, "to_sparse_csr");
}
inline auto member_to_sparse_csc(c10::optional<int64_t> dense_dim = c10::nullopt) {
  return member_to_sparse_layout(at::kSparseCsc, c10::nullopt, dense_dim, "to_sparse_csc");
}
inline auto member_to_sparse_bsr(at::IntArrayRef blocksize,
                                 c10::optional<int64_t> dense_dim = c10::nullopt) {
  return member_to_sparse_layout(at::kSparseBsr, blocksize, dense_dim, "to_sparse_bsr");
}
inline auto member_to_sparse_bsc(at::IntArrayRef blocksize,
                                 c10::optional<int64_t> dense_dim = c10::nullopt) {
  return member_to_sparse_layout(at::kSparseBsc, blocksize, dense_dim, "to_sparse_bsc");
}
inline auto member__to_sparse_csr(c10::optional<int64_t> dense_dim = c10::nullopt) {
  return member_to_sparse_layout(at::kSparseCsr, c10::nullopt, dense_dim, "_to_sparse_csr");
}
inline auto member__to_sparse_csc(c10::optional<int64_t> dense_dim = c10::nullopt) {
  return member_to_sparse_layout(at::kSparseCsc, c10::nullopt, dense_dim, "_to_sparse_csc");
}
inline auto member__to_sparse_bsr(at::IntArrayRef blocksize,
                                  c10::optional<int64_t> dense_dim = c10::nullopt) {
  return member_to_sparse_layout(at::kSparseBsr, blocksize, dense_dim, "_to_sparse_bsr");
}
inline auto member__to_sparse_bsc(at::IntArrayRef blocksize,
                                  c10::optional<int64_t> dense_dim = c10::nullopt) {
  return member_to_sparse_layout(at::kSparseBsc, blocksize, dense_dim, "_to_sparse_bsc");
}

inline auto member_squeeze_() {
  return member([](const at::Tensor& s) { return s.squeeze_(); });
}
inline auto member_squeeze_(int64_t dim) {
  return member([dim](const at::Tensor& s) { return s.squeeze_(dim); });
}
inline auto member_squeeze_(at::IntArrayRef dims) {
  std::vector<int64_t> d = dims.vec();
  return member([d](const at::Tensor& s) {
    // Each squeeze_ changes the sizes of the shared TensorImpl, so self sees it.
    for (const int64_t w : squeeze_dims(s, d)) {
      s.squeeze_(w);
    }
    return s;
  });
}

inline auto member__sparse_mask_projection(const at::Tensor& /*mask*/,
                                           bool /*accumulate_matches*/) {
  return member([](const at::Tensor&) -> at::Tensor { unsupported("_sparse_mask_projection"); });
}

}  // namespace clozeloop_compat

// CLOZELOOP_UNSUPPORTED declares torch::name accepting any arguments and
// throwing the "needs libtorch >= 2.1" error.
#define CLOZELOOP_UNSUPPORTED(ret, name)             \
  template <class... Args>                           \
  inline ret name(Args&&...) {                       \
    ::clozeloop_compat::unsupported(#name);          \
  }

namespace torch {

using clozeloop_compat::Tensor2;
using clozeloop_compat::Tensor3;
using clozeloop_compat::Tensor4;
using clozeloop_compat::Tensor5;
using clozeloop_compat::Tensor6;
using clozeloop_compat::Tensor7;

// ---- (2a) ops with no 1.13 equivalent: they throw. ----
CLOZELOOP_UNSUPPORTED(at::Tensor, _cslt_compress)
CLOZELOOP_UNSUPPORTED(at::Tensor, _cslt_sparse_mm)
CLOZELOOP_UNSUPPORTED(Tensor4, _efficient_attention_backward)
CLOZELOOP_UNSUPPORTED(at::Tensor, _fill_mem_eff_dropout_mask_)
CLOZELOOP_UNSUPPORTED(Tensor3, _flash_attention_backward)
CLOZELOOP_UNSUPPORTED(at::Tensor, _functional_assert_async)
CLOZELOOP_UNSUPPORTED(at::Tensor, _functional_sym_constrain_range)
CLOZELOOP_UNSUPPORTED(at::Tensor, _functional_sym_constrain_range_for_size)
CLOZELOOP_UNSUPPORTED(int64_t, _fused_sdp_choice)
CLOZELOOP_UNSUPPORTED(Tensor6, _lstm_mps)
CLOZELOOP_UNSUPPORTED(Tensor6, _lstm_mps_out)
CLOZELOOP_UNSUPPORTED(at::Tensor, _make_dep_token)
CLOZELOOP_UNSUPPORTED(Tensor4, _scaled_dot_product_efficient_attention)
CLOZELOOP_UNSUPPORTED(Tensor3, _scaled_dot_product_flash_attention_backward)
CLOZELOOP_UNSUPPORTED(Tensor2, _scaled_mm)
CLOZELOOP_UNSUPPORTED(Tensor2, _scaled_mm_out)
CLOZELOOP_UNSUPPORTED(at::Tensor, _sparse_mask_projection_out)
CLOZELOOP_UNSUPPORTED(Tensor2, _sparse_mm_reduce_impl)
CLOZELOOP_UNSUPPORTED(at::Tensor, _sparse_semi_structured_linear)
CLOZELOOP_UNSUPPORTED(at::Tensor, _test_check_tensor)
CLOZELOOP_UNSUPPORTED(at::Tensor, _test_functorch_fallback)
CLOZELOOP_UNSUPPORTED(at::Tensor, _test_functorch_fallback_out)
CLOZELOOP_UNSUPPORTED(at::Tensor, _to_sparse_out)
CLOZELOOP_UNSUPPORTED(at::Tensor, _to_sparse_bsc_out)
CLOZELOOP_UNSUPPORTED(at::Tensor, _to_sparse_bsr_out)
CLOZELOOP_UNSUPPORTED(at::Tensor, _to_sparse_csc_out)
CLOZELOOP_UNSUPPORTED(at::Tensor, _to_sparse_csr_out)
CLOZELOOP_UNSUPPORTED(Tensor2, _to_sparse_semi_structured)
CLOZELOOP_UNSUPPORTED(Tensor4, mkldnn_rnn_layer)
CLOZELOOP_UNSUPPORTED(Tensor7, mkldnn_rnn_layer_backward)
CLOZELOOP_UNSUPPORTED(Tensor7, mkldnn_rnn_layer_backward_out)
CLOZELOOP_UNSUPPORTED(Tensor4, mkldnn_rnn_layer_out)
CLOZELOOP_UNSUPPORTED(at::Tensor, quantized_max_pool3d)
CLOZELOOP_UNSUPPORTED(at::Tensor, quantized_max_pool3d_out)
CLOZELOOP_UNSUPPORTED(void, sym_constrain_range)
CLOZELOOP_UNSUPPORTED(void, sym_constrain_range_for_size)

// ---- (2b) ops missing in 1.13, rebuilt from 1.13 ops. ----

inline at::Tensor _int_mm(const at::Tensor& self, const at::Tensor& mat2) {
  TORCH_CHECK(self.dim() == 2 && mat2.dim() == 2, "_int_mm: expected 2D tensors, got ", self.dim(),
              "D and ", mat2.dim(), "D");
  TORCH_CHECK(self.scalar_type() == at::kChar && mat2.scalar_type() == at::kChar,
              "_int_mm: expected int8 tensors");
  return at::mm(self.to(at::kInt), mat2.to(at::kInt));
}

inline at::Tensor& _int_mm_out(at::Tensor& out, const at::Tensor& self, const at::Tensor& mat2) {
  TORCH_CHECK(out.scalar_type() == at::kInt, "_int_mm_out: expected an int32 out tensor");
  return clozeloop_compat::copy_into(out, _int_mm(self, mat2));
}

inline at::Tensor _is_all_true(const at::Tensor& self) {
  TORCH_CHECK(self.scalar_type() == at::kBool, "_is_all_true: expected a bool tensor");
  return self.all();
}

inline at::Tensor _is_any_true(const at::Tensor& self) {
  TORCH_CHECK(self.scalar_type() == at::kBool, "_is_any_true: expected a bool tensor");
  return self.any();
}

inline Tensor3 _native_batch_norm_legit(const at::Tensor& input,
                                        const c10::optional<at::Tensor>& weight,
                                        const c10::optional<at::Tensor>& bias,
                                        at::Tensor& running_mean, at::Tensor& running_var,
                                        bool training, double momentum, double eps) {
  return at::native_batch_norm(input, weight, bias, running_mean, running_var, training, momentum,
                               eps);
}

inline Tensor3 _native_batch_norm_legit(const at::Tensor& input,
                                        const c10::optional<at::Tensor>& weight,
                                        const c10::optional<at::Tensor>& bias, bool training,
                                        double momentum, double eps) {
  return at::native_batch_norm(input, weight, bias, c10::nullopt, c10::nullopt, training, momentum,
                               eps);
}

inline Tensor5 _native_batch_norm_legit_functional(const at::Tensor& input,
                                                   const c10::optional<at::Tensor>& weight,
                                                   const c10::optional<at::Tensor>& bias,
                                                   const at::Tensor& running_mean,
                                                   const at::Tensor& running_var, bool training,
                                                   double momentum, double eps) {
  at::Tensor mean = running_mean.clone();
  at::Tensor var = running_var.clone();
  auto r = at::native_batch_norm(input, weight, bias, mean, var, training, momentum, eps);
  return Tensor5(std::get<0>(r), std::get<1>(r), std::get<2>(r), mean, var);
}

inline std::tuple<at::Tensor&, at::Tensor&, at::Tensor&> _native_batch_norm_legit_out(
    at::Tensor& out, at::Tensor& save_mean, at::Tensor& save_invstd, const at::Tensor& input,
    const c10::optional<at::Tensor>& weight, const c10::optional<at::Tensor>& bias,
    at::Tensor& running_mean, at::Tensor& running_var, bool training, double momentum,
    double eps) {
  return at::native_batch_norm_out(out, save_mean, save_invstd, input, weight, bias, running_mean,
                                   running_var, training, momentum, eps);
}

inline std::tuple<at::Tensor&, at::Tensor&, at::Tensor&> _native_batch_norm_legit_out(
    at::Tensor& out, at::Tensor& save_mean, at::Tensor& save_invstd, const at::Tensor& input,
    const c10::optional<at::Tensor>& weight, const c10::optional<at::Tensor>& bias, bool training,
    double momentum, double eps) {
  return at::native_batch_norm_out(out, save_mean, save_invstd, input, weight, bias, c10::nullopt,
                                   c10::nullopt, training, momentum, eps);
}

inline Tensor3 _native_batch_norm_legit_no_training(const at::Tensor& input,
                                                    const c10::optional<at::Tensor>& weight,
                                                    const c10::optional<at::Tensor>& bias,
                                                    const at::Tensor& running_mean,
                                                    const at::Tensor& running_var, double momentum,
                                                    double eps) {
  return at::native_batch_norm(input, weight, bias, running_mean, running_var, /*training=*/false,
                               momentum, eps);
}

inline std::tuple<at::Tensor&, at::Tensor&, at::Tensor&> _native_batch_norm_legit_no_training_out(
    at::Tensor& out0, at::Tensor& out1, at::Tensor& out2, const at::Tensor& input,
    const c10::optional<at::Tensor>& weight, const c10::optional<at::Tensor>& bias,
    const at::Tensor& running_mean, const at::Tensor& running_var, double momentum, double eps) {
  auto r = _native_batch_norm_legit_no_training(input, weight, bias, running_mean, running_var,
                                                momentum, eps);
  clozeloop_compat::copy_into(out0, std::get<0>(r));
  clozeloop_compat::copy_into(out1, std::get<1>(r));
  clozeloop_compat::copy_into(out2, std::get<2>(r));
  return std::tuple<at::Tensor&, at::Tensor&, at::Tensor&>(out0, out1, out2);
}

inline at::Tensor _prelu_kernel(const at::Tensor& self, const at::Tensor& weight) {
  return at::where(self > 0, self, weight * self);
}

inline Tensor2 _prelu_kernel_backward(const at::Tensor& grad_output, const at::Tensor& self,
                                      const at::Tensor& weight) {
  const at::Tensor positive = self > 0;
  at::Tensor grad_self = at::where(positive, grad_output, weight * grad_output);
  at::Tensor grad_weight = at::where(positive, at::zeros_like(weight), self * grad_output);
  return Tensor2(grad_self, grad_weight);
}

// _propagate_xla_data only carries XLA metadata; it does nothing elsewhere.
inline void _propagate_xla_data(const at::Tensor& /*input*/, const at::Tensor& /*output*/) {}

inline at::Tensor _reshape_copy(const at::Tensor& self, at::IntArrayRef size) {
  return self.clone(at::MemoryFormat::Contiguous).view(size);
}

inline at::Tensor scaled_dot_product_attention(const at::Tensor& query, const at::Tensor& key,
                                               const at::Tensor& value,
                                               const c10::optional<at::Tensor>& attn_mask,
                                               double dropout_p, bool is_causal,
                                               c10::optional<double> scale) {
  return std::get<0>(clozeloop_compat::sdpa_math(query, key, value, attn_mask, dropout_p,
                                                 is_causal, c10::nullopt, scale));
}

inline at::Tensor _unsafe_index(const at::Tensor& self,
                                const c10::List<c10::optional<at::Tensor>>& indices) {
  return at::index(self, indices);
}

inline at::Tensor _unsafe_index_put(const at::Tensor& self,
                                    const c10::List<c10::optional<at::Tensor>>& indices,
                                    const at::Tensor& values, bool accumulate) {
  return at::index_put(self, indices, values, accumulate);
}

inline at::Tensor empty_permuted(at::IntArrayRef size, at::IntArrayRef physical_layout,
                                 at::TensorOptions options) {
  const int64_t n = static_cast<int64_t>(size.size());
  TORCH_CHECK(static_cast<int64_t>(physical_layout.size()) == n,
              "empty_permuted: physical_layout has ", physical_layout.size(),
              " entries for a size with ", n, " dims");
  std::vector<int64_t> physical_size(n);
  std::vector<int64_t> inverse(n, -1);
  for (int64_t i = 0; i < n; i++) {
    const int64_t d = physical_layout[i];
    TORCH_CHECK(d >= 0 && d < n && inverse[d] == -1, "empty_permuted: physical_layout ",
                physical_layout, " is not a permutation of 0..", n - 1);
    physical_size[i] = size[d];
    inverse[d] = i;
  }
  return at::empty(physical_size, options).permute(inverse);
}

inline at::Tensor& empty_permuted_out(at::Tensor& out, at::IntArrayRef size,
                                      at::IntArrayRef physical_layout) {
  empty_permuted(size, physical_layout, out.options());  // validates the arguments
  out.resize_(size);
  return out;
}

inline at::Tensor max_pool2d_backward(const at::Tensor& grad_output, const at::Tensor& self,
                                      at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                      at::IntArrayRef padding, at::IntArrayRef dilation,
                                      bool ceil_mode) {
  const at::Tensor indices = std::get<1>(
      at::max_pool2d_with_indices(self, kernel_size, stride, padding, dilation, ceil_mode));
  return at::max_pool2d_with_indices_backward(grad_output, self, kernel_size, stride, padding,
                                              dilation, ceil_mode, indices);
}

inline at::Tensor& max_pool2d_backward_out(at::Tensor& out, const at::Tensor& grad_output,
                                           const at::Tensor& self, at::IntArrayRef kernel_size,
                                           at::IntArrayRef stride, at::IntArrayRef padding,
                                           at::IntArrayRef dilation, bool ceil_mode) {
  return clozeloop_compat::copy_into(
      out, max_pool2d_backward(grad_output, self, kernel_size, stride, padding, dilation,
                               ceil_mode));
}

inline at::Tensor nonzero_static(const at::Tensor& self, int64_t size, int64_t fill_value) {
  TORCH_CHECK(size >= 0, "nonzero_static: size must be non-negative, got ", size);
  const at::Tensor nz = at::nonzero(self);
  const int64_t n = nz.size(0);
  if (n >= size) {
    return nz.narrow(0, 0, size).clone();
  }
  const at::Tensor pad = at::full({size - n, nz.size(1)}, fill_value, nz.options());
  return at::cat({nz, pad}, 0);
}

inline at::Tensor& nonzero_static_out(at::Tensor& out, const at::Tensor& self, int64_t size,
                                      int64_t fill_value) {
  return clozeloop_compat::copy_into(out, nonzero_static(self, size, fill_value));
}

// ---- (3) changed signatures: the at:: overload set plus the 2.1 form. ----

using at::_ctc_loss_out;
inline std::tuple<at::Tensor&, at::Tensor&> _ctc_loss_out(
    at::Tensor& out0, at::Tensor& out1, const at::Tensor& log_probs, const at::Tensor& targets,
    const at::Tensor& input_lengths, const at::Tensor& target_lengths, int64_t blank,
    bool zero_infinity) {
  auto r = at::_ctc_loss(log_probs, targets, input_lengths, target_lengths, blank, zero_infinity);
  clozeloop_compat::copy_into(out0, std::get<0>(r));
  clozeloop_compat::copy_into(out1, std::get<1>(r));
  return std::tuple<at::Tensor&, at::Tensor&>(out0, out1);
}

using at::_nested_view_from_buffer;
inline at::Tensor _nested_view_from_buffer(const at::Tensor& self, const at::Tensor& nested_size,
                                           const at::Tensor& nested_strides,
                                           const at::Tensor& offsets) {
  return at::_nested_view_from_buffer(self, nested_size, nested_strides,
                                      clozeloop_compat::to_vector(offsets));
}

using at::_nested_view_from_buffer_copy;
inline at::Tensor _nested_view_from_buffer_copy(const at::Tensor& self,
                                                const at::Tensor& nested_size,
                                                const at::Tensor& nested_strides,
                                                const at::Tensor& offsets) {
  return at::_nested_view_from_buffer_copy(self, nested_size, nested_strides,
                                           clozeloop_compat::to_vector(offsets));
}

using at::_nested_view_from_buffer_copy_out;
inline at::Tensor& _nested_view_from_buffer_copy_out(at::Tensor& out, const at::Tensor& self,
                                                     const at::Tensor& nested_size,
                                                     const at::Tensor& nested_strides,
                                                     const at::Tensor& offsets) {
  return at::_nested_view_from_buffer_copy_out(out, self, nested_size, nested_strides,
                                               clozeloop_compat::to_vector(offsets));
}

using at::_scaled_dot_product_attention_math;
inline Tensor2 _scaled_dot_product_attention_math(
    const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
    const c10::optional<at::Tensor>& attn_mask, double dropout_p, bool is_causal,
    const c10::optional<at::Tensor>& dropout_mask, c10::optional<double> scale) {
  return clozeloop_compat::sdpa_math(query, key, value, attn_mask, dropout_p, is_causal,
                                     dropout_mask, scale);
}

// torch:: declares these factories itself (variable_factories.h), so the 2.1
// overloads are simply added next to them.
inline at::Tensor _sparse_coo_tensor_unsafe(const at::Tensor& indices, const at::Tensor& values,
                                            at::IntArrayRef size, at::TensorOptions options,
                                            bool is_coalesced) {
  at::Tensor t = torch::_sparse_coo_tensor_unsafe(indices, values, size, options);
  if (is_coalesced) {
    t._coalesced_(true);
  }
  return t;
}

inline at::Tensor _sparse_coo_tensor_with_dims_and_tensors(int64_t sparse_dim, int64_t dense_dim,
                                                           at::IntArrayRef size,
                                                           const at::Tensor& indices,
                                                           const at::Tensor& values,
                                                           at::TensorOptions options,
                                                           bool is_coalesced) {
  at::Tensor t = torch::_sparse_coo_tensor_with_dims_and_tensors(sparse_dim, dense_dim, size,
                                                                 indices, values, options);
  if (is_coalesced) {
    t._coalesced_(true);
  }
  return t;
}

inline at::Tensor sparse_coo_tensor(const at::Tensor& indices, const at::Tensor& values,
                                    at::TensorOptions options, bool is_coalesced) {
  at::Tensor t = torch::sparse_coo_tensor(indices, values, options);
  if (is_coalesced) {
    t._coalesced_(true);
  }
  return t;
}

inline at::Tensor sparse_coo_tensor(const at::Tensor& indices, const at::Tensor& values,
                                    at::IntArrayRef size, at::TensorOptions options,
                                    bool is_coalesced) {
  at::Tensor t = torch::sparse_coo_tensor(indices, values, size, options);
  if (is_coalesced) {
    t._coalesced_(true);
  }
  return t;
}

using at::_sparse_coo_tensor_with_dims_and_tensors_out;
inline at::Tensor& _sparse_coo_tensor_with_dims_and_tensors_out(
    at::Tensor& out, int64_t sparse_dim, int64_t dense_dim, at::IntArrayRef size,
    const at::Tensor& indices, const at::Tensor& values, bool is_coalesced) {
  at::_sparse_coo_tensor_with_dims_and_tensors_out(out, sparse_dim, dense_dim, size, indices,
                                                   values);
  if (is_coalesced) {
    out._coalesced_(true);
  }
  return out;
}

using at::_sparse_mm;
inline at::Tensor _sparse_mm(const at::Tensor& sparse, const at::Tensor& dense,
                             const std::string& reduce) {
  if (reduce != "sum") {
    clozeloop_compat::unsupported("_sparse_mm with reduce=\"" + reduce + "\"");
  }
  return at::_sparse_mm(sparse, dense);
}

using at::_to_dense_out;
inline at::Tensor& _to_dense_out(at::Tensor& out, const at::Tensor& self,
                                 c10::optional<at::ScalarType> dtype, bool /*masked_grad*/) {
  return at::_to_dense_out(out, self, dtype);
}

using at::to_dense_backward;
inline at::Tensor to_dense_backward(const at::Tensor& grad, const at::Tensor& input,
                                    bool masked_grad) {
  if (masked_grad) {
    return at::to_dense_backward(grad, input);
  }
  switch (input.layout()) {
    case at::kStrided:
      return grad.clone();
    case at::kSparse:
      return grad.to_sparse(input.sparse_dim());
    case at::kSparseCsr:
      return grad.to_sparse_csr();
    case at::kSparseCsc:
      return grad.to_sparse_csc();
    default:
      clozeloop_compat::unsupported("to_dense_backward with masked_grad=false for a blocked layout");
  }
}

using at::max_out;
inline at::Tensor& max_out(at::Tensor& out, const at::Tensor& self) {
  return clozeloop_compat::copy_into(out, at::max(self));
}

using at::min_out;
inline at::Tensor& min_out(at::Tensor& out, const at::Tensor& self) {
  return clozeloop_compat::copy_into(out, at::min(self));
}

// input_size is only a hint for picking the reorder in libtorch 2.1.
using at::mkldnn_reorder_conv2d_weight;
inline at::Tensor mkldnn_reorder_conv2d_weight(const at::Tensor& self, at::IntArrayRef padding,
                                               at::IntArrayRef stride, at::IntArrayRef dilation,
                                               int64_t groups,
                                               at::OptionalIntArrayRef /*input_size*/) {
  return at::mkldnn_reorder_conv2d_weight(self, padding, stride, dilation, groups);
}

using at::mkldnn_reorder_conv2d_weight_out;
inline at::Tensor& mkldnn_reorder_conv2d_weight_out(at::Tensor& out, const at::Tensor& self,
                                                    at::IntArrayRef padding,
                                                    at::IntArrayRef stride,
                                                    at::IntArrayRef dilation, int64_t groups,
                                                    at::OptionalIntArrayRef /*input_size*/) {
  return at::mkldnn_reorder_conv2d_weight_out(out, self, padding, stride, dilation, groups);
}

using at::squeeze;
inline at::Tensor squeeze(const at::Tensor& self, at::IntArrayRef dims) {
  return clozeloop_compat::squeeze(self, dims);
}

using at::squeeze_copy;
inline at::Tensor squeeze_copy(const at::Tensor& self, at::IntArrayRef dims) {
  return clozeloop_compat::squeeze(self, dims).clone(at::MemoryFormat::Contiguous);
}

using at::squeeze_copy_out;
inline at::Tensor& squeeze_copy_out(at::Tensor& out, const at::Tensor& self,
                                    at::IntArrayRef dims) {
  return clozeloop_compat::copy_into(out, clozeloop_compat::squeeze(self, dims));
}

using at::std;
inline at::Tensor std(const at::Tensor& self, at::OptionalIntArrayRef dim,
                      const c10::Scalar& correction, bool keepdim) {
  return at::std(self, dim, clozeloop_compat::int_correction(correction, "std"), keepdim);
}

using at::std_out;
inline at::Tensor& std_out(at::Tensor& out, const at::Tensor& self, at::OptionalIntArrayRef dim,
                           const c10::Scalar& correction, bool keepdim) {
  return at::std_out(out, self, dim, clozeloop_compat::int_correction(correction, "std_out"),
                     keepdim);
}

using at::std_mean;
inline Tensor2 std_mean(const at::Tensor& self, at::OptionalIntArrayRef dim,
                        const c10::Scalar& correction, bool keepdim) {
  return at::std_mean(self, dim, clozeloop_compat::int_correction(correction, "std_mean"),
                      keepdim);
}

using at::std_mean_out;
inline std::tuple<at::Tensor&, at::Tensor&> std_mean_out(at::Tensor& out0, at::Tensor& out1,
                                                         const at::Tensor& self,
                                                         at::OptionalIntArrayRef dim,
                                                         const c10::Scalar& correction,
                                                         bool keepdim) {
  return at::std_mean_out(out0, out1, self, dim,
                          clozeloop_compat::int_correction(correction, "std_mean_out"), keepdim);
}

using at::var;
inline at::Tensor var(const at::Tensor& self, at::OptionalIntArrayRef dim,
                      const c10::Scalar& correction, bool keepdim) {
  return at::var(self, dim, clozeloop_compat::int_correction(correction, "var"), keepdim);
}

using at::var_out;
inline at::Tensor& var_out(at::Tensor& out, const at::Tensor& self, at::OptionalIntArrayRef dim,
                           const c10::Scalar& correction, bool keepdim) {
  return at::var_out(out, self, dim, clozeloop_compat::int_correction(correction, "var_out"),
                     keepdim);
}

using at::var_mean;
inline Tensor2 var_mean(const at::Tensor& self, at::OptionalIntArrayRef dim,
                        const c10::Scalar& correction, bool keepdim) {
  return at::var_mean(self, dim, clozeloop_compat::int_correction(correction, "var_mean"),
                      keepdim);
}

using at::var_mean_out;
inline std::tuple<at::Tensor&, at::Tensor&> var_mean_out(at::Tensor& out0, at::Tensor& out1,
                                                         const at::Tensor& self,
                                                         at::OptionalIntArrayRef dim,
                                                         const c10::Scalar& correction,
                                                         bool keepdim) {
  return at::var_mean_out(out0, out1, self, dim,
                          clozeloop_compat::int_correction(correction, "var_mean_out"), keepdim);
}

}  // namespace torch

#undef CLOZELOOP_UNSUPPORTED

// ---- (4) member calls on at::Tensor, rewritten after every torch header. ----
#define CLOZELOOP_MEMBER(name, ...) getIntrusivePtr()->*::clozeloop_compat::member_##name(__VA_ARGS__)
#define to_dense(...) CLOZELOOP_MEMBER(to_dense, __VA_ARGS__)
#define _to_dense(...) CLOZELOOP_MEMBER(_to_dense, __VA_ARGS__)
#define to_sparse(...) CLOZELOOP_MEMBER(to_sparse, __VA_ARGS__)
#define _to_sparse(...) CLOZELOOP_MEMBER(_to_sparse, __VA_ARGS__)
#define to_sparse_csr(...) CLOZELOOP_MEMBER(to_sparse_csr, __VA_ARGS__)
#define to_sparse_csc(...) CLOZELOOP_MEMBER(to_sparse_csc, __VA_ARGS__)
#define to_sparse_bsr(...) CLOZELOOP_MEMBER(to_sparse_bsr, __VA_ARGS__)
#define to_sparse_bsc(...) CLOZELOOP_MEMBER(to_sparse_bsc, __VA_ARGS__)
#define _to_sparse_csr(...) CLOZELOOP_MEMBER(_to_sparse_csr, __VA_ARGS__)
#define _to_sparse_csc(...) CLOZELOOP_MEMBER(_to_sparse_csc, __VA_ARGS__)
#define _to_sparse_bsr(...) CLOZELOOP_MEMBER(_to_sparse_bsr, __VA_ARGS__)
#define _to_sparse_bsc(...) CLOZELOOP_MEMBER(_to_sparse_bsc, __VA_ARGS__)
#define squeeze_(...) CLOZELOOP_MEMBER(squeeze_, __VA_ARGS__)
#define _sparse_mask_projection(...) CLOZELOOP_MEMBER(_sparse_mask_projection, __VA_ARGS__)

#endif  // libtorch < 2.1
#endif  // gotch's libtch or CLOZELOOP_COMPAT_FORCE
#endif  // __cplusplus
#endif  // CLOZELOOP_DEPLOY_LIBTORCH_COMPAT_H
