// torchrt.cpp implements torchrt.h on libtorch's C++ API.
#ifndef CLOZELOOP_CGO_ENV
#error "clozeloop: the cgo flags for libtorch are not set. Build with 'make build' (or run 'source scripts/env.sh' first). See README."
#endif

#include "torchrt.h"

#include <ATen/Context.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/_transformer_encoder_layer_fwd.h>
#include <ATen/ops/gelu.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/GradMode.h>
#include <torch/cuda.h>
#include <torch/version.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#define TORCHRT_STR2(x) #x
#define TORCHRT_STR(x) TORCHRT_STR2(x)

namespace {

// dup copies s into memory allocated with malloc (NULL when out of memory).
char *dup(const std::string &s) {
  char *p = static_cast<char *>(std::malloc(s.size() + 1));
  if (p != nullptr) {
    std::memcpy(p, s.data(), s.size());
    p[s.size()] = '\0';
  }
  return p;
}

// guard runs f and turns any C++ exception into a malloc'd message.
template <typename F>
char *guard(const char *what, F f) {
  try {
    f();
    return nullptr;
  } catch (const std::exception &e) {
    return dup(std::string(what) + ": " + e.what());
  } catch (...) {
    return dup(std::string(what) + ": unknown C++ exception");
  }
}

// tensorAt returns the tensor behind a torch::Tensor* handle.
at::Tensor &tensorAt(uintptr_t h) {
  if (h == 0) {
    throw std::invalid_argument("null tensor handle");
  }
  return *reinterpret_cast<at::Tensor *>(h);
}

#if defined(__linux__) && defined(MADV_HUGEPAGE)

// hugePage is the size and alignment of a transparent huge page on x86-64
// and AArch64 with 4 KiB base pages.
constexpr uintptr_t hugePage = uintptr_t(2) << 20;

// HugePageAllocator is libtorch's CPU allocator with large allocations on
// huge pages. glibc maps allocations above its mmap threshold (at most
// 32 MiB) afresh each time, and the kernel faults them in 4 KiB at a time:
// bert-base's word-embedding gradient alone is 94 MB, and such faults were
// a quarter of a fine-tune step's CPU samples on the development machine.
// Mapped on 2 MiB pages, the same memory takes 1/512 of the faults. The
// mappings are released when the tensor is freed, so nothing is held
// beyond what libtorch holds.
class HugePageAllocator final : public c10::Allocator {
 public:
  HugePageAllocator(c10::Allocator *base, size_t threshold)
      : base_(base), threshold_(threshold) {}

  c10::DataPtr allocate(size_t n) const override {
    if (n < threshold_) {
      return base_->allocate(n);
    }
    const size_t pageMask = 4095;
    size_t len = (n + pageMask) & ~pageMask;
    size_t span = len + hugePage;
    void *p = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      return base_->allocate(n);
    }
    // Keep the 2 MiB aligned stretch of len bytes; unmap the rest.
    uintptr_t start = reinterpret_cast<uintptr_t>(p);
    uintptr_t aligned = (start + hugePage - 1) & ~(hugePage - 1);
    if (aligned > start) {
      munmap(p, aligned - start);
    }
    uintptr_t end = start + span;
    if (end > aligned + len) {
      munmap(reinterpret_cast<void *>(aligned + len), end - (aligned + len));
    }
    void *data = reinterpret_cast<void *>(aligned);
    madvise(data, len, MADV_HUGEPAGE);  // advice only: without THP, plain pages
    {
      std::lock_guard<std::mutex> lock(mu());
      sizes()[data] = len;
    }
    mapped().fetch_add(len, std::memory_order_relaxed);
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  // mapped is the number of bytes mapped by huge-page allocations now.
  static std::atomic<uint64_t> &mapped() {
    static auto *n = new std::atomic<uint64_t>(0);
    return *n;
  }

 private:
  // release frees what allocate returned: a mapping of its own, or
  // anything else with the replaced allocator's raw deleter (libtorch's
  // default CPU allocator frees its own DataPtrs, and raw allocations,
  // with it).
  static void release(void *ptr) {
    size_t len = 0;
    {
      std::lock_guard<std::mutex> lock(mu());
      auto it = sizes().find(ptr);
      if (it != sizes().end()) {
        len = it->second;
        sizes().erase(it);
      }
    }
    if (len > 0) {
      munmap(ptr, len);
      mapped().fetch_sub(len, std::memory_order_relaxed);
      return;
    }
    baseDeleter()(ptr);
  }

  // mu and sizes are never destroyed: tensors may be freed while the
  // process exits.
  static std::mutex &mu() {
    static auto *m = new std::mutex();
    return *m;
  }
  static std::unordered_map<void *, size_t> &sizes() {
    static auto *m = new std::unordered_map<void *, size_t>();
    return *m;
  }

 public:
  // baseDeleter is the replaced allocator's raw deleter, set once before
  // the allocator is installed.
  static c10::DeleterFnPtr &baseDeleter() {
    static c10::DeleterFnPtr d = nullptr;
    return d;
  }

 private:
  c10::Allocator *base_;
  size_t threshold_;
};

#endif

// adamwGrain is the number of elements below which the fused AdamW loops
// stay on one thread (at::parallel_for's grain size).
constexpr int64_t adamwGrain = 1 << 15;

// plainFloat reports whether t is a contiguous float32 CPU tensor, which the
// fused loops can walk as one array.
bool plainFloat(const at::Tensor &t) {
  return t.defined() && t.device().is_cpu() && t.scalar_type() == at::kFloat &&
         t.is_contiguous();
}

// sumSquares returns the sum of g's squared elements, accumulated in double.
double sumSquares(const at::Tensor &g) {
  if (!plainFloat(g)) {
    double n = g.norm().item<double>();
    return n * n;
  }
  const float *x = g.data_ptr<float>();
  return at::parallel_reduce(
      0, g.numel(), adamwGrain, 0.0,
      [x](int64_t begin, int64_t end, double acc) {
        // Eight independent sums, so the loop is not one long chain of
        // dependent additions.
        double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        int64_t i = begin;
        for (; i + 8 <= end; i += 8) {
          for (int k = 0; k < 8; k++) {
            double v = x[i + k];
            a[k] += v * v;
          }
        }
        for (; i < end; i++) {
          double v = x[i];
          a[0] += v * v;
        }
        for (int k = 0; k < 8; k++) {
          acc += a[k];
        }
        return acc;
      },
      std::plus<double>());
}

// adamwScalars are one step's constants, rounded to float32 as libtorch
// rounds a Scalar for a float tensor's kernel.
struct adamwScalars {
  float clip;         // gradient scale; 1 when not clipping
  bool clipping;      // whether the gradients are scaled
  float decay;        // 1 - lr * weight_decay
  float w1;           // 1 - beta1, the lerp weight towards the gradient
  float b2, w2;       // beta2 and 1 - beta2
  float invSqrtBC2;   // 1 / sqrt(1 - beta2^step)
  float eps;
  float stepSize;     // -lr / (1 - beta1^step)
};

inline float sqrtOf(float x) { return std::sqrt(x); }

// f4 is four float lanes of SSE2 (x86-64) or NEON (AArch64), whose square
// root and division round as the scalar ones do. GCC keeps a scalar sqrt
// call per element of a plain loop unless built with -fno-math-errno, a
// flag cgo refuses, so the vector loop is written with intrinsics.
#if defined(__SSE2__)
#define TORCHRT_F4 1
struct f4 {
  __m128 x;
  static f4 all(float a) { return {_mm_set1_ps(a)}; }
  static f4 load(const float *p) { return {_mm_loadu_ps(p)}; }
  void store(float *p) const { _mm_storeu_ps(p, x); }
};
inline f4 operator+(f4 a, f4 b) { return {_mm_add_ps(a.x, b.x)}; }
inline f4 operator-(f4 a, f4 b) { return {_mm_sub_ps(a.x, b.x)}; }
inline f4 operator*(f4 a, f4 b) { return {_mm_mul_ps(a.x, b.x)}; }
inline f4 operator/(f4 a, f4 b) { return {_mm_div_ps(a.x, b.x)}; }
inline f4 sqrtOf(f4 a) { return {_mm_sqrt_ps(a.x)}; }
#elif defined(__aarch64__)
#define TORCHRT_F4 1
struct f4 {
  float32x4_t x;
  static f4 all(float a) { return {vdupq_n_f32(a)}; }
  static f4 load(const float *p) { return {vld1q_f32(p)}; }
  void store(float *p) const { vst1q_f32(p, x); }
};
inline f4 operator+(f4 a, f4 b) { return {vaddq_f32(a.x, b.x)}; }
inline f4 operator-(f4 a, f4 b) { return {vsubq_f32(a.x, b.x)}; }
inline f4 operator*(f4 a, f4 b) { return {vmulq_f32(a.x, b.x)}; }
inline f4 operator/(f4 a, f4 b) { return {vdivq_f32(a.x, b.x)}; }
inline f4 sqrtOf(f4 a) { return {vsqrtq_f32(a.x)}; }
#endif

// adamwElem is one AdamW update of a parameter element w with gradient g
// (before clipping) and moments m and v, for V float or f4 (four lanes). Its
// arithmetic is that of adamwOps, in the same order: libtorch's lerp for a
// weight below 0.5, then (g·w2)·g added to v·b2, the denominator
// sqrt(v)·invSqrtBC2 + eps and m·stepSize divided by it.
template <typename V>
inline void adamwElem(V &w, V &m, V &v, V g, V clip, V decay, V w1, V b2, V w2,
                      V isb, V eps, V ss) {
  g = g * clip;
  m = m + w1 * (g - m);
  v = v * b2 + (g * w2) * g;
  V den = sqrtOf(v) * isb + eps;
  w = w * decay + (m * ss) / den;
}

// adamwRange updates elements [begin, end) of one parameter with
// adamwElem, four at a time where f4 exists, and zeroes their gradient.
void adamwRange(float *__restrict pw, float *__restrict pg, float *__restrict pm,
                float *__restrict pv, int64_t begin, int64_t end, float clip,
                float decay, const adamwScalars &c) {
  int64_t i = begin;
#if defined(TORCHRT_F4)
  {
    const f4 vclip = f4::all(clip), vdecay = f4::all(decay), w1 = f4::all(c.w1),
             b2 = f4::all(c.b2), w2 = f4::all(c.w2), isb = f4::all(c.invSqrtBC2),
             eps = f4::all(c.eps), ss = f4::all(c.stepSize), zero = f4::all(0.0f);
    for (; i + 4 <= end; i += 4) {
      f4 w = f4::load(pw + i), m = f4::load(pm + i), v = f4::load(pv + i);
      adamwElem(w, m, v, f4::load(pg + i), vclip, vdecay, w1, b2, w2, isb, eps, ss);
      w.store(pw + i);
      m.store(pm + i);
      v.store(pv + i);
      zero.store(pg + i);
    }
  }
#endif
  for (; i < end; i++) {
    adamwElem(pw[i], pm[i], pv[i], pg[i], clip, decay, c.w1, c.b2, c.w2, c.invSqrtBC2,
              c.eps, c.stepSize);
    pg[i] = 0.0f;
  }
}

// adamwFused updates one contiguous float32 CPU parameter in one pass over
// its memory, split across libtorch's intra-op threads.
void adamwFused(at::Tensor &p, at::Tensor &g, at::Tensor &m, at::Tensor &v,
                bool decayed, const adamwScalars &c) {
  float *pw = p.data_ptr<float>();
  float *pg = g.data_ptr<float>();
  float *pm = m.data_ptr<float>();
  float *pv = v.data_ptr<float>();
  const float clip = c.clipping ? c.clip : 1.0f;
  const float decay = decayed ? c.decay : 1.0f;
  at::parallel_for(0, p.numel(), adamwGrain, [&](int64_t begin, int64_t end) {
    adamwRange(pw, pg, pm, pv, begin, end, clip, decay, c);
  });
  for (at::Tensor *t : {&p, &g, &m, &v}) {
    t->unsafeGetTensorImpl()->bump_version();
  }
}

// adamwOps updates one parameter with libtorch's in-place operations (any
// device, dtype or layout), in the order of torch.optim.AdamW's
// single-tensor loop.
void adamwOps(at::Tensor &p, at::Tensor &g, at::Tensor &m, at::Tensor &v,
              bool decayed, const torchrt_adamw_options &o, double clip,
              bool clipping, double bc1, double bc2) {
  if (clipping) {
    g.mul_(clip);
  }
  if (decayed && o.weight_decay > 0) {
    p.mul_(1 - o.lr * o.weight_decay);
  }
  m.lerp_(g, 1 - o.beta1);
  v.mul_(o.beta2).addcmul_(g.mul(1 - o.beta2), g);
  at::Tensor den = v.sqrt();
  den.mul_(1 / std::sqrt(bc2)).add_(o.eps);
  p.addcdiv_(m.mul(-o.lr / bc1), den);
  g.zero_();
}

}  // namespace

extern "C" {

const char *torchrt_compiled_version(void) { return TORCH_VERSION; }

const char *torchrt_compat(void) {
#ifdef CLOZELOOP_COMPAT
  return TORCHRT_STR(CLOZELOOP_COMPAT);
#else
  return "";
#endif
}

char *torchrt_show_config(char **out) {
  *out = nullptr;
  return guard("at::show_config", [&] {
    *out = dup(at::show_config());
  });
}

char *torchrt_parallel_info(char **out) {
  *out = nullptr;
  return guard("at::get_parallel_info", [&] {
    *out = dup(at::get_parallel_info());
  });
}

char *torchrt_set_num_threads(int n) {
  return guard("at::set_num_threads", [&] { at::set_num_threads(n); });
}

char *torchrt_num_threads(int *out) {
  *out = 0;
  return guard("at::get_num_threads", [&] {
    int n = 0;
    std::exception_ptr err;
    std::thread t([&] {
      try {
        n = at::get_num_threads();
      } catch (...) {
        err = std::current_exception();
      }
    });
    t.join();
    if (err) {
      std::rethrow_exception(err);
    }
    *out = n;
  });
}

char *torchrt_manual_seed(uint64_t seed) {
  return guard("at::manual_seed", [&] { at::manual_seed(seed); });
}

char *torchrt_cuda(int *available, int64_t *count) {
  *available = 0;
  *count = 0;
  return guard("torch::cuda", [&] {
    *available = torch::cuda::is_available() ? 1 : 0;
    *count = static_cast<int64_t>(torch::cuda::device_count());
  });
}

char *torchrt_prepare_thread(void) {
  return guard("prepare thread", [] {
    at::init_num_threads();
    c10::GradMode::set_enabled(true);
  });
}

char *torchrt_grad_enabled(int *out) {
  *out = 0;
  return guard("c10::GradMode::is_enabled", [&] {
    *out = c10::GradMode::is_enabled() ? 1 : 0;
  });
}

char *torchrt_set_grad_enabled(int enabled) {
  return guard("c10::GradMode::set_enabled", [&] {
    c10::GradMode::set_enabled(enabled != 0);
  });
}

char *torchrt_version_sum(const uintptr_t *handles, int64_t n, uint64_t *out) {
  *out = 0;
  return guard("version counters", [&] {
    uint64_t sum = 0;
    for (int64_t i = 0; i < n; i++) {
      const auto *t = reinterpret_cast<const at::Tensor *>(handles[i]);
      if (t == nullptr || !t->defined()) {
        throw std::invalid_argument("undefined tensor");
      }
      sum += t->_version();
    }
    *out = sum;
  });
}

char *torchrt_encoder_layer(uintptr_t src, int64_t embed_dim, int64_t num_heads,
                            const uintptr_t *params, int use_gelu, double eps,
                            uintptr_t mask, void **out) {
  *out = nullptr;
  return guard("at::_transformer_encoder_layer_fwd", [&] {
    auto &t = tensorAt;
    c10::optional<at::Tensor> m;
    c10::optional<int64_t> mask_type;
    if (mask != 0) {
      m = t(mask);
      mask_type = 1;  // key padding mask [batch, length]
    }
    at::Tensor r = at::_transformer_encoder_layer_fwd(
        t(src), embed_dim, num_heads, t(params[0]), t(params[1]), t(params[2]),
        t(params[3]), use_gelu != 0, /*norm_first=*/false, eps, t(params[4]),
        t(params[5]), t(params[6]), t(params[7]), t(params[8]), t(params[9]),
        t(params[10]), t(params[11]), m, mask_type);
    *out = new at::Tensor(std::move(r));
  });
}

char *torchrt_gelu(uintptr_t src, int tanh_approx, void **out) {
  *out = nullptr;
  return guard("at::gelu", [&] {
    *out = new at::Tensor(at::gelu(tensorAt(src), tanh_approx != 0 ? "tanh" : "none"));
  });
}

char *torchrt_adamw(const uintptr_t *params, const uintptr_t *exp_avg,
                     const uintptr_t *exp_avg_sq, const uint8_t *decay, int64_t n,
                     torchrt_adamw_options opts, double *norm) {
  *norm = 0;
  return guard("adamw step", [&] {
    c10::NoGradGuard noGrad;
    std::vector<at::Tensor> grads(n);
    double total = 0;
    for (int64_t i = 0; i < n; i++) {
      const at::Tensor &g = tensorAt(params[i]).grad();
      if (g.defined()) {
        grads[i] = g;
        total += sumSquares(g);
      }
    }
    double nrm = std::sqrt(total);
    *norm = nrm;
    double clip = opts.max_norm / (nrm + 1e-6);
    bool clipping = opts.max_norm > 0 && nrm > opts.max_norm;
    double bc1 = 1 - std::pow(opts.beta1, static_cast<double>(opts.step));
    double bc2 = 1 - std::pow(opts.beta2, static_cast<double>(opts.step));
    adamwScalars c;
    c.clip = static_cast<float>(clip);
    c.clipping = clipping;
    c.decay = static_cast<float>(opts.weight_decay > 0 ? 1 - opts.lr * opts.weight_decay : 1);
    c.w1 = static_cast<float>(1 - opts.beta1);
    c.b2 = static_cast<float>(opts.beta2);
    c.w2 = static_cast<float>(1 - opts.beta2);
    c.invSqrtBC2 = static_cast<float>(1 / std::sqrt(bc2));
    c.eps = static_cast<float>(opts.eps);
    c.stepSize = static_cast<float>(-opts.lr / bc1);
    for (int64_t i = 0; i < n; i++) {
      at::Tensor &g = grads[i];
      if (!g.defined()) {
        continue;
      }
      at::Tensor &p = tensorAt(params[i]);
      at::Tensor &m = tensorAt(exp_avg[i]);
      at::Tensor &v = tensorAt(exp_avg_sq[i]);
      bool decayed = decay[i] != 0;
      if (plainFloat(p) && plainFloat(g) && plainFloat(m) && plainFloat(v) &&
          g.numel() == p.numel() && m.numel() == p.numel() && v.numel() == p.numel()) {
        adamwFused(p, g, m, v, decayed, c);
      } else {
        adamwOps(p, g, m, v, decayed, opts, clip, clipping, bc1, bc2);
      }
    }
  });
}

char *torchrt_use_huge_pages(uint64_t threshold, int *installed) {
  *installed = 0;
  return guard("install the huge-page CPU allocator", [&] {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    static std::once_flag once;
    static bool ok = false;
    std::call_once(once, [&] {
      c10::Allocator *base = c10::GetCPUAllocator();
      c10::DeleterFnPtr d = base->raw_deleter();
      if (d == nullptr) {
        return;  // cannot free the replaced allocator's raw allocations
      }
      HugePageAllocator::baseDeleter() = d;
      // Never freed: libtorch keeps using it until the process ends.
      auto *alloc = new HugePageAllocator(base, static_cast<size_t>(threshold));
      c10::SetCPUAllocator(alloc, /*priority=*/1);
      ok = c10::GetCPUAllocator() == alloc;
    });
    *installed = ok ? 1 : 0;
#endif
  });
}

uint64_t torchrt_huge_page_bytes(void) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  return HugePageAllocator::mapped().load(std::memory_order_relaxed);
#else
  return 0;
#endif
}

}  // extern "C"
