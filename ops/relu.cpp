#include "relu.hpp"

#include "common.hpp"

namespace tapegrad {

Var relu(const Var& x) {
  Tape& tape = common_tape("relu", {x});
  detail::check_floating("relu", "x", x.value());
  const Tensor& input = x.value();
  Tensor y = tape.allocate(input.shape(), input.dtype());
  dispatch_floating(input.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* in = input.data<T>();
    T* out = y.data<T>();
    const std::int64_t count = input.numel();
    for (std::int64_t i = 0; i < count; ++i) {
      // x < 0 is false for NaN, so NaN passes through.
      out[i] = in[i] < T{0} ? T{0} : in[i];
    }
  });
  return tape.record("relu", std::move(y), {x}, [](VjpContext& context) {
    const Tensor& x = context.input(0);
    const Tensor& cotangent = context.cotangent();
    Tensor x_grad = context.allocate(x.shape(), x.dtype());
    dispatch_floating(x.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const T* in = x.data<T>();
      const T* g = cotangent.data<T>();
      T* dx = x_grad.data<T>();
      const std::int64_t count = x.numel();
      // A select rather than ȳ · [x > 0], so an inf or NaN cotangent at an inactive entry gives 0.
      for (std::int64_t i = 0; i < count; ++i) {
        dx[i] = in[i] > T{0} ? g[i] : T{0};
      }
    });
    context.accumulate(0, std::move(x_grad));
  });
}

void register_relu_cases(GradcheckRegistry& registry) {
  // Inputs are drawn with |x| in [0.1, 1) and random signs, because relu has a kink at 0. A central
  // difference straddling it returns a value between the one-sided derivatives 0 and 1.
  const std::string reason = "sampled with |x| in [0.1, 1): relu has a kink at x = 0";
  auto relu_of = [](std::span<const Var> inputs) { return relu(inputs[0]); };
  struct NamedShape {
    const char* name;
    Shape shape;
  };
  const NamedShape shapes[] = {
      {"scalar", {}}, {"one_row", {1, 6}}, {"one_column", {5, 1}}, {"matrix", {4, 5}}, {"rank_3", {2, 3, 4}},
  };
  std::uint64_t seed = 101;
  for (const NamedShape& entry : shapes) {
    registry.add({.op = "relu",
                  .name = entry.name,
                  .inputs = {{.shape = entry.shape, .values = detail::uniform_away_from_zero(entry.shape, 0.1, 1.0, seed++)}},
                  .function = relu_of,
                  .override_reason = reason});
  }
}

}  // namespace tapegrad
