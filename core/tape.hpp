#pragma once
// The tape: records operations as they run and computes gradients by a reverse sweep.
//
// Vocabulary, used with these meanings throughout tapegrad:
//
//   leaf           A Var made by Tape::leaf from a tensor of parameters or inputs. The sweep
//                  accumulates a gradient for it, read back with Var::grad().
//   constant       A Var made by Tape::constant: recorded so ops can use it, never differentiated.
//   VJP            Vector-Jacobian product. Each op supplies a function that, given the cotangent
//                  of its output, adds cotangent·∂output/∂input to the gradient of each input.
//   cotangent      The gradient of the final output with respect to an op's output: the vector in
//                  the VJP. For the output of the whole graph it is the seed.
//   input gradient What a VJP adds for one input. It has exactly that input's shape and dtype,
//                  and the sweep checks both after every VJP.
//   seed           The cotangent the sweep starts from: 1 for a scalar output, or a tensor of the
//                  output's shape passed to backward() for any output.
//   stale handle   A Var recorded before the last Tape::clear(). Using one raises TapeError.
//
// Nodes are kept in a vector in recording order. backward() walks it from the output down to the
// first node, without recursion. It runs a node's VJP only when the output depends on the node
// and the node depends on some leaf; it skips every other node. clear() ends a step: the node
// vector and the tape's buffer pool keep their capacity, so the next step reuses them.
//
// One tape per thread. A tape and its Vars are not safe to use from two threads at once, and a
// Var must not outlive its tape.

#include <cstdint>
#include <deque>
#include <initializer_list>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "tensor.hpp"

namespace tapegrad {

class Tape;
class VjpContext;

// A VJP: reads the cotangent, the inputs and whatever the op saved from the context, and adds an
// input gradient for each input that needs one with VjpContext::accumulate.
using VjpFunction = void (*)(VjpContext& context);

// Small non-tensor arguments an op keeps for its VJP, so recording a node allocates nothing.
struct OpAttributes {
  std::int64_t axis = 0;
  bool keepdim = false;
  double scalar = 0.0;
  std::int64_t integer = 0;
};

struct TapeOptions {
  // Check for NaN or infinity produced from finite values (inputs and OpAttributes::scalar): in
  // every op's output in the forward pass, and in every input gradient and every sum of input
  // gradients in the backward pass. A finding raises ValueError naming the op, its node index,
  // its input shapes and the pass.
  bool detect_anomaly = false;
};

// A handle to one node on a tape: (tape, node index, generation). Cheap to copy.
class Var {
 public:
  Var() = default;

  const Tensor& value() const;
  // The accumulated gradient of a leaf: zeros of the leaf's shape when no backward pass reached it.
  Tensor grad() const;
  const Shape& shape() const { return value().shape(); }
  Dtype dtype() const { return value().dtype(); }
  bool requires_grad() const;
  bool is_leaf() const;
  std::string_view op() const;
  Tape& tape() const;
  std::int64_t index() const { return index_; }
  // False for a default-constructed Var.
  bool defined() const { return tape_ != nullptr; }

 private:
  friend class Tape;
  Var(Tape* tape, std::int64_t index, std::uint64_t generation) : tape_(tape), index_(index), generation_(generation) {}
  Tape* tape_ = nullptr;
  std::int64_t index_ = -1;
  std::uint64_t generation_ = 0;
};

// A recorded operation.
struct Node {
  std::string_view op;  // a name with static storage duration, such as "matmul"
  std::int64_t index = 0;  // position on the tape
  Tensor value;
  Tensor grad;                              // accumulated cotangent, undefined until the sweep reaches it
  std::vector<std::int64_t> inputs;         // node indices, in the op's argument order
  std::vector<Tensor> saved;                // tensors the VJP needs beyond the inputs and the output
  OpAttributes attributes;
  VjpFunction vjp = nullptr;
  bool requires_grad = false;  // a leaf, or an op with an input that requires a gradient
  bool is_leaf = false;
};

class Tape {
 public:
  explicit Tape(TapeOptions options = {});
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;
  ~Tape();

  // Records value as a leaf that requires a gradient. Its dtype must be f32 or f64.
  Var leaf(const Tensor& value);
  // Records value as a constant: usable by ops, never differentiated.
  Var constant(const Tensor& value);

  // Runs the reverse sweep from a scalar output with seed 1.
  void backward(const Var& output);
  // Runs the reverse sweep from output with an explicit seed of the output's shape and dtype.
  // Gradients accumulate across calls until zero_grad() or clear(). When a VJP raises, every
  // leaf gradient is left as it was before the call. An undefined seed raises ValueError, and a
  // seed of another shape or dtype raises ShapeError or DtypeError.
  void backward(const Var& output, const Tensor& seed);

  // Sets every leaf's gradient back to zero, keeping the recorded nodes.
  void zero_grad();
  // Ends a step: drops every node, makes existing Vars stale and keeps buffers for reuse.
  void clear();

  // Number of recorded nodes.
  std::int64_t size() const { return node_count_; }
  const Node& node(std::int64_t index) const;
  const TapeOptions& options() const { return options_; }

  // Uninitialized storage from the tape's pool, for op outputs and input gradients.
  Tensor allocate(const Shape& shape, Dtype dtype);
  BufferPool& pool() { return *pool_; }

  // Records an op: value is its output, inputs its Var arguments in order, vjp its VJP (nullptr
  // for an op that is not differentiable), saved and attributes whatever the VJP reads later.
  // Raises TapeError when an input is stale or belongs to another tape.
  Var record(std::string_view op, Tensor value, std::span<const Var> inputs, VjpFunction vjp,
             std::span<const Tensor> saved = {}, OpAttributes attributes = {});
  Var record(std::string_view op, Tensor value, std::initializer_list<Var> inputs, VjpFunction vjp,
             std::initializer_list<Tensor> saved = {}, OpAttributes attributes = {});

  // Raises TapeError naming op unless var is a live handle of this tape.
  void check_handle(std::string_view op, const Var& var) const;

 private:
  friend class Var;
  friend class VjpContext;
  Node& push_node(std::string_view op, Tensor value);
  void run_sweep(std::int64_t output_index);
  void accumulate(Node& node, Tensor input_gradient);
  void check_anomaly_forward(const Node& node) const;

  TapeOptions options_;
  std::shared_ptr<BufferPool> pool_;
  // nodes_[0, node_count_) are live and the rest keep their capacity for reuse. A deque, because
  // recording must not move existing nodes: Var::value() returns a reference into one.
  std::deque<Node> nodes_;
  std::int64_t node_count_ = 0;
  std::uint64_t generation_ = 1;  // incremented by clear(), so handles from before it are stale
  std::vector<char> reached_;     // per node: the sweep's output depends on it
  std::vector<Tensor> previous_grads_;  // leaf gradients from earlier sweeps, set aside during one
};

// The part of a node that its VJP reads and writes during the sweep.
class VjpContext {
 public:
  std::string_view op() const { return node_.op; }
  // The gradient of the sweep's output with respect to this op's output.
  const Tensor& cotangent() const { return node_.grad; }
  const Tensor& output() const { return node_.value; }
  std::int64_t input_count() const { return static_cast<std::int64_t>(node_.inputs.size()); }
  const Tensor& input(std::int64_t position) const;
  bool needs_grad(std::int64_t position) const;
  const Tensor& saved(std::int64_t position) const;
  const OpAttributes& attributes() const { return node_.attributes; }
  // Uninitialized storage from the tape's pool.
  Tensor allocate(const Shape& shape, Dtype dtype) const { return tape_.allocate(shape, dtype); }
  // Adds input_gradient to the gradient of input `position`. Raises ShapeError or DtypeError naming
  // the op when input_gradient does not have exactly that input's shape and dtype. Pass a tensor
  // the VJP made (a temporary, or std::move) so the tape can keep its buffer instead of copying.
  void accumulate(std::int64_t position, Tensor input_gradient);

 private:
  friend class Tape;
  VjpContext(Tape& tape, Node& node) : tape_(tape), node_(node) {}
  Tape& tape_;
  Node& node_;
};

// Raises TapeError naming op unless all Vars are live handles of one tape, and returns that tape.
Tape& common_tape(std::string_view op, std::span<const Var> vars);
Tape& common_tape(std::string_view op, std::initializer_list<Var> vars);

}  // namespace tapegrad
