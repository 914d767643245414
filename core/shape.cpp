#include "shape.hpp"

#include <algorithm>

#include "error.hpp"

namespace tapegrad {

Shape::Shape(std::initializer_list<std::int64_t> extents)
    : Shape(std::span<const std::int64_t>(extents.begin(), extents.size())) {}

Shape::Shape(std::span<const std::int64_t> extents) {
  if (static_cast<std::int64_t>(extents.size()) > max_rank) {
    raise<ShapeError>("Shape", fmt::format("a shape has at most {} axes", max_rank), "{} axes",
                      extents.size());
  }
  std::copy(extents.begin(), extents.end(), extents_.begin());
  rank_ = static_cast<std::int64_t>(extents.size());
}

std::int64_t Shape::numel() const {
  // A zero extent first, so that [2^32, 2^32, 0], which check_extents accepts, gives 0 without
  // overflowing on the way.
  if (std::find(begin(), end(), 0) != end()) {
    return 0;
  }
  std::int64_t count = 1;
  for (std::int64_t extent : *this) {
    count *= extent;
  }
  return count;
}

void Shape::push_back(std::int64_t extent) {
  if (rank_ == max_rank) {
    raise<ShapeError>("Shape", fmt::format("a shape has at most {} axes", max_rank), "one more axis on {}",
                      to_string(*this));
  }
  extents_[static_cast<std::size_t>(rank_++)] = extent;
}

bool operator==(const Shape& a, const Shape& b) {
  return a.rank() == b.rank() && std::equal(a.begin(), a.end(), b.begin());
}

std::string to_string(const Shape& shape) {
  return fmt::format("[{}]", fmt::join(shape.begin(), shape.end(), ", "));
}

void check_extents(std::string_view op, const Shape& shape) {
  for (std::int64_t extent : shape) {
    if (extent < 0) {
      raise<ShapeError>(op, "every extent of a shape must be >= 0", "shape {}", shape);
    }
  }
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) {
    return;
  }
  // Without this check numel() overflows std::int64_t, and a tensor would claim more elements
  // than its buffer holds.
  std::int64_t count = 1;
  for (std::int64_t extent : shape) {
    if (__builtin_mul_overflow(count, extent, &count)) {
      raise<ShapeError>(op, "the element count of a shape must fit in int64", "shape {}", shape);
    }
  }
}

std::int64_t normalize_axis(std::string_view op, std::int64_t axis, std::int64_t rank) {
  if (axis < -rank || axis >= rank) {
    raise<ShapeError>(op, fmt::format("axis must be in [{}, {}) for a tensor of rank {}", -rank, rank, rank),
                      "axis {}", axis);
  }
  return axis < 0 ? axis + rank : axis;
}

Shape broadcast_shapes(std::string_view op, const Shape& a, const Shape& b) {
  const std::int64_t rank = std::max(a.rank(), b.rank());
  Shape result;
  for (std::int64_t axis = 0; axis < rank; ++axis) {
    // Axes are aligned from the right, so a shorter shape has implicit leading 1s.
    const std::int64_t offset_a = axis - (rank - a.rank());
    const std::int64_t offset_b = axis - (rank - b.rank());
    const std::int64_t extent_a = offset_a >= 0 ? a[offset_a] : 1;
    const std::int64_t extent_b = offset_b >= 0 ? b[offset_b] : 1;
    if (extent_a != extent_b && extent_a != 1 && extent_b != 1) {
      raise<ShapeError>(op,
                        "shapes must broadcast (aligned from the right, each pair of extents equal or one of them 1)",
                        "{} and {}", a, b);
    }
    result.push_back(extent_a == 1 ? extent_b : extent_a);
  }
  return result;
}

bool broadcasts_to(const Shape& from, const Shape& to) {
  if (from.rank() > to.rank()) {
    return false;
  }
  const std::int64_t offset = to.rank() - from.rank();
  for (std::int64_t axis = 0; axis < from.rank(); ++axis) {
    if (from[axis] != 1 && from[axis] != to[axis + offset]) {
      return false;
    }
  }
  return true;
}

std::array<std::int64_t, Shape::max_rank> contiguous_strides(const Shape& shape) {
  std::array<std::int64_t, Shape::max_rank> strides{};
  std::int64_t stride = 1;
  for (std::int64_t axis = shape.rank() - 1; axis >= 0; --axis) {
    strides[static_cast<std::size_t>(axis)] = stride;
    // Only a shape with a zero extent gets here with an overflowing product (check_extents rejects
    // the others), and an empty tensor's strides address nothing, so 0 will do.
    if (__builtin_mul_overflow(stride, shape[axis], &stride)) {
      stride = 0;
    }
  }
  return strides;
}

}  // namespace tapegrad
