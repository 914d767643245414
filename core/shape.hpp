#pragma once
// Shapes of row-major tensors, axis arithmetic and NumPy broadcasting.

#include <array>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

#include <fmt/format.h>

namespace tapegrad {

// The extents of a tensor, outermost first. Stored inline (up to max_rank axes) so that
// building and copying shapes in an op never touches the heap.
class Shape {
 public:
  static constexpr std::int64_t max_rank = 8;

  Shape() = default;
  Shape(std::initializer_list<std::int64_t> extents);
  explicit Shape(std::span<const std::int64_t> extents);

  std::int64_t rank() const { return rank_; }
  std::int64_t operator[](std::int64_t axis) const { return extents_[static_cast<std::size_t>(axis)]; }
  std::int64_t& operator[](std::int64_t axis) { return extents_[static_cast<std::size_t>(axis)]; }
  const std::int64_t* begin() const { return extents_.data(); }
  const std::int64_t* end() const { return extents_.data() + rank_; }
  std::span<const std::int64_t> extents() const { return {extents_.data(), static_cast<std::size_t>(rank_)}; }

  // Product of the extents: 1 for a scalar (rank 0).
  std::int64_t numel() const;
  void push_back(std::int64_t extent);

  friend bool operator==(const Shape& a, const Shape& b);

 private:
  std::array<std::int64_t, max_rank> extents_{};
  std::int64_t rank_ = 0;
};

std::string to_string(const Shape& shape);

// Raises ShapeError naming op unless every extent is >= 0.
void check_extents(std::string_view op, const Shape& shape);

// Maps axis (negative counts from the end) into [0, rank), or raises ShapeError naming op.
std::int64_t normalize_axis(std::string_view op, std::int64_t axis, std::int64_t rank);

// The NumPy broadcast of two shapes: axes are aligned from the right and each pair must be equal
// or contain a 1. Raises ShapeError naming op and both shapes otherwise.
Shape broadcast_shapes(std::string_view op, const Shape& a, const Shape& b);

// True when `from` broadcasts to exactly `to` (the result of broadcasting them is `to`).
bool broadcasts_to(const Shape& from, const Shape& to);

// Row-major strides, in elements, of a contiguous tensor of this shape.
std::array<std::int64_t, Shape::max_rank> contiguous_strides(const Shape& shape);

}  // namespace tapegrad

template <>
struct fmt::formatter<tapegrad::Shape> : fmt::formatter<std::string_view> {
  auto format(const tapegrad::Shape& shape, fmt::format_context& context) const {
    return fmt::formatter<std::string_view>::format(tapegrad::to_string(shape), context);
  }
};
