#include "arithmetic.hpp"

#include "common.hpp"

namespace tapegrad {
namespace {

// Checks two operands of a broadcasting binary op and returns the output shape.
Shape check_binary(std::string_view op, const Tensor& a, const Tensor& b) {
  detail::check_floating(op, "a", a);
  detail::check_floating(op, "b", b);
  detail::check_same_dtype(op, a, b);
  return broadcast_shapes(op, a.shape(), b.shape());
}

// Evaluates fn(a_element, b_element) over the broadcast shape into a new pooled tensor.
template <class Function>
Tensor broadcast_map(Tape& tape, const Tensor& a, const Tensor& b, const Shape& shape, Function&& fn) {
  Tensor y = tape.allocate(shape, a.dtype());
  const auto a_strides = detail::broadcast_strides(a.shape(), shape);
  const auto b_strides = detail::broadcast_strides(b.shape(), shape);
  dispatch_floating(a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* in_a = a.data<T>();
    const T* in_b = b.data<T>();
    T* out = y.data<T>();
    detail::for_each_broadcast(shape, a_strides, b_strides, [&](std::int64_t i, std::int64_t ia, std::int64_t ib) {
      out[i] = fn(in_a[ia], in_b[ib]);
    });
  });
  return y;
}

// ȳ · other, read through broadcast strides, as a tensor of the output's shape.
Tensor cotangent_times(VjpContext& context, const Tensor& other) {
  const Tensor& cotangent = context.cotangent();
  const Shape& shape = cotangent.shape();
  Tensor product = context.allocate(shape, cotangent.dtype());
  const auto other_strides = detail::broadcast_strides(other.shape(), shape);
  const auto same = contiguous_strides(shape);
  dispatch_floating(cotangent.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* g = cotangent.data<T>();
    const T* in = other.data<T>();
    T* out = product.data<T>();
    detail::for_each_broadcast(shape, same, other_strides, [&](std::int64_t i, std::int64_t ig, std::int64_t io) {
      out[i] = g[ig] * in[io];
    });
  });
  return product;
}

}  // namespace

Var operator*(const Var& a, const Var& b) {
  Tape& tape = common_tape("mul", {a, b});
  const Shape shape = check_binary("mul", a.value(), b.value());
  Tensor y = broadcast_map(tape, a.value(), b.value(), shape, [](auto u, auto v) { return u * v; });
  return tape.record("mul", std::move(y), {a, b}, [](VjpContext& context) {
    const Tensor& a = context.input(0);
    const Tensor& b = context.input(1);
    if (context.needs_grad(0)) {
      context.accumulate(0, detail::sum_to_shape(context, cotangent_times(context, b), a.shape()));
    }
    if (context.needs_grad(1)) {
      context.accumulate(1, detail::sum_to_shape(context, cotangent_times(context, a), b.shape()));
    }
  });
}

void register_arithmetic_cases(GradcheckRegistry& registry) {
  auto mul_of = [](std::span<const Var> inputs) { return inputs[0] * inputs[1]; };
  registry.add({.op = "mul", .name = "same_shape", .inputs = {{.shape = {3, 4}}, {.shape = {3, 4}}}, .function = mul_of});
  registry.add({.op = "mul", .name = "broadcast_row", .inputs = {{.shape = {3, 4}}, {.shape = {1, 4}}},
                .function = mul_of});
  registry.add({.op = "mul", .name = "broadcast_column", .inputs = {{.shape = {3, 1}}, {.shape = {3, 4}}},
                .function = mul_of});
  registry.add({.op = "mul", .name = "broadcast_both", .inputs = {{.shape = {3, 1}}, {.shape = {1, 4}}},
                .function = mul_of});
  registry.add({.op = "mul", .name = "scalar_operand", .inputs = {{.shape = {}}, {.shape = {2, 3}}},
                .function = mul_of});
  registry.add({.op = "mul", .name = "rank_extension", .inputs = {{.shape = {2, 3, 4}}, {.shape = {4}}},
                .function = mul_of});
}

}  // namespace tapegrad
