#pragma once
// Rectified linear unit.

#include "../core/gradcheck_registry.hpp"

namespace tapegrad {

// Elementwise max(x, 0).
//   value: y = x where x ≥ 0, else 0. NaN stays NaN.
//   VJP:   x̄ = ȳ · [x > 0], so the derivative at x = 0 is taken as 0 (the kink has no derivative,
//          and 0 is the usual subgradient choice). x̄ is exactly 0 where x ≤ 0 or x is NaN,
//          whatever ȳ is.
//   shape: y has x's shape and dtype (f32 or f64).
Var relu(const Var& x);

void register_relu_cases(GradcheckRegistry& registry);

}  // namespace tapegrad
