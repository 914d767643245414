#pragma once
// Reductions over all elements or along one axis: sum, mean and max.
//
// Common to every op here:
//   dtype: x must be f32 or f64, and the output has x's dtype.
//   axis:  a negative axis counts from the end. An axis outside [-rank, rank), or any axis of a
//          rank-0 tensor, raises ShapeError naming the axis and x's shape.
//   shape: the all-elements form returns a scalar (shape []). The axis form removes the axis, or
//          keeps it with extent 1 when keepdim is true, so [2, 3] along axis 1 gives [2] or [2, 1].
//   sums:  sum and mean accumulate in double for f32 as well as f64 and round once at the end.
//          An f32 accumulator loses every addend below half an ulp of the running total (at 1e8
//          that is 4), and the extra cost is one conversion per element.

#include <cmath>
#include <cstdint>

#include "../core/gradcheck_registry.hpp"

namespace tapegrad {

// Sum of all elements.
//   value: y = Σᵢ xᵢ, a scalar
//   VJP:   x̄ᵢ = ȳ for every i
//   edges: the sum of zero elements is 0.
Var sum(const Var& x);

// Sum along one axis.
//   value: y[o, i] = Σₖ x[o, k, i], where k runs along the axis, o over the axes before it and
//          i over the axes after it
//   VJP:   x̄[o, k, i] = ȳ[o, i]
//   edges: an axis of extent 0 gives zeros.
Var sum(const Var& x, std::int64_t axis, bool keepdim = false);

// Arithmetic mean of all elements.
//   value: y = (Σᵢ xᵢ) / n, a scalar, where n = x.numel()
//   VJP:   x̄ᵢ = ȳ / n
//   edges: an empty x raises ValueError naming the shape, as NumPy and PyTorch do, because the
//          mean of nothing is undefined.
Var mean(const Var& x);

// Arithmetic mean along one axis.
//   value: y[o, i] = (Σₖ x[o, k, i]) / K, where K is the axis's extent
//   VJP:   x̄[o, k, i] = ȳ[o, i] / K
//   edges: an axis of extent 0 raises ValueError naming the axis and the shape.
Var mean(const Var& x, std::int64_t axis, bool keepdim = false);

// Maximum of all elements.
//   value: y = maxᵢ xᵢ, a scalar
//   VJP:   x̄ᵢ = ȳ / t where xᵢ = y and 0 elsewhere, where t is the number of elements equal to y.
//          A t-way tie splits the gradient evenly, 1/t to each tied element, so the gradient
//          sums to ȳ as the one-sided derivatives of every tied element would not.
//   edges: an empty x raises ValueError naming the shape. A NaN element makes y NaN, as in
//          NumPy, and then the NaN elements count as the tied ones.
Var max(const Var& x);

// Maximum along one axis.
//   value: y[o, i] = maxₖ x[o, k, i]
//   VJP:   x̄[o, k, i] = ȳ[o, i] / t[o, i] where x[o, k, i] = y[o, i] and 0 elsewhere, where t[o, i]
//          is the number of entries along the axis equal to y[o, i] (ties share evenly)
//   edges: an axis of extent 0 raises ValueError naming the axis and the shape. NaN entries are
//          handled as in the all-elements form, row by row.
Var max(const Var& x, std::int64_t axis, bool keepdim = false);

void register_reduction_cases(GradcheckRegistry& registry);

namespace detail {

// Maps axis into [0, rank) for a tensor of this shape, or raises ShapeError naming op, the axis
// and the shape.
std::int64_t check_axis(std::string_view op, const Shape& shape, std::int64_t axis);

// The shape of a reduction along axis (already in [0, rank)): the axis removed, or kept with
// extent 1 when keepdim is true.
Shape reduced_shape(const Shape& shape, std::int64_t axis, bool keepdim);

// Folds one more entry v into a running maximum and its tie count, for max and masked_max. A NaN
// entry replaces a number, and later NaN entries count as ties of it, so is_tie finds them all.
template <class T>
void update_max(T v, T& maximum, double& ties) {
  if (v > maximum) {
    maximum = v;
    ties = 1.0;
  } else if (v == maximum) {
    ties += 1.0;
  } else if (std::isnan(v)) {
    if (std::isnan(maximum)) {
      ties += 1.0;
    } else {
      maximum = v;
      ties = 1.0;
    }
  }
}

// True when entry v is one of the entries update_max counted as ties of maximum.
template <class T>
bool is_tie(T v, T maximum) {
  return v == maximum || (std::isnan(v) && std::isnan(maximum));
}

}  // namespace detail

}  // namespace tapegrad
