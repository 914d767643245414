#pragma once
// Selection by a boolean mask (where) and reductions over the entries a mask selects.
//
// Common to every op here:
//   mask:  a Tensor of dtype boolean (DtypeError otherwise), never differentiable. It must
//          broadcast to x's shape by NumPy rules, so a [1, N] row or an [M, 1] column can mask an
//          [M, N] input (ShapeError naming both shapes otherwise). The ops keep a reference to
//          the mask's storage for the VJP, so it must not be changed before backward().
//   dtype: x must be f32 or f64, and the output has x's dtype.
//   axis:  as in reductions.hpp: negative counts from the end, and the all-elements form
//          returns a scalar; keepdim keeps the reduced axis with extent 1.
//   masked entries: the forward pass never reads them, and they get exactly 0 in the backward
//          pass whatever their value, inf and NaN included.
//   empty rows: a row whose mask is all false is a normal event in masked code, so unlike
//          mean and max in reductions.hpp it is no error. sum gives 0, and max and logsumexp
//          give -inf (the identity of each) with a zero gradient. masked_mean raises ValueError.

#include <cstdint>

#include "../core/gradcheck_registry.hpp"

namespace tapegrad {

// Elementwise selection: a where mask is true, b where it is false.
//   value: y = mask ? a : b, with mask, a and b broadcast together (NumPy rules)
//   VJP:   ā = sum_to_shape(mask ? ȳ : 0, a.shape), b̄ = sum_to_shape(mask ? 0 : ȳ, b.shape), where
//          sum_to_shape sums over the axes that broadcasting added or repeated. The unselected
//          side gets exactly 0, even where ȳ is inf or NaN.
//   shape: broadcast of the three shapes. a and b must have the same floating dtype.
Var where(const Tensor& mask, const Var& a, const Var& b);

// Elementwise selection of a where mask is true and the constant b (converted to a's dtype)
// where it is false. The VJP is that of the form above, without b̄.
Var where(const Tensor& mask, const Var& a, double b);

// Sum of the selected entries of x.
//   value: y = Σᵢ mask_i·xᵢ over all elements (a scalar), or y[o, i] = Σₖ over selected k of
//          x[o, k, i] along axis. Sums accumulate in double, as sum does.
//   VJP:   x̄ = ȳ where selected, exactly 0 elsewhere
//   edges: a row with no selected entry gives 0.
Var masked_sum(const Var& x, const Tensor& mask);
Var masked_sum(const Var& x, const Tensor& mask, std::int64_t axis, bool keepdim = false);

// Mean of the selected entries of x.
//   value: y = (masked sum) / c, where c is the number of selected entries of the row (or of x)
//   VJP:   x̄ = ȳ / c where selected, exactly 0 elsewhere
//   edges: a row with no selected entry raises ValueError naming the row's index, because the
//          mean of nothing is undefined.
Var masked_mean(const Var& x, const Tensor& mask);
Var masked_mean(const Var& x, const Tensor& mask, std::int64_t axis, bool keepdim = false);

// Maximum of the selected entries of x.
//   value: y = max over selected entries of the row (or of x)
//   VJP:   x̄ = ȳ / t at the selected entries equal to y and exactly 0 elsewhere, where t is
//          their number: a t-way tie splits the gradient evenly, as max does.
//   edges: a row with no selected entry gives -inf with a zero gradient. A selected NaN makes
//          the row NaN, and the selected NaN entries then share the gradient.
Var masked_max(const Var& x, const Tensor& mask);
Var masked_max(const Var& x, const Tensor& mask, std::int64_t axis, bool keepdim = false);

// log Σ exp over the selected entries of x, computed without overflow.
//   value: y = log(masked_sum(exp(where(mask, x − m, -inf)), mask, axis)) + m, where
//          m = masked_max(x, mask, axis, keepdim=true) is recorded as a constant, so no gradient
//          flows through the shift. An infinite m (an empty row, or a selected ±inf) shifts by 0
//          instead, because x − m would be inf − inf = NaN.
//   VJP:   composed from where, sub, exp, masked_sum, log and add, with no VJP of its own. It
//          equals x̄ = ȳ · softmax of the selected entries of the row, exactly 0 elsewhere.
//   edges: a row with no selected entry gives -inf with a zero gradient. A masked entry, even
//          1000 or inf, never reaches exp, so it can neither overflow the value nor put a NaN
//          into the backward pass. A row whose selected entries are all -inf gives -inf, and its
//          gradient is NaN at those entries, as torch.logsumexp gives for an all -inf row.
// NOTE: anomaly mode (TapeOptions::detect_anomaly) rejects an empty row, because log(0) = -inf
// comes from finite inputs. The -inf fill of where is accepted, since the fill is an argument.
Var masked_logsumexp(const Var& x, const Tensor& mask);
Var masked_logsumexp(const Var& x, const Tensor& mask, std::int64_t axis, bool keepdim = false);

void register_masked_cases(GradcheckRegistry& registry);

}  // namespace tapegrad
