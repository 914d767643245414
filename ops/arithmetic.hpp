#pragma once
// Elementwise arithmetic with NumPy broadcasting.

#include "../core/gradcheck_registry.hpp"

namespace tapegrad {

// Elementwise product with broadcasting.
//   value: y = a · b, shape broadcast_shapes(a, b)
//   VJP:   ā = sum_to_shape(ȳ · b, a.shape), b̄ = sum_to_shape(ȳ · a, b.shape), where sum_to_shape
//          sums over the axes that broadcasting added or repeated.
//   dtype: a and b must have the same floating dtype.
Var operator*(const Var& a, const Var& b);

void register_arithmetic_cases(GradcheckRegistry& registry);

}  // namespace tapegrad
