#include "tensor.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

namespace tapegrad {
namespace {

template <class Function>
void dispatch_all(Dtype dtype, Function&& fn) {
  switch (dtype) {
    case Dtype::f32: fn(float{}); return;
    case Dtype::f64: fn(double{}); return;
    case Dtype::boolean: fn(bool{}); return;
  }
}

template <class T>
T convert(double value) {
  if constexpr (std::is_same_v<T, bool>) {
    return value != 0.0;
  } else {
    return static_cast<T>(value);
  }
}

}  // namespace

Tensor Tensor::empty(const Shape& shape, Dtype dtype, BufferPool* pool) {
  check_extents("Tensor::empty", shape);
  // The byte count must not wrap around std::size_t, or the buffer would be smaller than the shape.
  const auto max_elements = static_cast<std::int64_t>(std::numeric_limits<std::ptrdiff_t>::max() / dtype_size(dtype));
  if (shape.numel() > max_elements) {
    raise<ShapeError>("Tensor::empty", fmt::format("a tensor of dtype {} holds at most {} elements", dtype, max_elements),
                      "shape {} ({} elements) and dtype {}", shape, shape.numel(), dtype);
  }
  const std::size_t bytes = static_cast<std::size_t>(shape.numel()) * dtype_size(dtype);
  return Tensor(pool != nullptr ? pool->allocate(bytes) : allocate_buffer(bytes), shape, dtype);
}

Tensor Tensor::zeros(const Shape& shape, Dtype dtype) { return full(shape, 0.0, dtype); }

Tensor Tensor::ones(const Shape& shape, Dtype dtype) { return full(shape, 1.0, dtype); }

Tensor Tensor::full(const Shape& shape, double value, Dtype dtype) {
  Tensor result = empty(shape, dtype);
  dispatch_all(dtype, [&](auto zero) {
    using T = decltype(zero);
    std::fill_n(result.data<T>(), result.numel(), convert<T>(value));
  });
  return result;
}

Tensor Tensor::from_values(const Shape& shape, std::span<const double> values, Dtype dtype) {
  check_extents("Tensor::from_values", shape);
  if (static_cast<std::int64_t>(values.size()) != shape.numel()) {
    raise<ShapeError>("Tensor::from_values", "the number of values must equal the product of the shape",
                      "{} values for shape {} ({} elements)", values.size(), shape, shape.numel());
  }
  Tensor result = empty(shape, dtype);
  dispatch_all(dtype, [&](auto zero) {
    using T = decltype(zero);
    std::transform(values.begin(), values.end(), result.data<T>(), convert<T>);
  });
  return result;
}

Tensor Tensor::from_values(const Shape& shape, std::initializer_list<double> values, Dtype dtype) {
  return from_values(shape, std::span<const double>(values.begin(), values.size()), dtype);
}

Tensor Tensor::randn(const Shape& shape, std::uint64_t seed, Dtype dtype) {
  check_extents("Tensor::randn", shape);
  std::mt19937_64 generator(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> values(static_cast<std::size_t>(shape.numel()));
  for (double& value : values) {
    value = normal(generator);
  }
  return from_values(shape, values, dtype);
}

Tensor Tensor::uniform(const Shape& shape, double low, double high, std::uint64_t seed, Dtype dtype) {
  check_extents("Tensor::uniform", shape);
  if (!(low < high) || !std::isfinite(low) || !std::isfinite(high)) {
    raise<ValueError>("Tensor::uniform", "the bounds must be finite with low < high", "low {} and high {}", low,
                      high);
  }
  std::mt19937_64 generator(seed);
  std::uniform_real_distribution<double> distribution(low, high);
  std::vector<double> values(static_cast<std::size_t>(shape.numel()));
  for (double& value : values) {
    value = distribution(generator);
  }
  if (dtype == Dtype::f32) {
    // Rounding to float can carry a sample up to high (or below a low that is not a float), so
    // samples are clamped to the floats in [low, high) first. Rounding is monotonic, so a clamped
    // sample rounds to a float inside the range.
    const float infinity = std::numeric_limits<float>::infinity();
    float lowest = static_cast<float>(low);
    if (static_cast<double>(lowest) < low) {
      lowest = std::nextafter(lowest, infinity);
    }
    float highest = static_cast<float>(high);
    if (static_cast<double>(highest) >= high) {
      highest = std::nextafter(highest, -infinity);
    }
    if (lowest > highest) {
      raise<ValueError>("Tensor::uniform", "an f32 range [low, high) must contain a float", "low {} and high {}",
                        low, high);
    }
    for (double& value : values) {
      value = std::clamp(value, static_cast<double>(lowest), static_cast<double>(highest));
    }
  }
  return from_values(shape, values, dtype);
}

void Tensor::check_defined(std::string_view op) const {
  if (!defined()) {
    raise<ValueError>(op, "the tensor must be defined (not default-constructed)", "an undefined tensor");
  }
}

std::int64_t Tensor::size(std::int64_t axis) const {
  return shape_[normalize_axis("Tensor::size", axis, shape_.rank())];
}

double Tensor::flat(std::int64_t index) const {
  check_defined("Tensor::flat");
  if (index < 0 || index >= numel()) {
    raise<ShapeError>("Tensor::flat", fmt::format("a flat index must be in [0, {})", numel()),
                      "index {} for shape {}", index, shape_);
  }
  double value = 0.0;
  dispatch_all(dtype_, [&](auto zero) {
    using T = decltype(zero);
    value = static_cast<double>(data<T>()[index]);
  });
  return value;
}

double Tensor::item() const {
  check_defined("Tensor::item");
  if (numel() != 1) {
    raise<ShapeError>("Tensor::item", "item() needs a tensor with exactly one element",
                      "shape {} ({} elements)", shape_, numel());
  }
  return flat(0);
}

double Tensor::at(std::initializer_list<std::int64_t> index) const {
  return at(std::span<const std::int64_t>(index.begin(), index.size()));
}

double Tensor::at(std::span<const std::int64_t> index) const {
  check_defined("Tensor::at");
  if (static_cast<std::int64_t>(index.size()) != rank()) {
    raise<ShapeError>("Tensor::at", "at() needs one index per axis", "an index of length {} ([{}]) for shape {}",
                      index.size(), fmt::join(index, ", "), shape_);
  }
  const auto strides = contiguous_strides(shape_);
  std::int64_t offset = 0;
  for (std::size_t axis = 0; axis < index.size(); ++axis) {
    const std::int64_t extent = shape_[static_cast<std::int64_t>(axis)];
    const std::int64_t position = index[axis] < 0 ? index[axis] + extent : index[axis];
    if (position < 0 || position >= extent) {
      raise<ShapeError>("Tensor::at", "each index must be in [-extent, extent) of its axis",
                        "index [{}] for shape {} (axis {})", fmt::join(index, ", "), shape_, axis);
    }
    offset += position * strides[axis];
  }
  return flat(offset);
}

std::vector<double> Tensor::to_vector() const {
  check_defined("Tensor::to_vector");
  std::vector<double> values(static_cast<std::size_t>(numel()));
  dispatch_all(dtype_, [&](auto zero) {
    using T = decltype(zero);
    std::transform(data<T>(), data<T>() + numel(), values.begin(), [](T v) { return static_cast<double>(v); });
  });
  return values;
}

Tensor Tensor::clone() const {
  check_defined("Tensor::clone");
  Tensor result = empty(shape_, dtype_);
  std::memcpy(result.raw_data(), raw_data(), static_cast<std::size_t>(numel()) * dtype_size(dtype_));
  return result;
}

Tensor Tensor::to(Dtype dtype) const {
  check_defined("Tensor::to");
  if (dtype == dtype_) {
    return clone();
  }
  Tensor result = empty(shape_, dtype);
  dispatch_all(dtype_, [&](auto source_zero) {
    using Source = decltype(source_zero);
    dispatch_all(dtype, [&](auto target_zero) {
      using Target = decltype(target_zero);
      const Source* source = data<Source>();
      Target* target = result.data<Target>();
      for (std::int64_t i = 0; i < numel(); ++i) {
        target[i] = convert<Target>(static_cast<double>(source[i]));
      }
    });
  });
  return result;
}

Tensor Tensor::reshape(const Shape& shape) const {
  check_defined("Tensor::reshape");
  check_extents("Tensor::reshape", shape);
  if (shape.numel() != numel()) {
    raise<ShapeError>("Tensor::reshape", "the new shape must have the same number of elements",
                      "shape {} ({} elements) to {} ({} elements)", shape_, numel(), shape, shape.numel());
  }
  return Tensor(buffer_, shape, dtype_);
}

std::string Tensor::to_string() const {
  if (!defined()) {
    return "Tensor(undefined)";
  }
  // Nested brackets per axis, like NumPy, with at most `shown` elements of a long axis.
  constexpr std::int64_t shown = 6;
  const std::vector<double> values = to_vector();
  const auto strides = contiguous_strides(shape_);
  std::string text = "Tensor(";
  auto append = [&](auto& self, std::int64_t axis, std::int64_t offset) -> void {
    if (axis == rank()) {
      if (dtype_ == Dtype::boolean) {
        text += values[static_cast<std::size_t>(offset)] != 0.0 ? "true" : "false";
      } else {
        fmt::format_to(std::back_inserter(text), "{:.6g}", values[static_cast<std::size_t>(offset)]);
      }
      return;
    }
    text += '[';
    const std::int64_t extent = shape_[axis];
    for (std::int64_t i = 0; i < extent; ++i) {
      if (extent > shown && i == shown / 2) {
        text += "..., ";
        i = extent - shown / 2;
      }
      self(self, axis + 1, offset + i * strides[static_cast<std::size_t>(axis)]);
      if (i + 1 < extent) {
        text += ", ";
      }
    }
    text += ']';
  };
  append(append, 0, 0);
  fmt::format_to(std::back_inserter(text), ", shape={}, dtype={})", shape_, dtype_);
  return text;
}

}  // namespace tapegrad
