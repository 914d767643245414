#include "exp_log.hpp"

#include <cmath>

#include "common.hpp"

namespace tapegrad {
namespace {

// Applies fn to every element of x into a new tensor from the tape's pool.
template <class Function>
Tensor map_elements(Tape& tape, const Tensor& x, Function&& fn) {
  Tensor y = tape.allocate(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* in = x.data<T>();
    T* out = y.data<T>();
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      out[i] = fn(in[i]);
    }
  });
  return y;
}

}  // namespace

Var exp(const Var& x) {
  Tape& tape = common_tape("exp", {x});
  detail::check_floating("exp", "x", x.value());
  Tensor y = map_elements(tape, x.value(), [](auto v) { return std::exp(v); });
  return tape.record("exp", std::move(y), {x}, [](VjpContext& context) {
    const Tensor& y = context.output();
    const Tensor& cotangent = context.cotangent();
    Tensor x_grad = context.allocate(y.shape(), y.dtype());
    dispatch_floating(y.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const T* out = y.data<T>();
      const T* g = cotangent.data<T>();
      T* dx = x_grad.data<T>();
      for (std::int64_t i = 0; i < y.numel(); ++i) {
        dx[i] = detail::zero_if_cotangent_zero(g[i], g[i] * out[i]);
      }
    });
    context.accumulate(0, std::move(x_grad));
  });
}

Var log(const Var& x) {
  Tape& tape = common_tape("log", {x});
  detail::check_floating("log", "x", x.value());
  Tensor y = map_elements(tape, x.value(), [](auto v) { return std::log(v); });
  return tape.record("log", std::move(y), {x}, [](VjpContext& context) {
    const Tensor& x = context.input(0);
    const Tensor& cotangent = context.cotangent();
    Tensor x_grad = context.allocate(x.shape(), x.dtype());
    dispatch_floating(x.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const T* in = x.data<T>();
      const T* g = cotangent.data<T>();
      T* dx = x_grad.data<T>();
      for (std::int64_t i = 0; i < x.numel(); ++i) {
        dx[i] = detail::zero_if_cotangent_zero(g[i], g[i] / in[i]);
      }
    });
    context.accumulate(0, std::move(x_grad));
  });
}

void register_exp_log_cases(GradcheckRegistry& registry) {
  auto exp_of = [](std::span<const Var> inputs) { return exp(inputs[0]); };
  registry.add({.op = "exp", .name = "scalar", .inputs = {{.shape = {}}}, .function = exp_of});
  registry.add({.op = "exp", .name = "one_row", .inputs = {{.shape = {1, 5}}}, .function = exp_of});
  registry.add({.op = "exp", .name = "one_column", .inputs = {{.shape = {4, 1}}}, .function = exp_of});
  registry.add({.op = "exp", .name = "rank_3", .inputs = {{.shape = {2, 3, 2}}}, .function = exp_of});
  registry.add({.op = "exp", .name = "matrix_wide_range", .inputs = {{.shape = {3, 4}, .low = -5, .high = 5}},
                .function = exp_of});

  // log is sampled away from 0, where it and its derivative 1/x blow up and a finite difference
  // with step 1e-6 would straddle the singularity.
  const std::string log_reason = "sampled in [0.1, 100): log and 1/x have a pole at x = 0";
  auto log_of = [](std::span<const Var> inputs) { return log(inputs[0]); };
  registry.add({.op = "log", .name = "scalar", .inputs = {{.shape = {}, .low = 0.5, .high = 2}}, .function = log_of,
                .override_reason = log_reason});
  registry.add({.op = "log", .name = "one_row", .inputs = {{.shape = {1, 5}, .low = 0.1, .high = 3}},
                .function = log_of, .override_reason = log_reason});
  registry.add({.op = "log", .name = "one_column", .inputs = {{.shape = {4, 1}, .low = 0.1, .high = 3}},
                .function = log_of, .override_reason = log_reason});
  registry.add({.op = "log", .name = "rank_3", .inputs = {{.shape = {2, 3, 2}, .low = 0.1, .high = 3}},
                .function = log_of, .override_reason = log_reason});
  registry.add({.op = "log", .name = "matrix_large_values", .inputs = {{.shape = {3, 4}, .low = 1, .high = 100}},
                .function = log_of, .override_reason = log_reason});
}

}  // namespace tapegrad
