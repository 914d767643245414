#include "normalize.hpp"

#include "common.hpp"

namespace tapegrad {

void register_normalize_cases(GradcheckRegistry& registry) { (void)registry; }

}  // namespace tapegrad
