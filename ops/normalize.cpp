#include "normalize.hpp"

#include <algorithm>
#include <cmath>

#include "common.hpp"

namespace tapegrad {
namespace {

// A tensor seen as [outer, length, inner] around the normalized axis, so that the line at
// (o, j) has its elements at o · length · inner + k · inner + j for k in [0, length).
struct LineLayout {
  std::int64_t outer = 1;
  std::int64_t length = 1;
  std::int64_t inner = 1;
};

LineLayout line_layout(const Shape& shape, std::int64_t axis) {
  LineLayout layout;
  for (std::int64_t a = 0; a < axis; ++a) {
    layout.outer *= shape[a];
  }
  layout.length = shape[axis];
  for (std::int64_t a = axis + 1; a < shape.rank(); ++a) {
    layout.inner *= shape[a];
  }
  return layout;
}

template <class T>
double rescaled_norm_of(const T* x, std::int64_t count, std::int64_t stride) {
  double largest = 0.0;
  for (std::int64_t k = 0; k < count; ++k) {
    const double magnitude = std::abs(static_cast<double>(x[k * stride]));
    if (std::isnan(magnitude)) {
      return magnitude;
    }
    largest = std::max(largest, magnitude);
  }
  if (largest == 0.0 || !std::isfinite(largest)) {
    return largest;
  }
  double squares = 0.0;
  for (std::int64_t k = 0; k < count; ++k) {
    const double scaled = static_cast<double>(x[k * stride]) / largest;
    squares += scaled * scaled;
  }
  return largest * std::sqrt(squares);
}

// Writes y = x / max(n, eps) and the norms n (one per line, in f64).
template <class T>
void normalize_forward(const T* x, T* y, double* norms, const LineLayout& layout, double eps) {
  const std::int64_t inner = layout.inner;
  for (std::int64_t o = 0; o < layout.outer; ++o) {
    const T* x_block = x + o * layout.length * inner;
    T* y_block = y + o * layout.length * inner;
    double* n = norms + o * inner;
    std::fill_n(n, inner, 0.0);
    // The inner index runs fastest in memory, so each pass reads the block row by row.
    for (std::int64_t k = 0; k < layout.length; ++k) {
      for (std::int64_t j = 0; j < inner; ++j) {
        const double v = static_cast<double>(x_block[k * inner + j]);
        n[j] += v * v;
      }
    }
    for (std::int64_t j = 0; j < inner; ++j) {
      n[j] = std::sqrt(n[j]);
      if (std::isinf(n[j])) {
        n[j] = detail::rescaled_norm(x_block + j, layout.length, inner);
      }
    }
    for (std::int64_t k = 0; k < layout.length; ++k) {
      for (std::int64_t j = 0; j < inner; ++j) {
        y_block[k * inner + j] = static_cast<T>(static_cast<double>(x_block[k * inner + j]) / std::max(n[j], eps));
      }
    }
  }
}

// Writes x̄ for one op: (ȳ − y · ⟨y, ȳ⟩) / n on lines with n > eps, ȳ / eps on the others.
// dots is scratch space for one ⟨y, ȳ⟩ per line of a block.
template <class T>
void normalize_backward(const T* y, const T* g, const double* norms, T* dx, double* dots, const LineLayout& layout,
                        double eps) {
  const std::int64_t inner = layout.inner;
  for (std::int64_t o = 0; o < layout.outer; ++o) {
    const std::int64_t offset = o * layout.length * inner;
    const double* n = norms + o * inner;
    std::fill_n(dots, inner, 0.0);
    for (std::int64_t k = 0; k < layout.length; ++k) {
      for (std::int64_t j = 0; j < inner; ++j) {
        const std::int64_t i = offset + k * inner + j;
        dots[j] += static_cast<double>(y[i]) * static_cast<double>(g[i]);
      }
    }
    for (std::int64_t k = 0; k < layout.length; ++k) {
      for (std::int64_t j = 0; j < inner; ++j) {
        const std::int64_t i = offset + k * inner + j;
        const double cotangent = static_cast<double>(g[i]);
        const double on_sphere = (cotangent - static_cast<double>(y[i]) * dots[j]) / n[j];
        const double clamped = detail::zero_if_cotangent_zero(cotangent, cotangent / eps);
        dx[i] = static_cast<T>(n[j] > eps ? on_sphere : clamped);
      }
    }
  }
}

}  // namespace

namespace detail {

double rescaled_norm(const double* x, std::int64_t count, std::int64_t stride) {
  return rescaled_norm_of(x, count, stride);
}
double rescaled_norm(const float* x, std::int64_t count, std::int64_t stride) {
  return rescaled_norm_of(x, count, stride);
}

}  // namespace detail

Var normalize(const Var& x, std::int64_t axis, double eps) {
  constexpr std::string_view op = "normalize";
  Tape& tape = common_tape(op, {x});
  const Tensor& input = x.value();
  detail::check_floating(op, "x", input);
  if (!(eps > 0.0) || !std::isfinite(eps)) {
    raise<ValueError>(op, "eps must be positive and finite", "eps {}", eps);
  }
  if (input.rank() == 0) {
    raise<ShapeError>(op, "x must have at least one axis to normalize along", "x of shape {}", input.shape());
  }
  const std::int64_t axis_index = normalize_axis(op, axis, input.rank());

  const LineLayout layout = line_layout(input.shape(), axis_index);
  Shape norm_shape = input.shape();
  norm_shape[axis_index] = 1;
  Tensor norms = tape.allocate(norm_shape, Dtype::f64);
  Tensor y = tape.allocate(input.shape(), input.dtype());
  dispatch_floating(input.dtype(), [&](auto zero) {
    using T = decltype(zero);
    normalize_forward(input.data<T>(), y.data<T>(), norms.data<double>(), layout, eps);
  });

  const OpAttributes attributes{.axis = axis_index, .scalar = eps};
  return tape.record(
      op, std::move(y), {x},
      [](VjpContext& context) {
        const Tensor& y = context.output();
        const Tensor& cotangent = context.cotangent();
        const Tensor& norms = context.saved(0);
        const LineLayout layout = line_layout(y.shape(), context.attributes().axis);
        Tensor x_grad = context.allocate(y.shape(), y.dtype());
        Tensor dots = context.allocate(Shape{layout.inner}, Dtype::f64);
        dispatch_floating(y.dtype(), [&](auto zero) {
          using T = decltype(zero);
          normalize_backward(y.data<T>(), cotangent.data<T>(), norms.data<double>(), x_grad.data<T>(),
                             dots.data<double>(), layout, context.attributes().scalar);
        });
        context.accumulate(0, std::move(x_grad));
      },
      {norms}, attributes);
}

void register_normalize_cases(GradcheckRegistry& registry) {
  // Values are drawn with |x| in [0.5, 1.5) and random signs, so every line has a norm of at least
  // 0.5, far from eps = 1e-12: the clamp max(n, eps) is not differentiable at n = eps.
  const std::string reason = "sampled with |x| in [0.5, 1.5): the clamp max(n, eps) has a kink at n = eps";
  struct AxisCase {
    const char* name;
    Shape shape;
    std::int64_t axis;
  };
  const AxisCase axis_cases[] = {
      {"rows_last_axis", {3, 4}, -1},
      {"columns_axis_0", {3, 4}, 0},
      {"rows_axis_1", {3, 4}, 1},
      {"one_row", {1, 5}, -1},
      {"one_column_along_rows", {4, 1}, -1},
      {"one_column_along_column", {4, 1}, 0},
      {"vector", {5}, 0},
      {"rank_3_middle_axis", {2, 3, 4}, 1},
      {"rank_3_first_axis", {2, 3, 4}, -3},
  };
  std::uint64_t seed = 201;
  for (const AxisCase& entry : axis_cases) {
    const std::int64_t axis = entry.axis;
    registry.add({.op = "normalize",
                  .name = entry.name,
                  .inputs = {{.shape = entry.shape, .values = detail::uniform_away_from_zero(entry.shape, 0.5, 1.5, seed++)}},
                  .function = [axis](std::span<const Var> inputs) { return normalize(inputs[0], axis); },
                  .override_reason = reason});
  }

  // With eps = 1 and |x| in [0.05, 0.2), every line of 3 has a norm below 0.35, inside the clamp,
  // so this case checks the branch x̄ = ȳ / eps.
  const Shape small{4, 3};
  registry.add({.op = "normalize",
                .name = "inside_clamp",
                .inputs = {{.shape = small, .values = detail::uniform_away_from_zero(small, 0.05, 0.2, 301)}},
                .function = [](std::span<const Var> inputs) { return normalize(inputs[0], -1, 1.0); },
                .override_reason = "sampled with |x| in [0.05, 0.2) and eps = 1, so every norm stays below eps"});

  // Two rows with norms above eps = 1.1 and two below it in one tensor, so both branches run in
  // one backward pass.
  const Tensor mixed = Tensor::from_values({4, 3}, {0.9, -0.8, 1.0, 0.1, -0.15, 0.05, -0.2, 0.12, 0.08, 1.2, 0.85, -0.9});
  registry.add({.op = "normalize",
                .name = "both_branches",
                .inputs = {{.shape = {4, 3}, .values = mixed}},
                .function = [](std::span<const Var> inputs) { return normalize(inputs[0], 1, 1.1); },
                .override_reason = "fixed rows with norms 1.57, 0.19, 0.25 and 1.72, away from eps = 1.1"});
}

}  // namespace tapegrad
