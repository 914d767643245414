#pragma once
// Tensor: a dense, row-major, contiguous array of f32, f64 or boolean elements.

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "buffer.hpp"
#include "dtype.hpp"
#include "error.hpp"
#include "shape.hpp"

namespace tapegrad {

// A value handle: copies share storage, so copying is cheap, and clone() copies the elements.
// Storage is 64-byte aligned. A Tensor carries no autograd state; the Tape does.
// A default-constructed Tensor is undefined (defined() is false) and holds no storage.
class Tensor {
 public:
  Tensor() = default;

  // Uninitialized elements. The pool, when given, supplies and later takes back the storage.
  static Tensor empty(const Shape& shape, Dtype dtype = Dtype::f64, BufferPool* pool = nullptr);
  static Tensor zeros(const Shape& shape, Dtype dtype = Dtype::f64);
  static Tensor ones(const Shape& shape, Dtype dtype = Dtype::f64);
  static Tensor full(const Shape& shape, double value, Dtype dtype = Dtype::f64);
  // Row-major values, converted to dtype. For boolean, a value is true when it is not 0.
  static Tensor from_values(const Shape& shape, std::span<const double> values, Dtype dtype = Dtype::f64);
  static Tensor from_values(const Shape& shape, std::initializer_list<double> values, Dtype dtype = Dtype::f64);
  // Standard normal samples from std::mt19937_64 seeded with seed: the same seed gives the same
  // values on every run with the same standard library.
  static Tensor randn(const Shape& shape, std::uint64_t seed, Dtype dtype = Dtype::f64);
  // Uniform samples in [low, high) from std::mt19937_64 seeded with seed.
  static Tensor uniform(const Shape& shape, double low, double high, std::uint64_t seed, Dtype dtype = Dtype::f64);

  bool defined() const { return static_cast<bool>(buffer_); }
  const Shape& shape() const { return shape_; }
  Dtype dtype() const { return dtype_; }
  std::int64_t rank() const { return shape_.rank(); }
  std::int64_t numel() const { return shape_.numel(); }
  // Extent of one axis; a negative axis counts from the end.
  std::int64_t size(std::int64_t axis) const;

  // The only element of a one-element tensor, as double.
  double item() const;
  // The element at a multi-index (one index per axis, negative counts from the end), as double.
  double at(std::initializer_list<std::int64_t> index) const;
  double at(std::span<const std::int64_t> index) const;
  // The element at a row-major flat index, as double.
  double flat(std::int64_t index) const;
  // All elements in row-major order, as double.
  std::vector<double> to_vector() const;

  // Typed element access. T must match dtype(): float for f32, double for f64, bool for boolean.
  template <class T>
  T* data();
  template <class T>
  const T* data() const;
  void* raw_data() const { return buffer_.data(); }

  Tensor clone() const;
  // A copy converted to dtype. Floating to boolean maps non-zero to true.
  Tensor to(Dtype dtype) const;
  // The same elements under another shape with the same element count, sharing storage.
  Tensor reshape(const Shape& shape) const;

  // Number of handles that share this tensor's storage.
  std::int64_t use_count() const { return buffer_.use_count(); }

  std::string to_string() const;

 private:
  Tensor(BufferRef buffer, const Shape& shape, Dtype dtype) : buffer_(std::move(buffer)), shape_(shape), dtype_(dtype) {}
  void check_defined(std::string_view op) const;
  template <class T>
  void check_element_type(std::string_view op) const;

  BufferRef buffer_;
  Shape shape_;
  Dtype dtype_ = Dtype::f64;
};

template <class T>
void Tensor::check_element_type(std::string_view op) const {
  check_defined(op);
  if (dtype_of<T>() != dtype_) {
    raise<DtypeError>(op, "the element type requested must match the tensor's dtype",
                      "data<{}>() on a tensor of dtype {}", dtype_name(dtype_of<T>()), dtype_);
  }
}

template <class T>
T* Tensor::data() {
  check_element_type<T>("Tensor::data");
  return static_cast<T*>(buffer_.data());
}

template <class T>
const T* Tensor::data() const {
  check_element_type<T>("Tensor::data");
  return static_cast<const T*>(buffer_.data());
}

}  // namespace tapegrad

template <>
struct fmt::formatter<tapegrad::Tensor> : fmt::formatter<std::string_view> {
  auto format(const tapegrad::Tensor& tensor, fmt::format_context& context) const {
    return fmt::formatter<std::string_view>::format(tensor.to_string(), context);
  }
};
