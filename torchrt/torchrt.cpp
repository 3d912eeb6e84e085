// torchrt.cpp implements torchrt.h on libtorch's C++ API.
#ifndef CLOZELOOP_CGO_ENV
#error "clozeloop: the cgo flags for libtorch are not set. Build with 'make build' (or run 'source scripts/env.sh' first). See README."
#endif

#include "torchrt.h"

#include <ATen/Context.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/_transformer_encoder_layer_fwd.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <c10/core/GradMode.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>

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
    auto t = [](uintptr_t h) -> const at::Tensor & {
      if (h == 0) {
        throw std::invalid_argument("null tensor handle");
      }
      return *reinterpret_cast<const at::Tensor *>(h);
    };
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

}  // extern "C"
