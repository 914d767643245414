#include "relu.hpp"

#include "common.hpp"

namespace tapegrad {

void register_relu_cases(GradcheckRegistry& registry) { (void)registry; }

}  // namespace tapegrad
