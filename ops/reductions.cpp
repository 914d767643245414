#include "reductions.hpp"

#include <algorithm>

#include "common.hpp"

namespace tapegrad {

Var sum(const Var& x) {
  Tape& tape = common_tape("sum", {x});
  detail::check_floating("sum", "x", x.value());
  Tensor y = tape.allocate({}, x.dtype());
  dispatch_floating(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* in = x.value().data<T>();
    // Accumulate in double, so f32 sums of many elements keep their accuracy.
    double total = 0.0;
    for (std::int64_t i = 0; i < x.value().numel(); ++i) {
      total += static_cast<double>(in[i]);
    }
    *y.data<T>() = static_cast<T>(total);
  });
  return tape.record("sum", std::move(y), {x}, [](VjpContext& context) {
    const Tensor& x = context.input(0);
    Tensor x_grad = context.allocate(x.shape(), x.dtype());
    dispatch_floating(x.dtype(), [&](auto zero) {
      using T = decltype(zero);
      std::fill_n(x_grad.data<T>(), x.numel(), *context.cotangent().data<T>());
    });
    context.accumulate(0, std::move(x_grad));
  });
}

void register_reduction_cases(GradcheckRegistry& registry) {
  auto sum_of = [](std::span<const Var> inputs) { return sum(inputs[0]); };
  registry.add({.op = "sum", .name = "all_matrix", .inputs = {{.shape = {3, 4}}}, .function = sum_of});
  registry.add({.op = "sum", .name = "all_one_row", .inputs = {{.shape = {1, 5}}}, .function = sum_of});
  registry.add({.op = "sum", .name = "all_one_column", .inputs = {{.shape = {5, 1}}}, .function = sum_of});
}

}  // namespace tapegrad
