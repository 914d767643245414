#include "graph_export.hpp"

#include <iterator>
#include <string_view>

#include <fmt/format.h>

namespace tapegrad {
namespace {

// Escapes text for a double-quoted DOT string, where only the quote and the backslash are special.
std::string escape_dot(std::string_view text) {
  std::string escaped;
  escaped.reserve(text.size());
  for (char c : text) {
    if (c == '"' || c == '\\') {
      escaped.push_back('\\');
    }
    escaped.push_back(c);
  }
  return escaped;
}

struct NodeStyle {
  std::string_view shape;
  std::string_view fill;
};

NodeStyle style_of(const Node& node) {
  if (node.is_leaf) {
    return {"box", "#cfe2f3"};
  }
  if (node.op == "constant") {
    return {"box", "#e6e6e6"};
  }
  if (node.requires_grad) {
    return {"ellipse", "#ffffff"};
  }
  return {"ellipse", "#e6e6e6"};
}

void write_node(std::string& dot, std::int64_t index, const Node& node, const DotOptions& options, bool is_last) {
  std::string label;
  const auto name = options.node_names.find(index);
  if (name != options.node_names.end()) {
    label = escape_dot(name->second) + "\\n";
  }
  label += fmt::format("{}\\n{} {}", escape_dot(node.op), node.value.shape(), node.value.dtype());
  const NodeStyle style = style_of(node);
  fmt::format_to(std::back_inserter(dot), "  n{} [label=\"{}\", shape={}, fillcolor=\"{}\"{}];\n", index, label,
                 style.shape, style.fill, is_last ? ", peripheries=2" : "");
}

void write_edges(std::string& dot, std::int64_t index, const Node& node) {
  const bool label_positions = node.inputs.size() > 1;
  for (std::size_t position = 0; position < node.inputs.size(); ++position) {
    if (label_positions) {
      fmt::format_to(std::back_inserter(dot), "  n{} -> n{} [label=\"{}\"];\n", node.inputs[position], index,
                     position);
    } else {
      fmt::format_to(std::back_inserter(dot), "  n{} -> n{};\n", node.inputs[position], index);
    }
  }
}

}  // namespace

std::string to_dot(const Tape& tape, const DotOptions& options) {
  std::string dot = "digraph tape {\n";
  if (!options.title.empty()) {
    fmt::format_to(std::back_inserter(dot), "  label=\"{}\";\n  labelloc=t;\n", escape_dot(options.title));
  }
  dot += "  node [style=filled, fontname=\"Helvetica\", fontsize=10];\n";
  dot += "  edge [fontname=\"Helvetica\", fontsize=9];\n";
  const std::int64_t count = tape.size();
  for (std::int64_t index = 0; index < count; ++index) {
    write_node(dot, index, tape.node(index), options, index == count - 1);
  }
  for (std::int64_t index = 0; index < count; ++index) {
    write_edges(dot, index, tape.node(index));
  }
  dot += "}\n";
  return dot;
}

}  // namespace tapegrad
