#include "gradcheck_registry.hpp"

#include <algorithm>

namespace tapegrad {

void GradcheckRegistry::add(GradcheckCase gradcheck_case) {
  const std::string op_name = "GradcheckRegistry::add";
  if (gradcheck_case.op.empty() || gradcheck_case.name.empty()) {
    raise<ValueError>(op_name, "a case needs an op name and a case name", "op '{}' and case '{}'",
                      gradcheck_case.op, gradcheck_case.name);
  }
  if (!gradcheck_case.function) {
    raise<ValueError>(op_name, "a case needs a function", "case {}/{} without one", gradcheck_case.op,
                      gradcheck_case.name);
  }
  const bool overrides = gradcheck_case.eps || gradcheck_case.atol || gradcheck_case.rtol;
  if (overrides && gradcheck_case.override_reason.empty()) {
    raise<ValueError>(op_name, "a case that overrides the step or a tolerance must state its reason",
                      "case {}/{} with an override and an empty override_reason", gradcheck_case.op,
                      gradcheck_case.name);
  }
  for (const GradcheckCase& existing : cases_) {
    if (existing.op == gradcheck_case.op && existing.name == gradcheck_case.name) {
      raise<ValueError>(op_name, "case names must be unique within an op", "a second case {}/{}",
                        gradcheck_case.op, gradcheck_case.name);
    }
  }
  cases_.push_back(std::move(gradcheck_case));
}

std::vector<std::string> GradcheckRegistry::ops() const {
  std::vector<std::string> names;
  for (const GradcheckCase& gradcheck_case : cases_) {
    if (std::find(names.begin(), names.end(), gradcheck_case.op) == names.end()) {
      names.push_back(gradcheck_case.op);
    }
  }
  return names;
}

std::vector<const GradcheckCase*> GradcheckRegistry::cases_of(std::string_view op) const {
  std::vector<const GradcheckCase*> selected;
  for (const GradcheckCase& gradcheck_case : cases_) {
    if (gradcheck_case.op == op) {
      selected.push_back(&gradcheck_case);
    }
  }
  return selected;
}

}  // namespace tapegrad
