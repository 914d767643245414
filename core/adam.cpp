#include "adam.hpp"

#include <cmath>
#include <utility>

namespace tapegrad {
namespace {

void check_nonnegative_finite(std::string_view name, double value) {
  if (!std::isfinite(value) || value < 0.0) {
    raise<ValueError>("Adam", fmt::format("{} must be finite and >= 0", name), "{} = {}", name, value);
  }
}

void check_beta(std::string_view name, double value) {
  if (!(value >= 0.0 && value < 1.0)) {
    raise<ValueError>("Adam", fmt::format("{} must be in [0, 1)", name), "{} = {}", name, value);
  }
}

// Flat index of the first NaN or infinite element, or -1 when every element is finite.
template <class T>
std::int64_t first_non_finite(const T* values, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(values[i])) {
      return i;
    }
  }
  return -1;
}

// Scalars shared by every element of one step.
struct StepScalars {
  double lr;
  double beta1;
  double beta2;
  double eps;
  double weight_decay;
  double first_correction;   // 1 − β₁ᵗ
  double second_correction;  // 1 − β₂ᵗ
};

template <class T>
void update_parameter(T* theta, T* m, T* v, const T* g, std::int64_t count, const StepScalars& scalars) {
  const T beta1 = static_cast<T>(scalars.beta1);
  const T beta2 = static_cast<T>(scalars.beta2);
  const T one_minus_beta1 = static_cast<T>(1.0 - scalars.beta1);
  const T one_minus_beta2 = static_cast<T>(1.0 - scalars.beta2);
  const T weight_decay = static_cast<T>(scalars.weight_decay);
  // θ − lr·(m/c₁)/(√(v/c₂) + ε), with the divisions by the corrections c₁ and c₂ hoisted.
  const T step_size = static_cast<T>(scalars.lr / scalars.first_correction);
  const T inverse_sqrt_second_correction = static_cast<T>(1.0 / std::sqrt(scalars.second_correction));
  const T eps = static_cast<T>(scalars.eps);
  for (std::int64_t i = 0; i < count; ++i) {
    const T gradient = g[i] + weight_decay * theta[i];
    m[i] = beta1 * m[i] + one_minus_beta1 * gradient;
    v[i] = beta2 * v[i] + one_minus_beta2 * gradient * gradient;
    theta[i] -= step_size * m[i] / (std::sqrt(v[i]) * inverse_sqrt_second_correction + eps);
  }
}

}  // namespace

Adam::Adam(std::vector<Tensor> parameters, AdamOptions options)
    : parameters_(std::move(parameters)), options_(options) {
  check_nonnegative_finite("lr", options_.lr);
  check_beta("beta1", options_.beta1);
  check_beta("beta2", options_.beta2);
  check_nonnegative_finite("eps", options_.eps);
  check_nonnegative_finite("weight_decay", options_.weight_decay);
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    const Tensor& parameter = parameters_[i];
    if (!parameter.defined()) {
      raise<ValueError>("Adam", "every parameter must be a defined tensor", "an undefined tensor at position {}", i);
    }
    if (!is_floating(parameter.dtype())) {
      raise<DtypeError>("Adam", "every parameter must be f32 or f64", "parameter {} of dtype {} and shape {}", i,
                        parameter.dtype(), parameter.shape());
    }
  }
  first_moments_.reserve(parameters_.size());
  second_moments_.reserve(parameters_.size());
  for (const Tensor& parameter : parameters_) {
    first_moments_.push_back(Tensor::zeros(parameter.shape(), parameter.dtype()));
    second_moments_.push_back(Tensor::zeros(parameter.shape(), parameter.dtype()));
  }
}

void Adam::set_lr(double lr) {
  check_nonnegative_finite("lr", lr);
  options_.lr = lr;
}

const Tensor& Adam::first_moment(std::int64_t index) const {
  if (index < 0 || index >= static_cast<std::int64_t>(parameters_.size())) {
    raise<ValueError>("Adam::first_moment", fmt::format("the index must be in [0, {})", parameters_.size()),
                      "index {}", index);
  }
  return first_moments_[static_cast<std::size_t>(index)];
}

const Tensor& Adam::second_moment(std::int64_t index) const {
  if (index < 0 || index >= static_cast<std::int64_t>(parameters_.size())) {
    raise<ValueError>("Adam::second_moment", fmt::format("the index must be in [0, {})", parameters_.size()),
                      "index {}", index);
  }
  return second_moments_[static_cast<std::size_t>(index)];
}

void Adam::check_gradients(std::span<const Tensor> gradients) const {
  if (gradients.size() != parameters_.size()) {
    raise<ValueError>("Adam::step", "there must be one gradient per parameter", "{} gradients for {} parameters",
                      gradients.size(), parameters_.size());
  }
  for (std::size_t i = 0; i < gradients.size(); ++i) {
    const Tensor& gradient = gradients[i];
    const Tensor& parameter = parameters_[i];
    if (!gradient.defined()) {
      raise<ValueError>("Adam::step", "every gradient must be a defined tensor", "an undefined gradient {}", i);
    }
    if (!(gradient.shape() == parameter.shape())) {
      raise<ShapeError>("Adam::step", "a gradient must have its parameter's shape",
                        "gradient {} of shape {} for a parameter of shape {}", i, gradient.shape(), parameter.shape());
    }
    if (gradient.dtype() != parameter.dtype()) {
      raise<DtypeError>("Adam::step", "a gradient must have its parameter's dtype",
                        "gradient {} of dtype {} for a parameter of dtype {}", i, gradient.dtype(), parameter.dtype());
    }
    const std::int64_t non_finite_index = dispatch_floating(gradient.dtype(), [&](auto zero) {
      using T = decltype(zero);
      return first_non_finite(gradient.data<T>(), gradient.numel());
    });
    if (non_finite_index >= 0) {
      raise<ValueError>("Adam::step", "every gradient element must be finite",
                        "{} at flat index {} of gradient {} (shape {})", gradient.flat(non_finite_index), non_finite_index, i, gradient.shape());
    }
  }
}

void Adam::step(std::span<const Tensor> gradients) {
  check_gradients(gradients);
  ++step_count_;
  const double t = static_cast<double>(step_count_);
  const StepScalars scalars{
      .lr = options_.lr,
      .beta1 = options_.beta1,
      .beta2 = options_.beta2,
      .eps = options_.eps,
      .weight_decay = options_.weight_decay,
      .first_correction = 1.0 - std::pow(options_.beta1, t),
      .second_correction = 1.0 - std::pow(options_.beta2, t),
  };
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    Tensor& parameter = parameters_[i];
    dispatch_floating(parameter.dtype(), [&](auto zero) {
      using T = decltype(zero);
      update_parameter(parameter.data<T>(), first_moments_[i].data<T>(), second_moments_[i].data<T>(),
                       gradients[i].data<T>(), parameter.numel(), scalars);
    });
  }
}

void Adam::step(std::initializer_list<Tensor> gradients) {
  step(std::span<const Tensor>(gradients.begin(), gradients.size()));
}

}  // namespace tapegrad
