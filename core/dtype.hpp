#pragma once
// Element types of a Tensor and the mapping between them and C++ types.

#include <cstddef>
#include <string_view>
#include <type_traits>

#include <fmt/format.h>

namespace tapegrad {

// Element type of a tensor. Only f32 and f64 carry gradients; boolean is for masks.
enum class Dtype { f32, f64, boolean };

constexpr std::string_view dtype_name(Dtype dtype) {
  switch (dtype) {
    case Dtype::f32: return "f32";
    case Dtype::f64: return "f64";
    case Dtype::boolean: return "boolean";
  }
  return "unknown";
}

constexpr std::size_t dtype_size(Dtype dtype) {
  switch (dtype) {
    case Dtype::f32: return sizeof(float);
    case Dtype::f64: return sizeof(double);
    case Dtype::boolean: return sizeof(bool);
  }
  return 0;
}

constexpr bool is_floating(Dtype dtype) { return dtype == Dtype::f32 || dtype == Dtype::f64; }

// The Dtype that stores elements of C++ type T.
template <class T>
constexpr Dtype dtype_of() {
  if constexpr (std::is_same_v<T, float>) {
    return Dtype::f32;
  } else if constexpr (std::is_same_v<T, double>) {
    return Dtype::f64;
  } else {
    static_assert(std::is_same_v<T, bool>, "tensor elements are float, double or bool");
    return Dtype::boolean;
  }
}

// Calls fn with a value of the C++ element type of a floating dtype: fn(float{}) or fn(double{}).
// Callers check is_floating first, because boolean has no arithmetic kernels.
template <class Function>
decltype(auto) dispatch_floating(Dtype dtype, Function&& fn) {
  if (dtype == Dtype::f32) {
    return fn(float{});
  }
  return fn(double{});
}

}  // namespace tapegrad

template <>
struct fmt::formatter<tapegrad::Dtype> : fmt::formatter<std::string_view> {
  auto format(tapegrad::Dtype dtype, fmt::format_context& context) const {
    return fmt::formatter<std::string_view>::format(tapegrad::dtype_name(dtype), context);
  }
};
