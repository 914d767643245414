#pragma once
// Gradcheck cases: the description of how to check one op at one set of shapes, and the registry
// that collects them. Each op registers its cases in its own source file; programs outside the
// library register theirs the same way.

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tape.hpp"

namespace tapegrad {

// One input of a gradcheck case. Values are drawn uniformly from [low, high) with the case's seed
// unless `values` is given. A non-differentiable input is recorded as a constant.
struct GradcheckInput {
  Shape shape{};
  Dtype dtype = Dtype::f64;
  double low = -1.0;
  double high = 1.0;
  bool differentiable = true;
  std::optional<Tensor> values{};
};

// Builds the output of the function under test from the recorded inputs, in the case's order.
using GradcheckFunction = std::function<Var(std::span<const Var> inputs)>;

// One named case of one op. Overrides of the step or tolerances must carry their reason.
struct GradcheckCase {
  std::string op{};
  std::string name{};
  std::vector<GradcheckInput> inputs{};
  GradcheckFunction function{};
  std::optional<double> eps{};
  std::optional<double> atol{};
  std::optional<double> rtol{};
  std::string override_reason{};  // why the domain, step or tolerance differs from the defaults
  std::uint64_t seed = 0;
};

// An ordered collection of cases. Adding a case whose op and name are both taken raises ValueError,
// and so does an override without a reason.
class GradcheckRegistry {
 public:
  void add(GradcheckCase gradcheck_case);
  const std::vector<GradcheckCase>& cases() const { return cases_; }
  // Names of the ops with at least one case, in registration order, without repeats.
  std::vector<std::string> ops() const;
  // Cases of one op, in registration order.
  std::vector<const GradcheckCase*> cases_of(std::string_view op) const;

 private:
  std::vector<GradcheckCase> cases_;
};

}  // namespace tapegrad
