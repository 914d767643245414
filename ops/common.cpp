#include "common.hpp"

#include <cstring>

namespace tapegrad::detail {

void check_floating(std::string_view op, std::string_view argument, const Tensor& tensor) {
  if (!tensor.defined()) {
    raise<ValueError>(op, "every argument must be a defined tensor", "{} undefined", argument);
  }
  if (!is_floating(tensor.dtype())) {
    raise<DtypeError>(op, "the argument must be f32 or f64", "{} of dtype {} and shape {}", argument,
                      tensor.dtype(), tensor.shape());
  }
}

void check_same_dtype(std::string_view op, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype()) {
    raise<DtypeError>(op, "both operands must have the same dtype (convert one with Tensor::to)",
                      "{} {} and {} {}", a.dtype(), a.shape(), b.dtype(), b.shape());
  }
}

void check_mask(std::string_view op, const Tensor& mask) {
  if (!mask.defined()) {
    raise<ValueError>(op, "the mask must be a defined tensor", "an undefined mask");
  }
  if (mask.dtype() != Dtype::boolean) {
    raise<DtypeError>(op, "the mask must be a boolean tensor", "a mask of dtype {} and shape {}", mask.dtype(),
                      mask.shape());
  }
}

Tensor uniform_away_from_zero(const Shape& shape, double min_magnitude, double max_magnitude, std::uint64_t seed) {
  Tensor values = Tensor::uniform(shape, min_magnitude, max_magnitude, seed);
  const Tensor signs = Tensor::uniform(shape, -1.0, 1.0, seed + 1);
  double* out = values.data<double>();
  const double* sign = signs.data<double>();
  for (std::int64_t i = 0; i < values.numel(); ++i) {
    out[i] = sign[i] < 0 ? -out[i] : out[i];
  }
  return values;
}

std::array<std::int64_t, Shape::max_rank> broadcast_strides(const Shape& from, const Shape& to) {
  std::array<std::int64_t, Shape::max_rank> strides{};
  const auto contiguous = contiguous_strides(from);
  const std::int64_t offset = to.rank() - from.rank();
  for (std::int64_t axis = 0; axis < from.rank(); ++axis) {
    const bool repeated = from[axis] == 1 && to[axis + offset] != 1;
    strides[static_cast<std::size_t>(axis + offset)] = repeated ? 0 : contiguous[static_cast<std::size_t>(axis)];
  }
  return strides;
}

Tensor sum_to_shape(VjpContext& context, const Tensor& cotangent, const Shape& target) {
  Tensor result = context.allocate(target, cotangent.dtype());
  if (cotangent.shape() == target) {
    std::memcpy(result.raw_data(), cotangent.raw_data(),
                static_cast<std::size_t>(cotangent.numel()) * dtype_size(cotangent.dtype()));
    return result;
  }
  const auto target_strides = broadcast_strides(target, cotangent.shape());
  const std::array<std::int64_t, Shape::max_rank> unused{};
  dispatch_floating(cotangent.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* out = result.data<T>();
    const T* in = cotangent.data<T>();
    std::fill_n(out, result.numel(), T{0});
    for_each_broadcast(cotangent.shape(), target_strides, unused,
                       [&](std::int64_t index, std::int64_t target_index, std::int64_t) { out[target_index] += in[index]; });
  });
  return result;
}

}  // namespace tapegrad::detail
