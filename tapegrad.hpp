#pragma once
// The one header consumers include: #include <tapegrad/tapegrad.hpp>

#include "core/adam.hpp"
#include "core/error.hpp"
#include "core/gradcheck.hpp"
#include "core/gradcheck_registry.hpp"
#include "core/gradcheck_tool.hpp"
#include "core/graph_export.hpp"
#include "core/shape.hpp"
#include "core/tape.hpp"
#include "core/tensor.hpp"
#include "losses/losses.hpp"
#include "ops/ops.hpp"
