#pragma once
// Helpers shared by the op families: argument checks in the one error format, broadcasting
// loops, and the reduction of a broadcast cotangent back to an input's shape.

#include <array>
#include <cstdint>
#include <string_view>

#include "../core/tape.hpp"

namespace tapegrad::detail {

// Raises DtypeError naming op unless the tensor is f32 or f64.
void check_floating(std::string_view op, std::string_view argument, const Tensor& tensor);
// Raises DtypeError naming op and both dtypes unless a and b have the same dtype.
void check_same_dtype(std::string_view op, const Tensor& a, const Tensor& b);
// Raises DtypeError naming op unless mask is boolean.
void check_mask(std::string_view op, const Tensor& mask);

// Returns `term`, a cotangent element times a local derivative, or exactly 0 where the cotangent
// element is 0. A structurally zero cotangent contributes nothing even where the derivative is
// inf or NaN, so sum(where(mask, exp(x), 0)) keeps a zero gradient at an unselected entry whose
// exp overflowed, instead of 0 · inf = NaN. Every elementwise VJP that multiplies or divides the
// cotangent goes through this function.
template <class T>
constexpr T zero_if_cotangent_zero(T cotangent, T term) {
  return cotangent == T{0} ? T{0} : term;
}

// Draws values whose magnitudes are uniform in [min_magnitude, max_magnitude) and whose signs are
// random, in f64, for gradcheck cases that must stay away from 0 (a kink or a pole of the op).
Tensor uniform_away_from_zero(const Shape& shape, double min_magnitude, double max_magnitude, std::uint64_t seed);

// Strides, in elements, that read a tensor of shape `from` as if it had the broadcast shape `to`:
// 0 on every axis that broadcasting repeats. `from` must broadcast to `to`.
std::array<std::int64_t, Shape::max_rank> broadcast_strides(const Shape& from, const Shape& to);

// Calls visit(out_index, a_index, b_index) for every element of `shape`, with the flat indices of
// the matching elements of two inputs read through broadcast strides. Contiguous inner runs are
// visited in a plain loop, so the common cases (equal shapes, a row vector) stay fast.
template <class Visit>
void for_each_broadcast(const Shape& shape, const std::array<std::int64_t, Shape::max_rank>& a_strides,
                        const std::array<std::int64_t, Shape::max_rank>& b_strides, Visit&& visit) {
  const std::int64_t rank = shape.rank();
  const std::int64_t count = shape.numel();
  if (count == 0) {
    return;
  }
  if (rank == 0) {
    visit(0, 0, 0);
    return;
  }
  const std::int64_t inner = shape[rank - 1];
  const std::int64_t a_inner = a_strides[static_cast<std::size_t>(rank - 1)];
  const std::int64_t b_inner = b_strides[static_cast<std::size_t>(rank - 1)];
  std::array<std::int64_t, Shape::max_rank> counter{};
  std::int64_t a_offset = 0;
  std::int64_t b_offset = 0;
  for (std::int64_t out = 0; out < count; out += inner) {
    for (std::int64_t i = 0; i < inner; ++i) {
      visit(out + i, a_offset + i * a_inner, b_offset + i * b_inner);
    }
    // Advance the multi-index over the outer axes like an odometer.
    for (std::int64_t axis = rank - 2; axis >= 0; --axis) {
      const auto position = static_cast<std::size_t>(axis);
      ++counter[position];
      a_offset += a_strides[position];
      b_offset += b_strides[position];
      if (counter[position] < shape[axis]) {
        break;
      }
      a_offset -= a_strides[position] * shape[axis];
      b_offset -= b_strides[position] * shape[axis];
      counter[position] = 0;
    }
  }
}

// Sums a cotangent of the broadcast shape over the axes that broadcasting added or repeated, so
// that the result has `target`, the shape of the input that was broadcast.
Tensor sum_to_shape(VjpContext& context, const Tensor& cotangent, const Shape& target);

}  // namespace tapegrad::detail
