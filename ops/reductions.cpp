#include "reductions.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "common.hpp"

namespace tapegrad {
namespace {

// OpAttributes::integer of a node that reduces all elements rather than one axis.
constexpr std::int64_t reduce_all_elements = 1;

// x viewed as [outer, extent, inner] around the reduced axis, so the output is [outer, inner]
// with the same row-major order whether or not keepdim kept the axis.
struct AxisSplit {
  std::int64_t outer = 1;
  std::int64_t extent = 1;
  std::int64_t inner = 1;
};

AxisSplit split_at(const Shape& shape, std::int64_t axis) {
  AxisSplit split;
  for (std::int64_t a = 0; a < axis; ++a) {
    split.outer *= shape[a];
  }
  split.extent = shape[axis];
  for (std::int64_t a = axis + 1; a < shape.rank(); ++a) {
    split.inner *= shape[a];
  }
  return split;
}

AxisSplit split_of(const Shape& shape, const OpAttributes& attributes) {
  if (attributes.integer == reduce_all_elements) {
    return {1, shape.numel(), 1};
  }
  return split_at(shape, attributes.axis);
}

OpAttributes attributes_of(std::int64_t axis, bool keepdim) { return {.axis = axis, .keepdim = keepdim}; }

OpAttributes all_elements_attributes() { return {.integer = reduce_all_elements}; }

// Writes (Σₖ x[o, k, i]) / divisor into out[o, i], accumulating in double. `scratch` has room
// for outer · inner doubles and is used only for f32 with inner > 1, where the running sums of a
// whole row of outputs cannot live in the f32 output.
template <class T>
void sum_kernel(const T* in, T* out, double* scratch, AxisSplit split, double divisor) {
  const auto [outer, extent, inner] = split;
  if (inner == 1) {
    for (std::int64_t o = 0; o < outer; ++o) {
      const T* row = in + o * extent;
      double total = 0.0;
      for (std::int64_t k = 0; k < extent; ++k) {
        total += static_cast<double>(row[k]);
      }
      out[o] = static_cast<T>(total / divisor);
    }
    return;
  }
  double* totals = nullptr;
  if constexpr (std::is_same_v<T, double>) {
    totals = out;
  } else {
    totals = scratch;
  }
  std::fill_n(totals, outer * inner, 0.0);
  for (std::int64_t o = 0; o < outer; ++o) {
    double* total_row = totals + o * inner;
    for (std::int64_t k = 0; k < extent; ++k) {
      const T* slice = in + (o * extent + k) * inner;
      for (std::int64_t i = 0; i < inner; ++i) {
        total_row[i] += static_cast<double>(slice[i]);
      }
    }
  }
  for (std::int64_t j = 0; j < outer * inner; ++j) {
    out[j] = static_cast<T>(totals[j] / divisor);
  }
}

// Writes maxₖ x[o, k, i] into out[o, i] and the number of entries equal to it into ties[o, i].
// The extent must be at least 1.
template <class T>
void max_kernel(const T* in, T* out, double* ties, AxisSplit split) {
  const auto [outer, extent, inner] = split;
  for (std::int64_t o = 0; o < outer; ++o) {
    const T* block = in + o * extent * inner;
    T* out_row = out + o * inner;
    double* ties_row = ties + o * inner;
    std::copy_n(block, inner, out_row);
    std::fill_n(ties_row, inner, 1.0);
    for (std::int64_t k = 1; k < extent; ++k) {
      const T* slice = block + k * inner;
      for (std::int64_t i = 0; i < inner; ++i) {
        detail::update_max(slice[i], out_row[i], ties_row[i]);
      }
    }
  }
}

// Shared by sum and mean: records op with value (Σ along the split) / divisor.
Var record_sum(std::string_view op, const Var& x, const Shape& out_shape, AxisSplit split, double divisor,
               OpAttributes attributes) {
  Tape& tape = x.tape();
  const Tensor& in = x.value();
  Tensor y = tape.allocate(out_shape, in.dtype());
  Tensor scratch;
  if (in.dtype() == Dtype::f32 && split.inner > 1) {
    scratch = tape.allocate(Shape{split.outer * split.inner}, Dtype::f64);
  }
  dispatch_floating(in.dtype(), [&](auto zero) {
    using T = decltype(zero);
    sum_kernel(in.data<T>(), y.data<T>(), scratch.defined() ? scratch.data<double>() : nullptr, split, divisor);
  });
  // OpAttributes::scalar keeps the divisor: 1 for sum, the number of averaged entries for mean.
  attributes.scalar = divisor;
  return tape.record(op, std::move(y), {x}, [](VjpContext& context) {
    const Tensor& x = context.input(0);
    const Tensor& cotangent = context.cotangent();
    const AxisSplit split = split_of(x.shape(), context.attributes());
    Tensor x_grad = context.allocate(x.shape(), x.dtype());
    dispatch_floating(x.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const T divisor = static_cast<T>(context.attributes().scalar);
      const T* g = cotangent.data<T>();
      T* dx = x_grad.data<T>();
      for (std::int64_t o = 0; o < split.outer; ++o) {
        for (std::int64_t k = 0; k < split.extent; ++k) {
          T* slice = dx + (o * split.extent + k) * split.inner;
          const T* g_row = g + o * split.inner;
          for (std::int64_t i = 0; i < split.inner; ++i) {
            slice[i] = g_row[i] / divisor;
          }
        }
      }
    });
    context.accumulate(0, std::move(x_grad));
  }, {}, attributes);
}

Var record_max(const Var& x, const Shape& out_shape, AxisSplit split, OpAttributes attributes) {
  Tape& tape = x.tape();
  const Tensor& in = x.value();
  Tensor y = tape.allocate(out_shape, in.dtype());
  // Tie counts in double, exact up to 2^53 entries, so the VJP divides by the true count.
  Tensor ties = tape.allocate(out_shape, Dtype::f64);
  dispatch_floating(in.dtype(), [&](auto zero) {
    using T = decltype(zero);
    max_kernel(in.data<T>(), y.data<T>(), ties.data<double>(), split);
  });
  return tape.record("max", std::move(y), {x}, [](VjpContext& context) {
    const Tensor& x = context.input(0);
    const Tensor& maximum = context.output();
    const Tensor& cotangent = context.cotangent();
    const double* ties = context.saved(0).data<double>();
    const AxisSplit split = split_of(x.shape(), context.attributes());
    Tensor x_grad = context.allocate(x.shape(), x.dtype());
    dispatch_floating(x.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const T* in = x.data<T>();
      const T* m = maximum.data<T>();
      const T* g = cotangent.data<T>();
      T* dx = x_grad.data<T>();
      for (std::int64_t o = 0; o < split.outer; ++o) {
        for (std::int64_t k = 0; k < split.extent; ++k) {
          const std::int64_t offset = (o * split.extent + k) * split.inner;
          const std::int64_t row = o * split.inner;
          for (std::int64_t i = 0; i < split.inner; ++i) {
            const bool tie = detail::is_tie(in[offset + i], m[row + i]);
            dx[offset + i] = tie ? g[row + i] / static_cast<T>(ties[row + i]) : T{0};
          }
        }
      }
    });
    context.accumulate(0, std::move(x_grad));
  }, {std::move(ties)}, attributes);
}

// Raises ValueError naming op unless the reduced axis (or the whole tensor) has an element.
void check_not_empty(std::string_view op, const Var& x, std::int64_t axis, bool all_elements) {
  const Shape& shape = x.shape();
  if (all_elements && shape.numel() == 0) {
    raise<ValueError>(op, "the tensor must have at least one element, because a reduction of zero elements "
                          "has no value",
                      "x of shape {}", shape);
  }
  if (!all_elements && shape[axis] == 0) {
    raise<ValueError>(op, "the reduced axis must have extent >= 1, because a reduction of zero elements has no value",
                      "axis {} of extent 0 in x of shape {}", axis, shape);
  }
}

}  // namespace

namespace detail {

std::int64_t check_axis(std::string_view op, const Shape& shape, std::int64_t axis) {
  const std::int64_t rank = shape.rank();
  if (rank == 0) {
    raise<ShapeError>(op, "a tensor of rank 0 has no axis to reduce (use the form without an axis)",
                      "axis {} and x of shape []", axis);
  }
  if (axis < -rank || axis >= rank) {
    raise<ShapeError>(op, fmt::format("axis must be in [{}, {}) for x of rank {}", -rank, rank, rank),
                      "axis {} and x of shape {}", axis, shape);
  }
  return axis < 0 ? axis + rank : axis;
}

Shape reduced_shape(const Shape& shape, std::int64_t axis, bool keepdim) {
  Shape result;
  for (std::int64_t a = 0; a < shape.rank(); ++a) {
    if (a != axis) {
      result.push_back(shape[a]);
    } else if (keepdim) {
      result.push_back(1);
    }
  }
  return result;
}

}  // namespace detail

Var sum(const Var& x) {
  common_tape("sum", {x});
  detail::check_floating("sum", "x", x.value());
  const Shape& shape = x.shape();
  return record_sum("sum", x, Shape{}, {1, shape.numel(), 1}, 1.0, all_elements_attributes());
}

Var sum(const Var& x, std::int64_t axis, bool keepdim) {
  common_tape("sum", {x});
  detail::check_floating("sum", "x", x.value());
  const Shape& shape = x.shape();
  axis = detail::check_axis("sum", shape, axis);
  return record_sum("sum", x, detail::reduced_shape(shape, axis, keepdim), split_at(shape, axis), 1.0,
                    attributes_of(axis, keepdim));
}

Var mean(const Var& x) {
  common_tape("mean", {x});
  detail::check_floating("mean", "x", x.value());
  const Shape& shape = x.shape();
  check_not_empty("mean", x, 0, true);
  return record_sum("mean", x, Shape{}, {1, shape.numel(), 1}, static_cast<double>(shape.numel()),
                    all_elements_attributes());
}

Var mean(const Var& x, std::int64_t axis, bool keepdim) {
  common_tape("mean", {x});
  detail::check_floating("mean", "x", x.value());
  const Shape& shape = x.shape();
  axis = detail::check_axis("mean", shape, axis);
  check_not_empty("mean", x, axis, false);
  return record_sum("mean", x, detail::reduced_shape(shape, axis, keepdim), split_at(shape, axis),
                    static_cast<double>(shape[axis]), attributes_of(axis, keepdim));
}

Var max(const Var& x) {
  common_tape("max", {x});
  detail::check_floating("max", "x", x.value());
  const Shape& shape = x.shape();
  check_not_empty("max", x, 0, true);
  return record_max(x, Shape{}, {1, shape.numel(), 1}, all_elements_attributes());
}

Var max(const Var& x, std::int64_t axis, bool keepdim) {
  common_tape("max", {x});
  detail::check_floating("max", "x", x.value());
  const Shape& shape = x.shape();
  axis = detail::check_axis("max", shape, axis);
  check_not_empty("max", x, axis, false);
  return record_max(x, detail::reduced_shape(shape, axis, keepdim), split_at(shape, axis),
                    attributes_of(axis, keepdim));
}

// ---- gradcheck cases -------------------------------------------------------------------------

namespace {

// Distinct values at least 0.1 apart, in [-5, 5), in a scrambled order: k ↦ (37k + 11) mod 101
// is one-to-one for k < 101. Used for max, which is sampled away from ties because a central
// difference across a tie measures the average 1/2 of the two one-sided derivatives, 0 and 1,
// neither of which is the even split the VJP returns.
Tensor spaced_values(const Shape& shape) {
  std::vector<double> values(static_cast<std::size_t>(shape.numel()));
  for (std::size_t k = 0; k < values.size(); ++k) {
    values[k] = 0.1 * static_cast<double>((37 * k + 11) % 101) - 5.0;
  }
  return Tensor::from_values(shape, values);
}

void register_sum_cases(GradcheckRegistry& registry) {
  auto sum_all = [](std::span<const Var> inputs) { return sum(inputs[0]); };
  registry.add({.op = "sum", .name = "all_matrix", .inputs = {{.shape = {3, 4}}}, .function = sum_all});
  registry.add({.op = "sum", .name = "all_one_row", .inputs = {{.shape = {1, 5}}}, .function = sum_all});
  registry.add({.op = "sum", .name = "all_one_column", .inputs = {{.shape = {5, 1}}}, .function = sum_all});
  registry.add({.op = "sum", .name = "axis0", .inputs = {{.shape = {3, 4}}},
                .function = [](std::span<const Var> inputs) { return sum(inputs[0], 0); }});
  registry.add({.op = "sum", .name = "axis1_keepdim", .inputs = {{.shape = {3, 4}}},
                .function = [](std::span<const Var> inputs) { return sum(inputs[0], 1, true); }});
  registry.add({.op = "sum", .name = "axis_negative_one_row", .inputs = {{.shape = {1, 5}}},
                .function = [](std::span<const Var> inputs) { return sum(inputs[0], -1); }});
  registry.add({.op = "sum", .name = "axis0_one_column", .inputs = {{.shape = {5, 1}}},
                .function = [](std::span<const Var> inputs) { return sum(inputs[0], 0); }});
  registry.add({.op = "sum", .name = "middle_axis_rank3", .inputs = {{.shape = {2, 3, 4}}},
                .function = [](std::span<const Var> inputs) { return sum(inputs[0], 1); }});
}

void register_mean_cases(GradcheckRegistry& registry) {
  registry.add({.op = "mean", .name = "all_matrix", .inputs = {{.shape = {3, 4}}},
                .function = [](std::span<const Var> inputs) { return mean(inputs[0]); }});
  registry.add({.op = "mean", .name = "axis0", .inputs = {{.shape = {4, 3}}},
                .function = [](std::span<const Var> inputs) { return mean(inputs[0], 0); }});
  registry.add({.op = "mean", .name = "axis1_keepdim", .inputs = {{.shape = {3, 5}}},
                .function = [](std::span<const Var> inputs) { return mean(inputs[0], 1, true); }});
  registry.add({.op = "mean", .name = "axis_negative_one_row", .inputs = {{.shape = {1, 5}}},
                .function = [](std::span<const Var> inputs) { return mean(inputs[0], -1); }});
  registry.add({.op = "mean", .name = "axis1_one_column", .inputs = {{.shape = {5, 1}}},
                .function = [](std::span<const Var> inputs) { return mean(inputs[0], 1); }});
  registry.add({.op = "mean", .name = "last_axis_rank3", .inputs = {{.shape = {2, 3, 4}}},
                .function = [](std::span<const Var> inputs) { return mean(inputs[0], -1); }});
}

void register_max_cases(GradcheckRegistry& registry) {
  const std::string reason = "values at least 0.1 apart, because a central difference across a tie "
                             "measures 1/2, which is not a one-sided derivative";
  auto add = [&](std::string name, Shape shape, GradcheckFunction function) {
    registry.add({.op = "max",
                  .name = std::move(name),
                  .inputs = {{.shape = shape, .values = spaced_values(shape)}},
                  .function = std::move(function),
                  .override_reason = reason});
  };
  add("all_matrix", {3, 4}, [](std::span<const Var> inputs) { return max(inputs[0]); });
  add("axis0", {4, 3}, [](std::span<const Var> inputs) { return max(inputs[0], 0); });
  add("axis1_keepdim", {3, 5}, [](std::span<const Var> inputs) { return max(inputs[0], 1, true); });
  add("axis_negative_one_row", {1, 6}, [](std::span<const Var> inputs) { return max(inputs[0], -1); });
  add("axis0_one_column", {6, 1}, [](std::span<const Var> inputs) { return max(inputs[0], 0); });
  add("middle_axis_rank3", {2, 3, 4}, [](std::span<const Var> inputs) { return max(inputs[0], 1); });
}

}  // namespace

void register_reduction_cases(GradcheckRegistry& registry) {
  register_sum_cases(registry);
  register_mean_cases(registry);
  register_max_cases(registry);
}

}  // namespace tapegrad
