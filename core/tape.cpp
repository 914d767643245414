#include "tape.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace tapegrad {
namespace {

bool all_finite(const Tensor& tensor) {
  if (!is_floating(tensor.dtype())) {
    return true;
  }
  return dispatch_floating(tensor.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* values = tensor.data<T>();
    return std::all_of(values, values + tensor.numel(), [](T v) { return std::isfinite(v); });
  });
}

void add_into(Tensor& target, const Tensor& addend) {
  dispatch_floating(target.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* out = target.data<T>();
    const T* in = addend.data<T>();
    const std::int64_t count = target.numel();
    for (std::int64_t i = 0; i < count; ++i) {
      out[i] += in[i];
    }
  });
}

}  // namespace

// ---- Var -------------------------------------------------------------------------------------

const Tensor& Var::value() const {
  tape().check_handle("Var::value", *this);
  return tape_->nodes_[static_cast<std::size_t>(index_)].value;
}

Tensor Var::grad() const {
  tape().check_handle("Var::grad", *this);
  const Node& node = tape_->nodes_[static_cast<std::size_t>(index_)];
  if (!node.is_leaf) {
    raise<TapeError>("Var::grad", "gradients are kept for leaves only (made with Tape::leaf)",
                     "a Var recorded by op {} (node {})", node.op, index_);
  }
  if (!node.grad.defined()) {
    return Tensor::zeros(node.value.shape(), node.value.dtype());
  }
  return node.grad;
}

bool Var::requires_grad() const {
  tape().check_handle("Var::requires_grad", *this);
  return tape_->nodes_[static_cast<std::size_t>(index_)].requires_grad;
}

bool Var::is_leaf() const {
  tape().check_handle("Var::is_leaf", *this);
  return tape_->nodes_[static_cast<std::size_t>(index_)].is_leaf;
}

std::string_view Var::op() const {
  tape().check_handle("Var::op", *this);
  return tape_->nodes_[static_cast<std::size_t>(index_)].op;
}

Tape& Var::tape() const {
  if (tape_ == nullptr) {
    raise<TapeError>("Var", "a Var must come from a tape (leaf, constant or an op)", "a default-constructed Var");
  }
  return *tape_;
}

// ---- Tape: recording -------------------------------------------------------------------------

Tape::Tape(TapeOptions options) : options_(options), pool_(std::make_shared<BufferPool>()) {}

Tape::~Tape() {
  // Nodes release their tensors into the pool before the pool itself goes.
  nodes_.clear();
}

void Tape::check_handle(std::string_view op, const Var& var) const {
  if (var.tape_ == nullptr) {
    raise<TapeError>(op, "every Var must come from a tape (leaf, constant or an op)", "a default-constructed Var");
  }
  if (var.tape_ != this) {
    raise<TapeError>(op, "all Vars of one op must be on the same tape",
                     "a Var (node {}) of another tape", var.index_);
  }
  if (var.generation_ != generation_ || var.index_ >= node_count_) {
    raise<TapeError>(op, "a Var is stale after Tape::clear() and must be recorded again",
                     "a stale handle (node {} from before the last clear)", var.index_);
  }
}

Tape& common_tape(std::string_view op, std::span<const Var> vars) {
  if (vars.empty()) {
    raise<TapeError>(op, "an op needs at least one Var", "no Vars");
  }
  if (!vars.front().defined()) {
    raise<TapeError>(op, "every Var must come from a tape (leaf, constant or an op)", "a default-constructed Var");
  }
  Tape& tape = vars.front().tape();
  for (std::size_t position = 0; position < vars.size(); ++position) {
    const Var& var = vars[position];
    if (var.defined() && &var.tape() != &tape) {
      raise<TapeError>(op, "all Vars of one op must be on the same tape",
                       "Vars of two different tapes: input 0 is node {} of one tape, input {} is node {} of another",
                       vars.front().index(), position, var.index());
    }
    tape.check_handle(op, var);
  }
  return tape;
}

Tape& common_tape(std::string_view op, std::initializer_list<Var> vars) {
  return common_tape(op, std::span<const Var>(vars.begin(), vars.size()));
}

Node& Tape::push_node(std::string_view op, Tensor value) {
  if (node_count_ == static_cast<std::int64_t>(nodes_.size())) {
    nodes_.emplace_back();
  }
  Node& node = nodes_[static_cast<std::size_t>(node_count_)];
  node.index = node_count_++;
  node.op = op;
  node.value = std::move(value);
  node.grad = Tensor();
  node.inputs.clear();
  node.saved.clear();
  node.attributes = {};
  node.vjp = nullptr;
  node.requires_grad = false;
  node.is_leaf = false;
  return node;
}

Var Tape::leaf(const Tensor& value) {
  if (!value.defined()) {
    raise<ValueError>("Tape::leaf", "a leaf needs a defined tensor", "an undefined tensor");
  }
  if (!is_floating(value.dtype())) {
    raise<DtypeError>("Tape::leaf", "a leaf must be f32 or f64 to carry a gradient", "dtype {} with shape {}",
                      value.dtype(), value.shape());
  }
  Node& node = push_node("leaf", value);
  node.requires_grad = true;
  node.is_leaf = true;
  return Var(this, node_count_ - 1, generation_);
}

Var Tape::constant(const Tensor& value) {
  if (!value.defined()) {
    raise<ValueError>("Tape::constant", "a constant needs a defined tensor", "an undefined tensor");
  }
  push_node("constant", value);
  return Var(this, node_count_ - 1, generation_);
}

Tensor Tape::allocate(const Shape& shape, Dtype dtype) { return Tensor::empty(shape, dtype, pool_.get()); }

Var Tape::record(std::string_view op, Tensor value, std::span<const Var> inputs, VjpFunction vjp,
                 std::span<const Tensor> saved, OpAttributes attributes) {
  for (const Var& input : inputs) {
    check_handle(op, input);
  }
  const bool requires_grad = std::any_of(inputs.begin(), inputs.end(), [&](const Var& input) {
    return nodes_[static_cast<std::size_t>(input.index_)].requires_grad;
  });
  // Push after the checks, so that a rejected op leaves the tape as it was.
  Node& node = push_node(op, std::move(value));
  for (const Var& input : inputs) {
    node.inputs.push_back(input.index_);
  }
  node.saved.assign(saved.begin(), saved.end());
  node.attributes = attributes;
  node.vjp = vjp;
  node.requires_grad = requires_grad;
  if (options_.detect_anomaly) {
    try {
      check_anomaly_forward(node);
    } catch (...) {
      --node_count_;
      throw;
    }
  }
  return Var(this, node_count_ - 1, generation_);
}

Var Tape::record(std::string_view op, Tensor value, std::initializer_list<Var> inputs, VjpFunction vjp,
                 std::initializer_list<Tensor> saved, OpAttributes attributes) {
  return record(op, std::move(value), std::span<const Var>(inputs.begin(), inputs.size()), vjp,
                std::span<const Tensor>(saved.begin(), saved.size()), attributes);
}

const Node& Tape::node(std::int64_t index) const {
  if (index < 0 || index >= node_count_) {
    raise<TapeError>("Tape::node", fmt::format("a node index must be in [0, {})", node_count_), "index {}", index);
  }
  return nodes_[static_cast<std::size_t>(index)];
}

static std::string describe_input_shapes(const Tape& tape, const Node& node) {
  std::string shapes;
  for (std::int64_t input : node.inputs) {
    if (!shapes.empty()) {
      shapes += ", ";
    }
    shapes += to_string(tape.node(input).value.shape());
  }
  return shapes;
}

void Tape::check_anomaly_forward(const Node& node) const {
  // A scalar argument counts as an input: where(mask, x, -inf) fills with -inf on purpose.
  const bool inputs_finite = std::isfinite(node.attributes.scalar) &&
                             std::all_of(node.inputs.begin(), node.inputs.end(), [&](std::int64_t input) {
                               return all_finite(nodes_[static_cast<std::size_t>(input)].value);
                             });
  if (inputs_finite && !all_finite(node.value)) {
    raise<ValueError>(node.op, "anomaly mode: a forward output must be finite when its inputs are",
                      "NaN or infinity in the output of node {} (forward pass, input shapes {})", node_count_ - 1,
                      describe_input_shapes(*this, node));
  }
}

// ---- Tape: reverse sweep ---------------------------------------------------------------------

void Tape::backward(const Var& output) {
  check_handle("Tape::backward", output);
  const Tensor& value = output.value();
  if (value.numel() != 1) {
    raise<TapeError>("Tape::backward", "backward() without a seed needs a scalar output; pass a seed of the output's shape",
                     "an output of shape {}", value.shape());
  }
  if (!is_floating(value.dtype())) {
    raise<DtypeError>("Tape::backward", "the output must be f32 or f64", "dtype {}", value.dtype());
  }
  Tensor seed = allocate(value.shape(), value.dtype());
  dispatch_floating(value.dtype(), [&](auto zero) { *seed.data<decltype(zero)>() = 1; });
  backward(output, std::move(seed));
}

void Tape::backward(const Var& output, const Tensor& seed) {
  check_handle("Tape::backward", output);
  Node& node = nodes_[static_cast<std::size_t>(output.index_)];
  if (!seed.defined()) {
    raise<ValueError>("Tape::backward", "the seed must be a defined tensor of the output's shape and dtype",
                      "an undefined seed for an output of shape {} and dtype {}", node.value.shape(),
                      node.value.dtype());
  }

  if (seed.shape() != node.value.shape()) {
    raise<ShapeError>("Tape::backward", "the seed must have the output's shape and dtype",
                      "a seed of shape {} and dtype {} for an output of shape {} and dtype {}", seed.shape(),
                      seed.dtype(), node.value.shape(), node.value.dtype());
  }

  if (seed.dtype() != node.value.dtype()) {
    raise<DtypeError>("Tape::backward", "the seed must have the output's shape and dtype",
                      "a seed of shape {} and dtype {} for an output of shape {} and dtype {}", seed.shape(),
                      seed.dtype(), node.value.shape(), node.value.dtype());
  }
  if (!is_floating(node.value.dtype())) {
    raise<DtypeError>("Tape::backward", "the output must be f32 or f64", "dtype {}", node.value.dtype());
  }
  if (!node.requires_grad) {
    raise<TapeError>("Tape::backward", "the output must depend on at least one leaf",
                     "output node {} (op {}) that depends on no leaf", output.index_, node.op);
  }
  // The sweep writes into fresh gradients and adds the earlier ones only when it has succeeded,
  // so a VJP that raises leaves every leaf gradient as it was before this call.
  previous_grads_.assign(static_cast<std::size_t>(node_count_), Tensor());
  for (std::int64_t i = 0; i < node_count_; ++i) {
    previous_grads_[static_cast<std::size_t>(i)] = std::move(nodes_[static_cast<std::size_t>(i)].grad);
    nodes_[static_cast<std::size_t>(i)].grad = Tensor();
  }
  try {
    accumulate(node, Tensor(seed));
    run_sweep(output.index_);
  } catch (...) {
    for (std::int64_t i = 0; i < node_count_; ++i) {
      nodes_[static_cast<std::size_t>(i)].grad = std::move(previous_grads_[static_cast<std::size_t>(i)]);
    }
    throw;
  }
  for (std::int64_t i = 0; i < node_count_; ++i) {
    Node& leaf = nodes_[static_cast<std::size_t>(i)];
    Tensor& previous = previous_grads_[static_cast<std::size_t>(i)];
    if (!leaf.is_leaf) {
      leaf.grad = Tensor();
    } else if (previous.defined()) {
      accumulate(leaf, std::move(previous));
    }
    previous = Tensor();
  }
}

void Tape::run_sweep(std::int64_t output_index) {
  reached_.assign(static_cast<std::size_t>(node_count_), 0);
  reached_[static_cast<std::size_t>(output_index)] = 1;
  for (std::int64_t index = output_index; index >= 0; --index) {
    Node& node = nodes_[static_cast<std::size_t>(index)];
    if (!reached_[static_cast<std::size_t>(index)] || !node.requires_grad || node.is_leaf || !node.grad.defined()) {
      continue;
    }
    if (node.vjp == nullptr) {
      raise<TapeError>(node.op, "an op on the path from a leaf to the output needs a VJP",
                       "node {} with no VJP", index);
    }
    VjpContext context(*this, node);
    node.vjp(context);
    for (std::int64_t input : node.inputs) {
      reached_[static_cast<std::size_t>(input)] = 1;
    }
    // The cotangent is not needed again, so its buffer goes back to the pool now.
    node.grad = Tensor();
  }
}

void Tape::accumulate(Node& node, Tensor input_gradient) {
  if (!node.grad.defined()) {
    // Take the buffer when this parameter holds the only reference (the caller passed a temporary
    // or moved), and copy otherwise, because later accumulation writes into the gradient in place.
    if (input_gradient.use_count() == 1) {
      node.grad = input_gradient;
    } else {
      node.grad = allocate(input_gradient.shape(), input_gradient.dtype());
      std::memcpy(node.grad.raw_data(), input_gradient.raw_data(),
                  static_cast<std::size_t>(input_gradient.numel()) * dtype_size(input_gradient.dtype()));
    }
  } else {
    add_into(node.grad, input_gradient);
  }
}

void Tape::zero_grad() {
  for (std::int64_t i = 0; i < node_count_; ++i) {
    nodes_[static_cast<std::size_t>(i)].grad = Tensor();
  }
}

void Tape::clear() {
  for (std::int64_t i = 0; i < node_count_; ++i) {
    Node& node = nodes_[static_cast<std::size_t>(i)];
    node.value = Tensor();
    node.grad = Tensor();
    node.saved.clear();
  }
  node_count_ = 0;
  ++generation_;
}

// ---- VjpContext ------------------------------------------------------------------------------

const Tensor& VjpContext::input(std::int64_t position) const {
  return tape_.nodes_[static_cast<std::size_t>(node_.inputs.at(static_cast<std::size_t>(position)))].value;
}

bool VjpContext::needs_grad(std::int64_t position) const {
  return tape_.nodes_[static_cast<std::size_t>(node_.inputs.at(static_cast<std::size_t>(position)))].requires_grad;
}

const Tensor& VjpContext::saved(std::int64_t position) const {
  return node_.saved.at(static_cast<std::size_t>(position));
}

void VjpContext::accumulate(std::int64_t position, Tensor input_gradient) {
  if (position < 0 || position >= input_count()) {
    raise<TapeError>(node_.op, fmt::format("a VJP input position must be in [0, {})", input_count()),
                     "position {}", position);
  }
  Node& input_node = tape_.nodes_[static_cast<std::size_t>(node_.inputs[static_cast<std::size_t>(position)])];
  if (!input_node.requires_grad) {
    return;
  }
  if (!input_gradient.defined() || input_gradient.shape() != input_node.value.shape()) {
    raise<ShapeError>(node_.op, "a VJP must return an input gradient with the input's shape",
                      "a gradient of shape {} for input {} of shape {}",
                      input_gradient.defined() ? to_string(input_gradient.shape()) : "undefined", position,
                      input_node.value.shape());
  }
  if (input_gradient.dtype() != input_node.value.dtype()) {
    raise<DtypeError>(node_.op, "a VJP must return an input gradient with the input's dtype",
                      "a gradient of dtype {} for input {} of dtype {}", input_gradient.dtype(), position,
                      input_node.value.dtype());
  }
  if (tape_.options_.detect_anomaly && all_finite(node_.grad) && !all_finite(input_gradient)) {
    raise<ValueError>(node_.op, "anomaly mode: an input gradient must be finite when the cotangent is",
                      "NaN or infinity in the gradient of input {} of node {} (backward pass, input shapes {})",
                      position, node_.index, describe_input_shapes(tape_, node_));
  }
  // Two finite input gradients can overflow when they add up in a node used by several ops.
  const bool sum_of_finite_terms = tape_.options_.detect_anomaly && input_node.grad.defined() &&
                                   all_finite(input_node.grad) && all_finite(input_gradient);
  tape_.accumulate(input_node, std::move(input_gradient));
  if (sum_of_finite_terms && !all_finite(input_node.grad)) {
    raise<ValueError>(node_.op, "anomaly mode: an accumulated gradient must be finite when its terms are",
                      "NaN or infinity after adding the gradient of input {} of node {} to the gradient of node {} "
                      "(backward pass, input shapes {})",
                      position, node_.index, input_node.index, describe_input_shapes(tape_, node_));
  }
}

}  // namespace tapegrad
