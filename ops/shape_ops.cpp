#include "shape_ops.hpp"

#include <algorithm>
#include <cstring>

#include "common.hpp"

namespace tapegrad {
namespace {

// Maps an axis argument of an op into [0, rank), or raises ShapeError naming the argument, its
// value and the shape it indexes.
std::int64_t checked_axis(std::string_view op, std::string_view argument, std::int64_t axis, const Shape& shape) {
  const std::int64_t rank = shape.rank();
  if (axis < -rank || axis >= rank) {
    raise<ShapeError>(op, fmt::format("{} must be in [{}, {}) for a tensor of rank {}", argument, -rank, rank, rank),
                      "{} = {} for shape {}", argument, axis, shape);
  }
  return axis < 0 ? axis + rank : axis;
}

// Product of the extents on axes [begin, end).
std::int64_t extent_product(const Shape& shape, std::int64_t begin, std::int64_t end) {
  std::int64_t product = 1;
  for (std::int64_t axis = begin; axis < end; ++axis) {
    product *= shape[axis];
  }
  return product;
}

std::size_t element_bytes(std::int64_t count, Dtype dtype) { return static_cast<std::size_t>(count) * dtype_size(dtype); }

// ---- transpose -------------------------------------------------------------------------------

// Writes into `out` the elements of `in` (shape `in_shape`) with axes first < second swapped.
// The shape is read as [outer, P, middle, Q, inner], with P and Q the swapped extents, so the
// output is [outer, Q, middle, P, inner]. The (P, Q) plane is walked in square tiles, so both
// the reads and the writes of a large matrix stay within a few cache lines per tile row.
template <class T>
void swap_axes(const T* in, const Shape& in_shape, std::int64_t first, std::int64_t second, T* out) {
  const std::int64_t outer = extent_product(in_shape, 0, first);
  const std::int64_t p_extent = in_shape[first];
  const std::int64_t middle = extent_product(in_shape, first + 1, second);
  const std::int64_t q_extent = in_shape[second];
  const std::int64_t inner = extent_product(in_shape, second + 1, in_shape.rank());
  // Input strides of the axes P and Q, and output strides of the axes Q and P, in elements.
  const std::int64_t in_q_stride = inner;
  const std::int64_t in_p_stride = middle * q_extent * inner;
  const std::int64_t out_p_stride = inner;
  const std::int64_t out_q_stride = middle * p_extent * inner;
  const std::int64_t block = outer == 0 ? 0 : p_extent * middle * q_extent * inner;
  constexpr std::int64_t tile = 32;

  for (std::int64_t o = 0; o < outer; ++o) {
    const T* in_block = in + o * block;
    T* out_block = out + o * block;
    for (std::int64_t m = 0; m < middle; ++m) {
      const T* in_plane = in_block + m * q_extent * inner;
      T* out_plane = out_block + m * p_extent * inner;
      for (std::int64_t q_start = 0; q_start < q_extent; q_start += tile) {
        const std::int64_t q_end = std::min(q_start + tile, q_extent);
        for (std::int64_t p_start = 0; p_start < p_extent; p_start += tile) {
          const std::int64_t p_end = std::min(p_start + tile, p_extent);
          for (std::int64_t q = q_start; q < q_end; ++q) {
            for (std::int64_t p = p_start; p < p_end; ++p) {
              const T* source = in_plane + p * in_p_stride + q * in_q_stride;
              T* target = out_plane + q * out_q_stride + p * out_p_stride;
              for (std::int64_t t = 0; t < inner; ++t) {
                target[t] = source[t];
              }
            }
          }
        }
      }
    }
  }
}

Shape swapped_shape(const Shape& shape, std::int64_t first, std::int64_t second) {
  Shape result = shape;
  std::swap(result[first], result[second]);
  return result;
}

// The VJP of a transpose: the cotangent with the same two axes swapped back, which are kept in
// OpAttributes::axis (the smaller) and OpAttributes::integer (the larger).
void transpose_vjp(VjpContext& context) {
  const Tensor& cotangent = context.cotangent();
  const std::int64_t first = context.attributes().axis;
  const std::int64_t second = context.attributes().integer;
  Tensor x_grad = context.allocate(context.input(0).shape(), cotangent.dtype());
  dispatch_floating(cotangent.dtype(), [&](auto zero) {
    using T = decltype(zero);
    swap_axes(cotangent.data<T>(), cotangent.shape(), first, second, x_grad.data<T>());
  });
  context.accumulate(0, std::move(x_grad));
}

// The VJP of an op whose output is its input under another shape: transpose of an axis with
// itself, and reshape.
void same_elements_vjp(VjpContext& context) {
  // The reshaped cotangent shares storage with the node's cotangent, so accumulate copies it
  // rather than taking its buffer.
  context.accumulate(0, context.cotangent().reshape(context.input(0).shape()));
}

Var record_transpose(std::string_view op, const Var& x, std::int64_t axis0, std::int64_t axis1) {
  Tape& tape = common_tape(op, {x});
  const Tensor& value = x.value();
  detail::check_floating(op, "x", value);
  const std::int64_t first_axis = checked_axis(op, "axis0", axis0, value.shape());
  const std::int64_t second_axis = checked_axis(op, "axis1", axis1, value.shape());
  if (first_axis == second_axis) {
    return tape.record(op, value.reshape(value.shape()), {x}, same_elements_vjp);
  }
  const std::int64_t first = std::min(first_axis, second_axis);
  const std::int64_t second = std::max(first_axis, second_axis);
  Tensor y = tape.allocate(swapped_shape(value.shape(), first, second), value.dtype());
  dispatch_floating(value.dtype(), [&](auto zero) {
    using T = decltype(zero);
    swap_axes(value.data<T>(), value.shape(), first, second, y.data<T>());
  });
  return tape.record(op, std::move(y), {x}, transpose_vjp, {}, {.axis = first, .integer = second});
}

// ---- reshape ---------------------------------------------------------------------------------

// Returns `requested` with a -1 replaced by the extent that gives `numel` elements, after
// checking it as NumPy's reshape does.
Shape resolve_shape(const Shape& from, const Shape& requested) {
  std::int64_t inferred_axis = -1;
  std::int64_t known_product = 1;
  for (std::int64_t axis = 0; axis < requested.rank(); ++axis) {
    const std::int64_t extent = requested[axis];
    if (extent == -1) {
      if (inferred_axis >= 0) {
        raise<ShapeError>("reshape", "at most one extent may be -1 (inferred)", "shape {} with -1 at axes {} and {}",
                          requested, inferred_axis, axis);
      }
      inferred_axis = axis;
    } else if (extent < 0) {
      raise<ShapeError>("reshape", "every extent must be >= 0, or -1 to infer it",
                        "shape {} with extent {} at axis {}", requested, extent, axis);
    } else if (__builtin_mul_overflow(known_product, extent, &known_product) &&
               std::find(requested.begin(), requested.end(), 0) == requested.end()) {
      // Without this check the count wraps around, and a shape with a zero extent has none to check.
      raise<ShapeError>("reshape", "the element count of a shape must fit in int64", "shape {}", requested);
    }
  }
  const std::int64_t numel = from.numel();
  Shape resolved = requested;
  if (inferred_axis >= 0) {
    if (known_product == 0 || numel % known_product != 0) {
      raise<ShapeError>("reshape",
                        "an extent of -1 needs the other extents to have a non-zero product that divides the "
                        "element count",
                        "x {} ({} elements) to {}", from, numel, requested);
    }
    resolved[inferred_axis] = numel / known_product;
  }
  if (resolved.numel() != numel) {
    raise<ShapeError>("reshape", "the new shape must have the same number of elements",
                      "x {} ({} elements) to {} ({} elements)", from, numel, requested, resolved.numel());
  }
  return resolved;
}

// ---- concat ----------------------------------------------------------------------------------

// Checks the inputs of concat against xs[0] and returns the output shape.
Shape concat_shape(std::span<const Var> xs, std::int64_t axis) {
  const Tensor& front = xs[0].value();
  for (std::size_t position = 0; position < xs.size(); ++position) {
    detail::check_floating("concat", fmt::format("xs[{}]", position), xs[position].value());
  }
  if (front.rank() == 0) {
    raise<ShapeError>("concat", "inputs must have rank >= 1 to be joined along an axis", "xs[0] of shape {}",
                      front.shape());
  }
  const std::int64_t joined_axis = checked_axis("concat", "axis", axis, front.shape());
  Shape result = front.shape();
  result[joined_axis] = 0;
  for (std::size_t position = 0; position < xs.size(); ++position) {
    const Tensor& x = xs[position].value();
    if (x.dtype() != front.dtype()) {
      raise<DtypeError>("concat", "every input must have the dtype of xs[0]", "xs[{}] {} {} and xs[0] {} {}",
                        position, x.dtype(), x.shape(), front.dtype(), front.shape());
    }
    if (x.rank() != front.rank()) {
      raise<ShapeError>("concat", "every input must have the rank of xs[0]", "xs[{}] {} (rank {}) and xs[0] {} (rank {})",
                        position, x.shape(), x.rank(), front.shape(), front.rank());
    }
    for (std::int64_t other = 0; other < front.rank(); ++other) {
      if (other != joined_axis && x.shape()[other] != front.shape()[other]) {
        raise<ShapeError>("concat",
                          fmt::format("every input must have the extents of xs[0] on all axes but the joined axis {}",
                                      joined_axis),
                          "xs[{}] {} and xs[0] {} (axis {} differs)", position, x.shape(), front.shape(), other);
      }
    }
    result[joined_axis] += x.shape()[joined_axis];
  }
  return result;
}

// Calls copy_run(joined_start, part_start, run) for every contiguous run that one input of concat
// (the part) shares with the output (the joined tensor), with element offsets into each. The
// joined tensor is read as [outer, joined extent · inner], and the part fills `run` = its extent ·
// inner elements of every outer row, starting `axis_offset` · inner elements into the row.
template <class CopyRun>
void for_each_concat_run(const Shape& joined_shape, std::int64_t axis, std::int64_t axis_offset,
                         std::int64_t part_extent, CopyRun&& copy_run) {
  const std::int64_t outer = extent_product(joined_shape, 0, axis);
  const std::int64_t inner = extent_product(joined_shape, axis + 1, joined_shape.rank());
  const std::int64_t joined_row = joined_shape[axis] * inner;
  const std::int64_t run = part_extent * inner;
  if (run == 0) {
    return;
  }
  for (std::int64_t o = 0; o < outer; ++o) {
    copy_run(o * joined_row + axis_offset * inner, o * run, run);
  }
}

void concat_vjp(VjpContext& context) {
  const Tensor& cotangent = context.cotangent();
  const std::int64_t axis = context.attributes().axis;
  const auto* source = static_cast<const unsigned char*>(cotangent.raw_data());
  std::int64_t axis_offset = 0;
  for (std::int64_t position = 0; position < context.input_count(); ++position) {
    const Shape& part_shape = context.input(position).shape();
    const std::int64_t part_extent = part_shape[axis];
    if (context.needs_grad(position)) {
      Tensor part_grad = context.allocate(part_shape, cotangent.dtype());
      auto* target = static_cast<unsigned char*>(part_grad.raw_data());
      for_each_concat_run(cotangent.shape(), axis, axis_offset, part_extent,
                          [&](std::int64_t joined_start, std::int64_t part_start, std::int64_t run) {
                            std::memcpy(target + element_bytes(part_start, cotangent.dtype()),
                                        source + element_bytes(joined_start, cotangent.dtype()),
                                        element_bytes(run, cotangent.dtype()));
                          });
      context.accumulate(position, std::move(part_grad));
    }
    axis_offset += part_extent;
  }
}

// ---- row selection ---------------------------------------------------------------------------

// The indices of select_rows and select_per_row are checked, mapped into [0, extent) and copied
// onto the node as an f64 tensor from the tape's pool, saved(0). A double represents every integer up
// to 2⁵³ exactly, and no extent of a tensor that fits in memory comes near that, so the VJP reads
// back the very indices the forward pass used.
Tensor checked_indices(Tape& tape, std::string_view op, std::string_view argument,
                       std::span<const std::int64_t> indices, std::int64_t extent, const Shape& x_shape) {
  Tensor saved = tape.allocate(Shape{static_cast<std::int64_t>(indices.size())}, Dtype::f64);
  double* out = saved.data<double>();
  for (std::size_t position = 0; position < indices.size(); ++position) {
    const std::int64_t index = indices[position];
    if (index < -extent || index >= extent) {
      raise<ShapeError>(op, fmt::format("each index must be in [{}, {}) for x of shape {}", -extent, extent, x_shape),
                        "{}[{}] = {}", argument, position, index);
    }
    out[position] = static_cast<double>(index < 0 ? index + extent : index);
  }
  return saved;
}

void select_rows_vjp(VjpContext& context) {
  const Tensor& x = context.input(0);
  const Tensor& cotangent = context.cotangent();
  const Tensor& rows = context.saved(0);
  const std::int64_t row_size = extent_product(x.shape(), 1, x.rank());
  Tensor x_grad = context.allocate(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* g = cotangent.data<T>();
    const double* row_of = rows.data<double>();
    T* dx = x_grad.data<T>();
    std::fill_n(dx, x.numel(), T{0});
    // Scatter-add: a row selected several times receives the sum of its copies' cotangents.
    for (std::int64_t i = 0; i < rows.numel(); ++i) {
      T* target = dx + static_cast<std::int64_t>(row_of[i]) * row_size;
      const T* source = g + i * row_size;
      for (std::int64_t t = 0; t < row_size; ++t) {
        target[t] += source[t];
      }
    }
  });
  context.accumulate(0, std::move(x_grad));
}

void select_per_row_vjp(VjpContext& context) {
  const Tensor& x = context.input(0);
  const Tensor& cotangent = context.cotangent();
  const Tensor& columns = context.saved(0);
  const std::int64_t column_count = x.shape()[1];
  Tensor x_grad = context.allocate(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* g = cotangent.data<T>();
    const double* column_of = columns.data<double>();
    T* dx = x_grad.data<T>();
    std::fill_n(dx, x.numel(), T{0});
    for (std::int64_t i = 0; i < columns.numel(); ++i) {
      dx[i * column_count + static_cast<std::int64_t>(column_of[i])] += g[i];
    }
  });
  context.accumulate(0, std::move(x_grad));
}

}  // namespace

Var transpose(const Var& x) {
  common_tape("transpose", {x});
  const Shape& shape = x.shape();
  if (shape.rank() != 2) {
    raise<ShapeError>("transpose", "transpose(x) needs a 2-D x (pass two axes to transpose a tensor of another rank)",
                      "x {} (rank {})", shape, shape.rank());
  }
  return record_transpose("transpose", x, 0, 1);
}

Var transpose(const Var& x, std::int64_t axis0, std::int64_t axis1) {
  return record_transpose("transpose", x, axis0, axis1);
}

Var reshape(const Var& x, const Shape& shape) {
  Tape& tape = common_tape("reshape", {x});
  const Tensor& value = x.value();
  detail::check_floating("reshape", "x", value);
  const Shape resolved = resolve_shape(value.shape(), shape);
  return tape.record("reshape", value.reshape(resolved), {x}, same_elements_vjp);
}

Var concat(std::span<const Var> xs, std::int64_t axis) {
  if (xs.empty()) {
    raise<ValueError>("concat", "there must be at least one input", "an empty list");
  }
  Tape& tape = common_tape("concat", xs);
  const Shape out_shape = concat_shape(xs, axis);
  const std::int64_t joined_axis = axis < 0 ? axis + out_shape.rank() : axis;
  const Dtype dtype = xs[0].dtype();
  Tensor y = tape.allocate(out_shape, dtype);

  auto* target = static_cast<unsigned char*>(y.raw_data());
  std::int64_t axis_offset = 0;
  for (const Var& x : xs) {
    const Tensor& part = x.value();
    const auto* source = static_cast<const unsigned char*>(part.raw_data());
    const std::int64_t part_extent = part.shape()[joined_axis];
    for_each_concat_run(out_shape, joined_axis, axis_offset, part_extent,
                        [&](std::int64_t joined_start, std::int64_t part_start, std::int64_t run) {
                          std::memcpy(target + element_bytes(joined_start, dtype), source + element_bytes(part_start, dtype),
                                      element_bytes(run, dtype));
                        });
    axis_offset += part_extent;
  }
  return tape.record("concat", std::move(y), xs, concat_vjp, {}, {.axis = joined_axis});
}

Var concat(std::initializer_list<Var> xs, std::int64_t axis) {
  return concat(std::span<const Var>(xs.begin(), xs.size()), axis);
}

Var select_rows(const Var& x, std::span<const std::int64_t> rows) {
  Tape& tape = common_tape("select_rows", {x});
  const Tensor& value = x.value();
  detail::check_floating("select_rows", "x", value);
  if (value.rank() == 0) {
    raise<ShapeError>("select_rows", "x must have rank >= 1, with the rows along axis 0", "x of shape {}",
                      value.shape());
  }
  Tensor row_indices = checked_indices(tape, "select_rows", "rows", rows, value.shape()[0], value.shape());

  Shape out_shape = value.shape();
  out_shape[0] = static_cast<std::int64_t>(rows.size());
  const std::int64_t row_size = extent_product(value.shape(), 1, value.rank());
  Tensor y = tape.allocate(out_shape, value.dtype());
  dispatch_floating(value.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* in = value.data<T>();
    const double* row_of = row_indices.data<double>();
    T* out = y.data<T>();
    for (std::int64_t i = 0; i < row_indices.numel(); ++i) {
      std::copy_n(in + static_cast<std::int64_t>(row_of[i]) * row_size, row_size, out + i * row_size);
    }
  });
  return tape.record("select_rows", std::move(y), {x}, select_rows_vjp, {std::move(row_indices)});
}

Var select_rows(const Var& x, std::initializer_list<std::int64_t> rows) {
  return select_rows(x, std::span<const std::int64_t>(rows.begin(), rows.size()));
}

Var select_per_row(const Var& x, std::span<const std::int64_t> columns) {
  Tape& tape = common_tape("select_per_row", {x});
  const Tensor& value = x.value();
  detail::check_floating("select_per_row", "x", value);
  if (value.rank() != 2) {
    raise<ShapeError>("select_per_row", "x must be a 2-D matrix", "x of shape {} (rank {})", value.shape(),
                      value.rank());
  }
  const std::int64_t row_count = value.shape()[0];
  const std::int64_t column_count = value.shape()[1];
  if (static_cast<std::int64_t>(columns.size()) != row_count) {
    raise<ShapeError>("select_per_row", "columns must have one entry per row of x",
                      "{} columns for x of shape {}", columns.size(), value.shape());
  }
  Tensor column_indices = checked_indices(tape, "select_per_row", "columns", columns, column_count, value.shape());

  Tensor y = tape.allocate(Shape{row_count}, value.dtype());
  dispatch_floating(value.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* in = value.data<T>();
    const double* column_of = column_indices.data<double>();
    T* out = y.data<T>();
    for (std::int64_t i = 0; i < row_count; ++i) {
      out[i] = in[i * column_count + static_cast<std::int64_t>(column_of[i])];
    }
  });
  return tape.record("select_per_row", std::move(y), {x}, select_per_row_vjp, {std::move(column_indices)});
}

Var select_per_row(const Var& x, std::initializer_list<std::int64_t> columns) {
  return select_per_row(x, std::span<const std::int64_t>(columns.begin(), columns.size()));
}

void register_shape_op_cases(GradcheckRegistry& registry) {
  registry.add({.op = "transpose", .name = "matrix", .inputs = {{.shape = {2, 3}}},
                .function = [](std::span<const Var> inputs) { return transpose(inputs[0]); }});
  registry.add({.op = "transpose", .name = "one_row", .inputs = {{.shape = {1, 4}}},
                .function = [](std::span<const Var> inputs) { return transpose(inputs[0]); }});
  registry.add({.op = "transpose", .name = "rank3_outer_axes", .inputs = {{.shape = {2, 3, 4}}},
                .function = [](std::span<const Var> inputs) { return transpose(inputs[0], 0, 2); }});
  registry.add({.op = "transpose", .name = "rank3_negative_axes", .inputs = {{.shape = {2, 3, 4}}},
                .function = [](std::span<const Var> inputs) { return transpose(inputs[0], -1, -2); }});
  registry.add({.op = "transpose", .name = "same_axis", .inputs = {{.shape = {2, 3}}},
                .function = [](std::span<const Var> inputs) { return transpose(inputs[0], 1, -1); }});

  registry.add({.op = "reshape", .name = "matrix_to_matrix", .inputs = {{.shape = {2, 3}}},
                .function = [](std::span<const Var> inputs) { return reshape(inputs[0], {3, 2}); }});
  registry.add({.op = "reshape", .name = "inferred_extent", .inputs = {{.shape = {2, 3, 2}}},
                .function = [](std::span<const Var> inputs) { return reshape(inputs[0], {-1, 4}); }});
  registry.add({.op = "reshape", .name = "to_scalar", .inputs = {{.shape = {1, 1}}},
                .function = [](std::span<const Var> inputs) { return reshape(inputs[0], Shape{}); }});

  registry.add({.op = "concat", .name = "axis0_three_inputs",
                .inputs = {{.shape = {1, 3}}, {.shape = {2, 3}}, {.shape = {3, 3}}},
                .function = [](std::span<const Var> inputs) { return concat(inputs, 0); }});
  registry.add({.op = "concat", .name = "axis1_three_inputs",
                .inputs = {{.shape = {2, 1}}, {.shape = {2, 3}}, {.shape = {2, 2}}},
                .function = [](std::span<const Var> inputs) { return concat(inputs, 1); }});
  registry.add({.op = "concat", .name = "middle_axis_with_constant",
                .inputs = {{.shape = {2, 1, 3}}, {.shape = {2, 2, 3}, .differentiable = false}, {.shape = {2, 0, 3}}},
                .function = [](std::span<const Var> inputs) { return concat(inputs, -2); }});

  registry.add({.op = "select_rows", .name = "repeats_and_negative",
                .inputs = {{.shape = {4, 3}}},
                .function = [](std::span<const Var> inputs) {
                  const std::int64_t rows[] = {2, 0, 2, -1, -2};
                  return select_rows(inputs[0], rows);
                }});
  registry.add({.op = "select_rows", .name = "vector",
                .inputs = {{.shape = {5}}},
                .function = [](std::span<const Var> inputs) {
                  const std::int64_t rows[] = {4, 4, 1};
                  return select_rows(inputs[0], rows);
                }});
  registry.add({.op = "select_rows", .name = "rank3_one_row_selected",
                .inputs = {{.shape = {3, 2, 2}}},
                .function = [](std::span<const Var> inputs) {
                  const std::int64_t rows[] = {1};
                  return select_rows(inputs[0], rows);
                }});

  registry.add({.op = "select_per_row", .name = "matrix",
                .inputs = {{.shape = {3, 4}}},
                .function = [](std::span<const Var> inputs) {
                  const std::int64_t columns[] = {0, 3, -1};
                  return select_per_row(inputs[0], columns);
                }});
  registry.add({.op = "select_per_row", .name = "one_row",
                .inputs = {{.shape = {1, 5}}},
                .function = [](std::span<const Var> inputs) {
                  const std::int64_t columns[] = {2};
                  return select_per_row(inputs[0], columns);
                }});
  registry.add({.op = "select_per_row", .name = "one_column",
                .inputs = {{.shape = {4, 1}}},
                .function = [](std::span<const Var> inputs) {
                  const std::int64_t columns[] = {0, -1, 0, 0};
                  return select_per_row(inputs[0], columns);
                }});
}

}  // namespace tapegrad
