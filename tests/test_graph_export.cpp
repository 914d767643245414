// Graph export: the DOT text of a small tape, node styles, names, escaping, and the empty tape.
#include <doctest/doctest.h>

#include <string>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

namespace {

std::size_t count_of(const std::string& text, const std::string& pattern) {
  std::size_t count = 0;
  for (std::size_t at = text.find(pattern); at != std::string::npos; at = text.find(pattern, at + 1)) {
    ++count;
  }
  return count;
}

}  // namespace

TEST_CASE("to_dot writes one node per op and one edge per input") {
  tg::Tape tape;
  const tg::Var x = tape.leaf(tg::Tensor::ones({2, 3}));                       // n0
  const tg::Var c = tape.constant(tg::Tensor::ones({2, 3}));  // n1
  const tg::Var y = tg::exp(x) * c;                                             // n2 exp, n3 mul
  const tg::Var s = tg::sum(y);                                                 // n4 sum
  const std::string dot = tg::to_dot(tape);

  CHECK(dot.starts_with("digraph tape {\n"));
  CHECK(dot.ends_with("}\n"));
  CHECK(dot.find("n0 [label=\"leaf\\n[2, 3] f64\", shape=box, fillcolor=\"#cfe2f3\"]") != std::string::npos);
  CHECK(dot.find("n1 [label=\"constant\\n[2, 3] f64\", shape=box, fillcolor=\"#e6e6e6\"]") != std::string::npos);
  CHECK(dot.find("n2 [label=\"exp\\n[2, 3] f64\", shape=ellipse, fillcolor=\"#ffffff\"]") != std::string::npos);
  CHECK(dot.find("n4 [label=\"sum\\n[] f64\", shape=ellipse, fillcolor=\"#ffffff\", peripheries=2]") !=
        std::string::npos);
  CHECK(count_of(dot, "peripheries=2") == 1);
  CHECK(count_of(dot, "\", shape=") == 5);

  // exp and sum have one input each and get plain edges; mul labels its two arguments.
  CHECK(dot.find("n0 -> n2;") != std::string::npos);
  CHECK(dot.find("n2 -> n3 [label=\"0\"];") != std::string::npos);
  CHECK(dot.find("n1 -> n3 [label=\"1\"];") != std::string::npos);
  CHECK(dot.find("n3 -> n4;") != std::string::npos);
  CHECK(count_of(dot, " -> ") == 4);
  CHECK(s.index() == 4);
}

TEST_CASE("to_dot greys ops that need no gradient") {
  tg::Tape tape;
  const tg::Var c = tape.constant(tg::Tensor::ones({3}, tg::Dtype::f32));
  tg::exp(c);
  const std::string dot = tg::to_dot(tape);
  CHECK(dot.find("n1 [label=\"exp\\n[3] f32\", shape=ellipse, fillcolor=\"#e6e6e6\", peripheries=2]") !=
        std::string::npos);
}

TEST_CASE("to_dot draws names and a title, escaped") {
  tg::Tape tape;
  const tg::Var w = tape.leaf(tg::Tensor::ones({4, 2}));
  const tg::Var y = tg::matmul(w, w, {.transpose_b = true});
  const std::string dot = tg::to_dot(tape, {.title = "step \"one\" \\ two", .node_names = {{w.index(), "W\"1"}}});
  CHECK(dot.find("label=\"step \\\"one\\\" \\\\ two\";") != std::string::npos);
  CHECK(dot.find("n0 [label=\"W\\\"1\\nleaf\\n[4, 2] f64\"") != std::string::npos);
  // matmul(w, w) reads the same node twice: two edges, labelled with the argument positions.
  CHECK(dot.find("n0 -> n1 [label=\"0\"];") != std::string::npos);
  CHECK(dot.find("n0 -> n1 [label=\"1\"];") != std::string::npos);
  CHECK(dot.find("n1 [label=\"matmul\\n[4, 4] f64\"") != std::string::npos);
  CHECK(y.index() == 1);
}

TEST_CASE("to_dot of an empty tape has no nodes") {
  tg::Tape tape;
  tape.leaf(tg::Tensor::ones({1}));
  tape.clear();
  const std::string dot = tg::to_dot(tape);
  CHECK(count_of(dot, "\", shape=") == 0);
  CHECK(count_of(dot, " -> ") == 0);
  CHECK(dot.starts_with("digraph tape {\n"));
  CHECK(dot.ends_with("}\n"));
}
