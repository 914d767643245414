#include "matmul.hpp"

#include "common.hpp"

namespace tapegrad {

void register_matmul_cases(GradcheckRegistry& registry) { (void)registry; }

}  // namespace tapegrad
