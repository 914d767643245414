#pragma once
// Ops that move elements without arithmetic: transpose, reshape, concat, row selection.
//
// All of them take f32 or f64 inputs (DtypeError otherwise) and keep the dtype. Axes and indices
// are std::int64_t, and a negative axis or index counts from the end, as in Python.

#include <cstdint>
#include <initializer_list>
#include <span>

#include "../core/gradcheck_registry.hpp"

namespace tapegrad {

// Swaps the two axes of a matrix.
//   value: y[j, i] = x[i, j]
//   VJP:   x̄ = ȳᵀ
//   shape: x is [R, C] and y is [C, R]. Any other rank raises ShapeError, because it needs the
//          overload that names two axes.
Var transpose(const Var& x);

// Swaps two axes of a tensor of any rank, copying the elements into row-major order.
//   value: y[…, j, …, i, …] = x[…, i, …, j, …], with i on axis0 of x and j on axis1 of x
//   VJP:   x̄ = ȳ with the same two axes swapped back
//   shape: y has x's shape with the extents of axis0 and axis1 exchanged. When both name the
//          same axis, y equals x and shares its storage.
//   errors: ShapeError for an axis outside [-rank, rank).
Var transpose(const Var& x, std::int64_t axis0, std::int64_t axis1);

// Gives the elements of x, in row-major order, a new shape.
//   value: y has x's elements in the same row-major order, and shares x's storage, which is
//          safe because recorded tensors are never written again.
//   VJP:   x̄ = ȳ reshaped to x's shape
//   shape: shape must have x's element count. One extent may be -1, and is then inferred from
//          the element count and the other extents, as NumPy's reshape does.
//   errors: ShapeError for a different element count, for more than one -1, for an extent
//          below -1, and for a -1 beside a zero extent, whose value no element count determines.
Var reshape(const Var& x, const Shape& shape);

// Joins tensors along an existing axis.
//   value: y is xs[0], xs[1], … laid end to end along axis
//   VJP:   x̄ᵢ = the slice of ȳ that xs[i] filled
//   shape: every input has the same rank and dtype and the same extents except along axis,
//          where y's extent is the sum of the inputs' extents. Inputs with extent 0 are allowed.
//   errors: ValueError for no inputs; TapeError for inputs of two tapes; DtypeError for a
//          boolean input or mixed dtypes; ShapeError for a rank-0 input, a different rank or a
//          different extent off the axis. Each message names the offending input's position
//          and shape and the shape of xs[0].
Var concat(std::span<const Var> xs, std::int64_t axis = 0);
Var concat(std::initializer_list<Var> xs, std::int64_t axis = 0);

// Gathers rows (slices along axis 0), which may repeat and come in any order.
//   value: y[i, …] = x[rows[i], …]
//   VJP:   x̄[r, …] = Σ over every i with rows[i] = r of ȳ[i, …], so a repeated row accumulates
//          the cotangents of all its copies and an unselected row gets 0.
//   shape: x has rank ≥ 1 and shape [R, …]; y is [rows.size(), …].
//   edges: an index in [-R, 0) counts from the end. Empty rows give an empty y. The indices are
//          copied onto the recorded node, so the caller's array need not outlive the call.
//   errors: ShapeError for a rank-0 x, or an index outside [-R, R), naming the index, its
//          position in rows and R.
Var select_rows(const Var& x, std::span<const std::int64_t> rows);
Var select_rows(const Var& x, std::initializer_list<std::int64_t> rows);

// Picks one element from each row of a matrix.
//   value: y[i] = x[i, columns[i]]
//   VJP:   x̄[i, columns[i]] = ȳ[i], and 0 elsewhere
//   shape: x is [R, C], columns has R entries, y is [R].
//   edges: an index in [-C, 0) counts from the end. The indices are copied onto the recorded
//          node, so the caller's array need not outlive the call.
//   errors: ShapeError for an x that is not 2-D, a count of columns other than R, or an index
//          outside [-C, C), naming the index, its position in columns and C.
Var select_per_row(const Var& x, std::span<const std::int64_t> columns);
Var select_per_row(const Var& x, std::initializer_list<std::int64_t> columns);

void register_shape_op_cases(GradcheckRegistry& registry);

}  // namespace tapegrad
