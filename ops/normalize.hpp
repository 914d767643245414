#pragma once
// L2 normalization along an axis.

#include <cstdint>

#include "../core/gradcheck_registry.hpp"

namespace tapegrad {

// Scales each line of x along `axis` to unit Euclidean length, with the convention of
// torch.nn.functional.normalize (p = 2): a line whose norm is at most eps is divided by eps.
// A line is the set of elements that differ only in their index along `axis`.
//   value: y = x / max(n, eps), where n = ‖x‖₂ over the line
//   VJP:   where n > eps: x̄ = (ȳ − y · ⟨y, ȳ⟩) / n, with ⟨y, ȳ⟩ summed over the line
//          where n ≤ eps: x̄ = ȳ / eps, the gradient of x / eps, so a zero line maps to a zero line
//          with a finite gradient (exactly 0 where ȳ is 0)
//   shape: y has x's shape and dtype (f32 or f64). x needs rank ≥ 1, and axis must be in
//          [-rank, rank), a negative axis counting from the end. Size-0 axes give an empty y.
//   edges: eps must be positive and finite, or ValueError. The norm is not differentiable at
//          n = eps, where the two branches meet. Norms and ⟨y, ȳ⟩ are accumulated in double.
//          A line whose sum of squares overflows (f64 elements above about 1e154) has its norm
//          computed again as m·‖x/m‖₂ with m = max|x|, so it still maps to a unit line.
Var normalize(const Var& x, std::int64_t axis = -1, double eps = 1e-12);

namespace detail {

// ‖x‖₂ of `count` elements `stride` apart, as m·sqrt(Σ (x/m)²) with m = max|x|: finite whenever
// the norm itself is, where the plain sum of squares overflows double above about 1e154. Returns
// inf when an element is infinite and NaN when one is NaN.
double rescaled_norm(const double* x, std::int64_t count, std::int64_t stride);
double rescaled_norm(const float* x, std::int64_t count, std::int64_t stride);

}  // namespace detail

void register_normalize_cases(GradcheckRegistry& registry);

}  // namespace tapegrad
