#pragma once
// Export of a recorded tape as a Graphviz graph in the DOT language, for looking at what one
// training step records.

#include <cstdint>
#include <string>
#include <unordered_map>

#include "tape.hpp"

namespace tapegrad {

struct DotOptions {
  // Graph title, drawn above the graph. Empty draws none.
  std::string title{};
  // Names drawn above a node's op, keyed by node index (Var::index()), such as "w1" for a leaf.
  std::unordered_map<std::int64_t, std::string> node_names{};
};

// Writes the live nodes of tape as a DOT digraph. Each recorded op is one node, labelled with its
// op name, output shape and dtype, and its name from options if it has one. Each input of an op
// is one edge into it, labelled with the argument position when the op has several inputs.
// Leaves are blue boxes, constants grey boxes, ops that need a gradient white ellipses and ops
// that need none grey ellipses. The last recorded node, usually the loss, has a double border.
// Node ids are n<index>, so they follow recording order. An empty tape gives an empty digraph.
std::string to_dot(const Tape& tape, const DotOptions& options = {});

}  // namespace tapegrad
