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
  dispatch_floating(a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* in_a = a.data<T>();
    const T* in_b = b.data<T>();
    T* out = y.data<T>();
    if (a.shape() == shape && b.shape() == shape) {
      const std::int64_t count = shape.numel();
      for (std::int64_t i = 0; i < count; ++i) {
        out[i] = fn(in_a[i], in_b[i]);
      }
      return;
    }
    const auto a_strides = detail::broadcast_strides(a.shape(), shape);
    const auto b_strides = detail::broadcast_strides(b.shape(), shape);
    detail::for_each_broadcast(shape, a_strides, b_strides, [&](std::int64_t i, std::int64_t ia, std::int64_t ib) {
      out[i] = fn(in_a[ia], in_b[ib]);
    });
  });
  return y;
}

// Evaluates fn(element, scalar converted to the element type) into a new pooled tensor.
template <class Function>
Tensor scalar_map(Tape& tape, const Tensor& x, double scalar, Function&& fn) {
  Tensor y = tape.allocate(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* in = x.data<T>();
    T* out = y.data<T>();
    const T s = static_cast<T>(scalar);
    const std::int64_t count = x.numel();
    for (std::int64_t i = 0; i < count; ++i) {
      out[i] = fn(in[i], s);
    }
  });
  return y;
}

// Evaluates fn(ȳ, other, y) for every element of the output into a tensor of the output's shape,
// with `other` (an input) read through broadcast strides.
template <class Function>
Tensor cotangent_map(VjpContext& context, const Tensor& other, Function&& fn) {
  const Tensor& cotangent = context.cotangent();
  const Tensor& output = context.output();
  const Shape& shape = cotangent.shape();
  Tensor result = context.allocate(shape, cotangent.dtype());
  dispatch_floating(cotangent.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* g = cotangent.data<T>();
    const T* y = output.data<T>();
    const T* in = other.data<T>();
    T* out = result.data<T>();
    if (other.shape() == shape) {
      const std::int64_t count = shape.numel();
      for (std::int64_t i = 0; i < count; ++i) {
        out[i] = fn(g[i], in[i], y[i]);
      }
      return;
    }
    const auto other_strides = detail::broadcast_strides(other.shape(), shape);
    const auto same = contiguous_strides(shape);
    detail::for_each_broadcast(shape, same, other_strides, [&](std::int64_t i, std::int64_t, std::int64_t io) {
      out[i] = fn(g[i], in[io], y[i]);
    });
  });
  return result;
}

// A gradient of the output's shape reduced to an input's shape, without a copy when the input
// was not broadcast.
Tensor reduce_to_input(VjpContext& context, Tensor gradient, const Shape& target) {
  if (gradient.shape() == target) {
    return gradient;
  }
  return detail::sum_to_shape(context, gradient, target);
}

// −ȳ, for cotangent_map.
constexpr auto negated_cotangent = [](auto g, auto, auto) { return -g; };

// Checks a (Var, scalar) operand and records the op with one input.
template <class Function>
Var record_scalar_op(std::string_view op, const Var& x, double scalar, bool scalar_left, Function&& fn,
                     VjpFunction vjp) {
  Tape& tape = common_tape(op, {x});
  detail::check_floating(op, "x", x.value());
  Tensor y = scalar_map(tape, x.value(), scalar, fn);
  const OpAttributes attributes{.scalar = scalar, .integer = scalar_left ? 1 : 0};
  return tape.record(op, std::move(y), {x}, vjp, {}, attributes);
}

}  // namespace

// ---- add -------------------------------------------------------------------------------------

Var add(const Var& a, const Var& b) {
  Tape& tape = common_tape("add", {a, b});
  const Shape shape = check_binary("add", a.value(), b.value());
  Tensor y = broadcast_map(tape, a.value(), b.value(), shape, [](auto u, auto v) { return u + v; });
  return tape.record("add", std::move(y), {a, b}, [](VjpContext& context) {
    for (std::int64_t position = 0; position < 2; ++position) {
      if (context.needs_grad(position)) {
        context.accumulate(position, reduce_to_input(context, context.cotangent(), context.input(position).shape()));
      }
    }
  });
}

Var add(const Var& a, double b) {
  return record_scalar_op("add", a, b, false, [](auto u, auto s) { return u + s; },
                          [](VjpContext& context) { context.accumulate(0, context.cotangent()); });
}

Var add(double a, const Var& b) { return add(b, a); }

// ---- sub -------------------------------------------------------------------------------------

Var sub(const Var& a, const Var& b) {
  Tape& tape = common_tape("sub", {a, b});
  const Shape shape = check_binary("sub", a.value(), b.value());
  Tensor y = broadcast_map(tape, a.value(), b.value(), shape, [](auto u, auto v) { return u - v; });
  return tape.record("sub", std::move(y), {a, b}, [](VjpContext& context) {
    if (context.needs_grad(0)) {
      context.accumulate(0, reduce_to_input(context, context.cotangent(), context.input(0).shape()));
    }
    if (context.needs_grad(1)) {
      const Tensor& b = context.input(1);
      context.accumulate(1, reduce_to_input(context, cotangent_map(context, b, negated_cotangent), b.shape()));
    }
  });
}

Var sub(const Var& a, double b) {
  return record_scalar_op("sub", a, b, false, [](auto u, auto s) { return u - s; },
                          [](VjpContext& context) { context.accumulate(0, context.cotangent()); });
}

Var sub(double a, const Var& b) {
  return record_scalar_op("sub", b, a, true, [](auto u, auto s) { return s - u; }, [](VjpContext& context) {
    context.accumulate(0, cotangent_map(context, context.input(0), negated_cotangent));
  });
}

// ---- mul -------------------------------------------------------------------------------------

Var mul(const Var& a, const Var& b) {
  Tape& tape = common_tape("mul", {a, b});
  const Shape shape = check_binary("mul", a.value(), b.value());
  Tensor y = broadcast_map(tape, a.value(), b.value(), shape, [](auto u, auto v) { return u * v; });
  return tape.record("mul", std::move(y), {a, b}, [](VjpContext& context) {
    // ā = ȳ · b and b̄ = ȳ · a over the output's shape, then summed over broadcast axes.
    auto times_other = [](auto g, auto other, auto) { return detail::zero_if_cotangent_zero(g, g * other); };
    const Tensor& a = context.input(0);
    const Tensor& b = context.input(1);
    if (context.needs_grad(0)) {
      context.accumulate(0, reduce_to_input(context, cotangent_map(context, b, times_other), a.shape()));
    }
    if (context.needs_grad(1)) {
      context.accumulate(1, reduce_to_input(context, cotangent_map(context, a, times_other), b.shape()));
    }
  });
}

Var mul(const Var& a, double b) {
  return record_scalar_op("mul", a, b, false, [](auto u, auto s) { return u * s; }, [](VjpContext& context) {
    const double scalar = context.attributes().scalar;
    auto times_scalar = [scalar](auto g, auto, auto) {
      return detail::zero_if_cotangent_zero(g, g * static_cast<decltype(g)>(scalar));
    };
    context.accumulate(0, cotangent_map(context, context.input(0), times_scalar));
  });
}

Var mul(double a, const Var& b) { return mul(b, a); }

// ---- div -------------------------------------------------------------------------------------

Var div(const Var& a, const Var& b) {
  Tape& tape = common_tape("div", {a, b});
  const Shape shape = check_binary("div", a.value(), b.value());
  Tensor y = broadcast_map(tape, a.value(), b.value(), shape, [](auto u, auto v) { return u / v; });
  return tape.record("div", std::move(y), {a, b}, [](VjpContext& context) {
    const Tensor& a = context.input(0);
    const Tensor& b = context.input(1);
    if (context.needs_grad(0)) {
      auto over_b = [](auto g, auto divisor, auto) { return detail::zero_if_cotangent_zero(g, g / divisor); };
      context.accumulate(0, reduce_to_input(context, cotangent_map(context, b, over_b), a.shape()));
    }
    if (context.needs_grad(1)) {
      // ∂(a/b)/∂b = −a/b² = −y/b, from the saved output y.
      auto minus_y_over_b = [](auto g, auto divisor, auto y) {
        return detail::zero_if_cotangent_zero(g, -(g * y) / divisor);
      };
      context.accumulate(1, reduce_to_input(context, cotangent_map(context, b, minus_y_over_b), b.shape()));
    }
  });
}

Var div(const Var& a, double b) {
  return record_scalar_op("div", a, b, false, [](auto u, auto s) { return u / s; }, [](VjpContext& context) {
    const double scalar = context.attributes().scalar;
    auto over_scalar = [scalar](auto g, auto, auto) {
      return detail::zero_if_cotangent_zero(g, g / static_cast<decltype(g)>(scalar));
    };
    context.accumulate(0, cotangent_map(context, context.input(0), over_scalar));
  });
}

Var div(double a, const Var& b) {
  return record_scalar_op("div", b, a, true, [](auto u, auto s) { return s / u; }, [](VjpContext& context) {
    // ∂(s/x)/∂x = −s/x² = −y/x, from the saved output y.
    auto minus_y_over_x = [](auto g, auto x, auto y) { return detail::zero_if_cotangent_zero(g, -(g * y) / x); };
    context.accumulate(0, cotangent_map(context, context.input(0), minus_y_over_x));
  });
}

// ---- neg -------------------------------------------------------------------------------------

Var neg(const Var& x) {
  Tape& tape = common_tape("neg", {x});
  detail::check_floating("neg", "x", x.value());
  Tensor y = scalar_map(tape, x.value(), 0.0, [](auto u, auto) { return -u; });
  return tape.record("neg", std::move(y), {x}, [](VjpContext& context) {
    context.accumulate(0, cotangent_map(context, context.input(0), negated_cotangent));
  });
}

// ---- operators -------------------------------------------------------------------------------

Var operator+(const Var& a, const Var& b) { return add(a, b); }
Var operator+(const Var& a, double b) { return add(a, b); }
Var operator+(double a, const Var& b) { return add(a, b); }
Var operator-(const Var& a, const Var& b) { return sub(a, b); }
Var operator-(const Var& a, double b) { return sub(a, b); }
Var operator-(double a, const Var& b) { return sub(a, b); }
Var operator*(const Var& a, const Var& b) { return mul(a, b); }
Var operator*(const Var& a, double b) { return mul(a, b); }
Var operator*(double a, const Var& b) { return mul(a, b); }
Var operator/(const Var& a, const Var& b) { return div(a, b); }
Var operator/(const Var& a, double b) { return div(a, b); }
Var operator/(double a, const Var& b) { return div(a, b); }
Var operator-(const Var& x) { return neg(x); }

// ---- gradcheck cases -------------------------------------------------------------------------

namespace {

struct ShapePair {
  const char* name;
  Shape a;
  Shape b;
};

// The broadcasting layouts every binary op is checked at.
const ShapePair binary_shape_pairs[] = {
    {"same_shape", {3, 4}, {3, 4}},
    {"one_row", {1, 5}, {1, 5}},
    {"one_column", {4, 1}, {4, 1}},
    {"broadcast_row", {3, 4}, {1, 4}},
    {"broadcast_column", {3, 1}, {3, 4}},
    {"broadcast_both", {3, 1}, {1, 4}},
    {"scalar_operand", {}, {2, 3}},
    {"rank_extension", {2, 3, 4}, {4}},
};

void add_binary_cases(GradcheckRegistry& registry, const std::string& op, const GradcheckFunction& function) {
  for (const ShapePair& pair : binary_shape_pairs) {
    registry.add({.op = op, .name = pair.name, .inputs = {{.shape = pair.a}, {.shape = pair.b}}, .function = function});
  }
}

}  // namespace

void register_arithmetic_cases(GradcheckRegistry& registry) {
  add_binary_cases(registry, "add", [](std::span<const Var> inputs) { return inputs[0] + inputs[1]; });
  add_binary_cases(registry, "sub", [](std::span<const Var> inputs) { return inputs[0] - inputs[1]; });
  add_binary_cases(registry, "mul", [](std::span<const Var> inputs) { return inputs[0] * inputs[1]; });

  // The divisor is sampled with |b| in [0.5, 2), because a / b has a pole at b = 0 that a central
  // difference straddling it would get wrong.
  const std::string divisor_reason = "divisor sampled with |b| in [0.5, 2): a / b has a pole at b = 0";
  std::uint64_t divisor_seed = 11;
  for (const ShapePair& pair : binary_shape_pairs) {
    registry.add({.op = "div",
                  .name = pair.name,
                  .inputs = {{.shape = pair.a},
                             {.shape = pair.b, .values = detail::uniform_away_from_zero(pair.b, 0.5, 2.0, divisor_seed++)}},
                  .function = [](std::span<const Var> inputs) { return inputs[0] / inputs[1]; },
                  .override_reason = divisor_reason});
  }

  // Scalar forms, with the scalar on either side.
  const Shape matrix{3, 4};
  registry.add({.op = "add", .name = "scalar_right", .inputs = {{.shape = matrix}},
                .function = [](std::span<const Var> inputs) { return inputs[0] + 2.5; }});
  registry.add({.op = "add", .name = "scalar_left", .inputs = {{.shape = matrix}},
                .function = [](std::span<const Var> inputs) { return -1.5 + inputs[0]; }});
  registry.add({.op = "sub", .name = "scalar_right", .inputs = {{.shape = matrix}},
                .function = [](std::span<const Var> inputs) { return inputs[0] - 2.5; }});
  registry.add({.op = "sub", .name = "scalar_left", .inputs = {{.shape = matrix}},
                .function = [](std::span<const Var> inputs) { return 2.5 - inputs[0]; }});
  registry.add({.op = "mul", .name = "scalar_right", .inputs = {{.shape = matrix}},
                .function = [](std::span<const Var> inputs) { return inputs[0] * -3.0; }});
  registry.add({.op = "mul", .name = "scalar_left", .inputs = {{.shape = matrix}},
                .function = [](std::span<const Var> inputs) { return 0.75 * inputs[0]; }});
  registry.add({.op = "div", .name = "scalar_right", .inputs = {{.shape = matrix}},
                .function = [](std::span<const Var> inputs) { return inputs[0] / -0.4; }});
  registry.add({.op = "div", .name = "scalar_left",
                .inputs = {{.shape = matrix, .values = detail::uniform_away_from_zero(matrix, 0.5, 2.0, 31)}},
                .function = [](std::span<const Var> inputs) { return 1.5 / inputs[0]; },
                .override_reason = "divisor sampled with |x| in [0.5, 2): s / x has a pole at x = 0"});

  auto neg_of = [](std::span<const Var> inputs) { return -inputs[0]; };
  registry.add({.op = "neg", .name = "scalar", .inputs = {{.shape = {}}}, .function = neg_of});
  registry.add({.op = "neg", .name = "one_row", .inputs = {{.shape = {1, 5}}}, .function = neg_of});
  registry.add({.op = "neg", .name = "one_column", .inputs = {{.shape = {4, 1}}}, .function = neg_of});
  registry.add({.op = "neg", .name = "rank_3", .inputs = {{.shape = {2, 3, 4}}}, .function = neg_of});
}

}  // namespace tapegrad
