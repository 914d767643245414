#pragma once
// Adam, the first-order optimizer of Kingma and Ba ("Adam: A Method for Stochastic Optimization",
// ICLR 2015, Algorithm 1), updating parameter tensors in place from their gradients.
//
// For each parameter θ with gradient g, step t (counting from 1) computes
//
//     g   ← g + weight_decay·θ                 (L2 penalty, as torch.optim.Adam; skipped when 0)
//     m   ← β₁·m + (1 − β₁)·g
//     v   ← β₂·v + (1 − β₂)·g²
//     m̂   = m / (1 − β₁ᵗ)
//     v̂   = v / (1 − β₂ᵗ)
//     θ   ← θ − lr·m̂ / (√v̂ + ε)
//
// The moments m and v start at zero and are allocated once, in the constructor, with each
// parameter's shape and dtype. A step allocates nothing. Arithmetic on elements runs in the
// parameter's dtype; the bias corrections are computed once per step in double.
//
// Typical use with a tape, where a leaf shares storage with the tensor it was made from:
//
//     tg::Adam adam({w, b}, {.lr = 3e-3});
//     for (...) {
//       tape.clear();
//       tg::Var w_leaf = tape.leaf(w);
//       tg::Var b_leaf = tape.leaf(b);
//       tape.backward(loss_of(w_leaf, b_leaf));
//       adam.step({w_leaf.grad(), b_leaf.grad()});   // updates w and b in place
//     }

#include <cstdint>
#include <initializer_list>
#include <span>
#include <vector>

#include "tensor.hpp"

namespace tapegrad {

struct AdamOptions {
  double lr = 1e-3;     // learning rate (step size α), finite and >= 0
  double beta1 = 0.9;   // decay rate of the first moment, in [0, 1)
  double beta2 = 0.999; // decay rate of the second moment, in [0, 1)
  double eps = 1e-8;    // added to √v̂ in the denominator, finite and >= 0
  double weight_decay = 0.0;  // L2 penalty factor added to the gradient, finite and >= 0
};

class Adam {
 public:
  // Takes handles to the parameters, which share storage with the caller's tensors, so step()
  // updates the caller's tensors. Raises ValueError for an option outside its range or an
  // undefined parameter, and DtypeError for a parameter that is not f32 or f64.
  explicit Adam(std::vector<Tensor> parameters, AdamOptions options = {});

  // Applies one update. gradients[i] is the gradient of the loss with respect to parameters()[i].
  // Raises ValueError when the counts differ or a gradient element is NaN or infinite, ShapeError
  // or DtypeError when a gradient's shape or dtype differs from its parameter's. All checks run
  // before any update, so a rejected step changes neither the parameters nor the moments.
  void step(std::span<const Tensor> gradients);
  void step(std::initializer_list<Tensor> gradients);

  // Sets the learning rate for later steps, as a schedule would. Raises ValueError unless lr is
  // finite and >= 0.
  void set_lr(double lr);

  const AdamOptions& options() const { return options_; }
  const std::vector<Tensor>& parameters() const { return parameters_; }
  // First and second moment estimates m and v of parameter `index`, before bias correction.
  const Tensor& first_moment(std::int64_t index) const;
  const Tensor& second_moment(std::int64_t index) const;
  // Number of steps applied so far (t in Algorithm 1).
  std::int64_t step_count() const { return step_count_; }

 private:
  void check_gradients(std::span<const Tensor> gradients) const;

  std::vector<Tensor> parameters_;
  std::vector<Tensor> first_moments_;
  std::vector<Tensor> second_moments_;
  AdamOptions options_;
  std::int64_t step_count_ = 0;
};

}  // namespace tapegrad
