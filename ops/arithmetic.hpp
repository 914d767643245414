#pragma once
// Elementwise arithmetic with NumPy broadcasting: add, sub, mul, div, neg and their operators.
//
// Binary forms on two Vars:
//   shape: the output shape is broadcast_shapes(a, b). Axes are aligned from the right, and each
//          pair of extents must be equal or contain a 1 (so an axis of extent 0 broadcasts against
//          1). Otherwise ShapeError names both shapes.
//   dtype: a and b must both be f32 or both f64. Mixed dtypes raise DtypeError naming both dtypes
//          and shapes (convert one with Tensor::to), and a boolean operand raises DtypeError.
//   VJP:   each input gradient is reduced with sum_to_shape, which sums the broadcast cotangent
//          over the axes that broadcasting added or repeated, back to that input's shape.
//
// Scalar forms (Var, double) and (double, Var) record one input under the same op name, with the
// double in OpAttributes::scalar, converted to the Var's dtype for the arithmetic. For sub and div,
// OpAttributes::integer is 1 when the scalar is the left operand and 0 when it is the right one.
//
// Zero cotangent: where ȳᵢ == 0 an input gradient element is exactly 0, even where the local
// derivative is inf or NaN (mul by inf, div by 0).

#include "../core/gradcheck_registry.hpp"

namespace tapegrad {

// Elementwise sum.
//   value: y = a + b
//   VJP:   ā = sum_to_shape(ȳ, a.shape), b̄ = sum_to_shape(ȳ, b.shape)
Var add(const Var& a, const Var& b);
Var add(const Var& a, double b);
Var add(double a, const Var& b);

// Elementwise difference.
//   value: y = a − b
//   VJP:   ā = sum_to_shape(ȳ, a.shape), b̄ = −sum_to_shape(ȳ, b.shape)
Var sub(const Var& a, const Var& b);
Var sub(const Var& a, double b);
Var sub(double a, const Var& b);

// Elementwise product.
//   value: y = a · b
//   VJP:   ā = sum_to_shape(ȳ · b, a.shape), b̄ = sum_to_shape(ȳ · a, b.shape)
Var mul(const Var& a, const Var& b);
Var mul(const Var& a, double b);
Var mul(double a, const Var& b);

// Elementwise quotient.
//   value: y = a / b
//   VJP:   ā = sum_to_shape(ȳ / b, a.shape), b̄ = sum_to_shape(−ȳ · y / b, b.shape), which is
//          −ȳ · a / b² computed from the saved output.
//   edges: IEEE 754 division, so b = 0 gives ±inf or NaN in y and in both input gradients
//          (except where ȳ is 0). The scalar form a / x has x̄ = −ȳ · y / x as well.
Var div(const Var& a, const Var& b);
Var div(const Var& a, double b);
Var div(double a, const Var& b);

// Elementwise negation.
//   value: y = −x
//   VJP:   x̄ = −ȳ
Var neg(const Var& x);

Var operator+(const Var& a, const Var& b);
Var operator+(const Var& a, double b);
Var operator+(double a, const Var& b);
Var operator-(const Var& a, const Var& b);
Var operator-(const Var& a, double b);
Var operator-(double a, const Var& b);
Var operator*(const Var& a, const Var& b);
Var operator*(const Var& a, double b);
Var operator*(double a, const Var& b);
Var operator/(const Var& a, const Var& b);
Var operator/(const Var& a, double b);
Var operator/(double a, const Var& b);
Var operator-(const Var& x);

void register_arithmetic_cases(GradcheckRegistry& registry);

}  // namespace tapegrad
