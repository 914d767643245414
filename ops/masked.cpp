#include "masked.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "arithmetic.hpp"
#include "common.hpp"
#include "exp_log.hpp"
#include "reductions.hpp"

namespace tapegrad {
namespace {

using Strides = std::array<std::int64_t, Shape::max_rank>;

constexpr double infinity = std::numeric_limits<double>::infinity();

// OpAttributes::integer of a node that reduces all elements rather than one axis.
constexpr std::int64_t reduce_all_elements = 1;

// Calls visit(out_index, a_index, b_index, c_index) for every element of `shape`, with the flat
// indices of three operands read through broadcast strides. The odometer of for_each_broadcast,
// with one more operand.
template <class Visit>
void for_each_broadcast3(const Shape& shape, const Strides& a_strides, const Strides& b_strides,
                         const Strides& c_strides, Visit&& visit) {
  const std::int64_t rank = shape.rank();
  const std::int64_t count = shape.numel();
  if (count == 0) {
    return;
  }
  if (rank == 0) {
    visit(0, 0, 0, 0);
    return;
  }
  const auto last = static_cast<std::size_t>(rank - 1);
  const std::int64_t inner = shape[rank - 1];
  std::array<std::int64_t, Shape::max_rank> counter{};
  std::int64_t a_offset = 0;
  std::int64_t b_offset = 0;
  std::int64_t c_offset = 0;
  for (std::int64_t out = 0; out < count; out += inner) {
    for (std::int64_t i = 0; i < inner; ++i) {
      visit(out + i, a_offset + i * a_strides[last], b_offset + i * b_strides[last], c_offset + i * c_strides[last]);
    }
    for (std::int64_t axis = rank - 2; axis >= 0; --axis) {
      const auto position = static_cast<std::size_t>(axis);
      ++counter[position];
      a_offset += a_strides[position];
      b_offset += b_strides[position];
      c_offset += c_strides[position];
      if (counter[position] < shape[axis]) {
        break;
      }
      a_offset -= a_strides[position] * shape[axis];
      b_offset -= b_strides[position] * shape[axis];
      c_offset -= c_strides[position] * shape[axis];
      counter[position] = 0;
    }
  }
}

// ---- where -------------------------------------------------------------------------------------

// The broadcast of the mask's and a's shapes, and of b's when there is a b, or ShapeError naming
// every shape.
Shape where_shape(const Shape& mask, const Shape& a, const Shape* b) {
  const std::int64_t rank = std::max({mask.rank(), a.rank(), b != nullptr ? b->rank() : 0});
  Shape result;
  for (std::int64_t axis = 0; axis < rank; ++axis) {
    std::int64_t extent = 1;
    bool compatible = true;
    for (const Shape* shape : {&mask, &a, b}) {
      if (shape == nullptr) {
        continue;
      }
      const std::int64_t offset = axis - (rank - shape->rank());
      const std::int64_t own = offset >= 0 ? (*shape)[offset] : 1;
      if (own != 1 && extent != 1 && own != extent) {
        compatible = false;
      }
      extent = own != 1 ? own : extent;
    }
    if (!compatible) {
      const std::string b_part = b != nullptr ? fmt::format(" and b {}", *b) : std::string();
      raise<ShapeError>("where",
                        "mask, a and b must broadcast together (aligned from the right, each extent equal to "
                        "the others or 1)",
                        "mask {}, a {}{}", mask, a, b_part);
    }
    result.push_back(extent);
  }
  return result;
}

// Routes the cotangent to a (input 0) where the mask is true and to b (input 1, absent in the
// scalar form) where it is false, summed back to each input's shape.
void where_vjp(VjpContext& context) {
  const Tensor& mask = context.saved(0);
  const Tensor& cotangent = context.cotangent();
  const Shape& shape = cotangent.shape();
  const Strides mask_strides = detail::broadcast_strides(mask.shape(), shape);
  const Strides unused{};
  for (std::int64_t position = 0; position < context.input_count(); ++position) {
    if (!context.needs_grad(position)) {
      continue;
    }
    const bool routed_when = position == 0;
    Tensor routed = context.allocate(shape, cotangent.dtype());
    dispatch_floating(cotangent.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const bool* selected = mask.data<bool>();
      const T* g = cotangent.data<T>();
      T* out = routed.data<T>();
      detail::for_each_broadcast(shape, mask_strides, unused, [&](std::int64_t o, std::int64_t m, std::int64_t) {
        out[o] = selected[m] == routed_when ? g[o] : T{0};
      });
    });
    const Shape& input_shape = context.input(position).shape();
    if (input_shape == shape) {
      context.accumulate(position, std::move(routed));
    } else {
      context.accumulate(position, detail::sum_to_shape(context, routed, input_shape));
    }
  }
}

// ---- masked reductions: checks and layout ----------------------------------------------------

// The layout of a masked reduction: its output shapes, and the strides that read the mask and
// the output in x's index space.
struct MaskedPlan {
  Shape out_shape;      // the shape returned: the axis removed unless keepdim, [] for all elements
  Shape kept_shape;     // out_shape with every reduced axis kept at extent 1
  Strides mask_strides;  // 0 along the axes the mask is broadcast over
  Strides out_strides;   // 0 along the reduced axes, so every entry of a row maps to its output
};

MaskedPlan plan_of(const Shape& x_shape, const Shape& mask_shape, const OpAttributes& attributes) {
  MaskedPlan plan;
  if (attributes.integer == reduce_all_elements) {
    for (std::int64_t axis = 0; axis < x_shape.rank(); ++axis) {
      plan.kept_shape.push_back(1);
    }
  } else {
    plan.kept_shape = detail::reduced_shape(x_shape, attributes.axis, true);
    plan.out_shape = detail::reduced_shape(x_shape, attributes.axis, attributes.keepdim);
  }
  plan.mask_strides = detail::broadcast_strides(mask_shape, x_shape);
  plan.out_strides = detail::broadcast_strides(plan.kept_shape, x_shape);
  return plan;
}

// Checks the arguments of a masked reduction and returns the node's attributes: the normalized
// axis and keepdim, or the all-elements mark when there is no axis.
OpAttributes check_masked(std::string_view op, const Var& x, const Tensor& mask, std::optional<std::int64_t> axis,
                          bool keepdim) {
  common_tape(op, {x});
  detail::check_floating(op, "x", x.value());
  detail::check_mask(op, mask);
  if (!broadcasts_to(mask.shape(), x.shape())) {
    raise<ShapeError>(op,
                      "the mask must broadcast to x's shape (aligned from the right, each mask extent equal to "
                      "x's or 1)",
                      "mask {} and x {}", mask.shape(), x.shape());
  }
  if (!axis) {
    return {.integer = reduce_all_elements};
  }
  return {.axis = detail::check_axis(op, x.shape(), *axis), .keepdim = keepdim};
}

// The index of output row `flat` for messages: a number for a rank-1 result, a list otherwise,
// always without the reduced axis.
std::string describe_row(const Shape& x_shape, const OpAttributes& attributes, std::int64_t flat) {
  const Shape rows = detail::reduced_shape(x_shape, attributes.axis, false);
  std::vector<std::int64_t> index(static_cast<std::size_t>(rows.rank()), 0);
  for (std::int64_t axis = rows.rank() - 1; axis >= 0; --axis) {
    index[static_cast<std::size_t>(axis)] = flat % rows[axis];
    flat /= rows[axis];
  }
  if (index.size() == 1) {
    return std::to_string(index[0]);
  }
  return fmt::format("[{}]", fmt::join(index, ", "));
}

// Raises ValueError for masked_mean unless every row has a selected entry.
void check_rows_not_empty(const Var& x, const Tensor& mask, const OpAttributes& attributes, const double* counts,
                          std::int64_t row_count) {
  const double* empty = std::find(counts, counts + row_count, 0.0);
  if (empty == counts + row_count) {
    return;
  }
  if (attributes.integer == reduce_all_elements) {
    raise<ValueError>("masked_mean",
                      "the mask must select at least one entry, because the mean of nothing is undefined "
                      "(masked_sum gives 0 there)",
                      "a mask {} that selects no entry of x {}", mask.shape(), x.shape());
  }
  raise<ValueError>("masked_mean",
                    "every row must have at least one selected entry, because the mean of nothing is undefined "
                    "(masked_sum gives 0 there)",
                    "row {} with no selected entry along axis {} of x {} with mask {}",
                    describe_row(x.shape(), attributes, empty - counts), attributes.axis, x.shape(), mask.shape());
}

// ---- masked reductions: kernels ----------------------------------------------------------------

// Adds each selected entry of x into totals at its row and, when count_entries, 1 into counts.
template <bool count_entries, class T>
void masked_sum_kernel(const Shape& x_shape, const T* x, const bool* selected, const MaskedPlan& plan,
                       double* totals, double* counts) {
  detail::for_each_broadcast(x_shape, plan.mask_strides, plan.out_strides,
                             [&](std::int64_t i, std::int64_t m, std::int64_t o) {
                               if (selected[m]) {
                                 totals[o] += static_cast<double>(x[i]);
                                 if constexpr (count_entries) {
                                   counts[o] += 1.0;
                                 }
                               }
                             });
}

// Writes the maximum of the selected entries of each row, -inf for a row with none, and the
// number of selected entries equal to it.
template <class T>
void masked_max_kernel(const Shape& x_shape, const T* x, const bool* selected, const MaskedPlan& plan, T* maximum,
                       double* ties, std::int64_t row_count) {
  std::fill_n(maximum, row_count, -std::numeric_limits<T>::infinity());
  std::fill_n(ties, row_count, 0.0);
  detail::for_each_broadcast(x_shape, plan.mask_strides, plan.out_strides,
                             [&](std::int64_t i, std::int64_t m, std::int64_t o) {
                               if (selected[m]) {
                                 detail::update_max(x[i], maximum[o], ties[o]);
                               }
                             });
}

// The VJP of masked_sum, and of masked_mean when divide_by_count (saved(1) is then the count of
// selected entries of each row).
void masked_sum_vjp(VjpContext& context, bool divide_by_count) {
  const Tensor& x = context.input(0);
  const Tensor& mask = context.saved(0);
  const Tensor& cotangent = context.cotangent();
  const MaskedPlan plan = plan_of(x.shape(), mask.shape(), context.attributes());
  Tensor x_grad = context.allocate(x.shape(), x.dtype());
  dispatch_floating(x.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const bool* selected = mask.data<bool>();
    const T* g = cotangent.data<T>();
    T* dx = x_grad.data<T>();
    if (!divide_by_count) {
      detail::for_each_broadcast(x.shape(), plan.mask_strides, plan.out_strides,
                                 [&](std::int64_t i, std::int64_t m, std::int64_t o) {
                                   dx[i] = selected[m] ? g[o] : T{0};
                                 });
      return;
    }
    const double* counts = context.saved(1).data<double>();
    detail::for_each_broadcast(x.shape(), plan.mask_strides, plan.out_strides,
                               [&](std::int64_t i, std::int64_t m, std::int64_t o) {
                                 dx[i] = selected[m] ? g[o] / static_cast<T>(counts[o]) : T{0};
                               });
  });
  context.accumulate(0, std::move(x_grad));
}

// Records masked_sum, or masked_mean when `mean` is true. Arguments are already checked.
Var record_masked_sum(const Var& x, const Tensor& mask, const OpAttributes& attributes, bool mean) {
  Tape& tape = x.tape();
  const Tensor& in = x.value();
  const MaskedPlan plan = plan_of(in.shape(), mask.shape(), attributes);
  const std::int64_t row_count = plan.kept_shape.numel();
  Tensor y = tape.allocate(plan.out_shape, in.dtype());
  // Totals accumulate in double: straight into y for f64, in a pooled buffer for f32.
  Tensor totals = in.dtype() == Dtype::f64 ? y : tape.allocate(plan.out_shape, Dtype::f64);
  Tensor counts;
  std::fill_n(totals.data<double>(), row_count, 0.0);
  dispatch_floating(in.dtype(), [&](auto zero) {
    using T = decltype(zero);
    if (mean) {
      counts = tape.allocate(plan.out_shape, Dtype::f64);
      std::fill_n(counts.data<double>(), row_count, 0.0);
      masked_sum_kernel<true>(in.shape(), in.data<T>(), mask.data<bool>(), plan, totals.data<double>(),
                              counts.data<double>());
    } else {
      masked_sum_kernel<false>(in.shape(), in.data<T>(), mask.data<bool>(), plan, totals.data<double>(), nullptr);
    }
  });
  if (mean) {
    check_rows_not_empty(x, mask, attributes, counts.data<double>(), row_count);
  }
  dispatch_floating(in.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const double* total = totals.data<double>();
    const double* count = mean ? counts.data<double>() : nullptr;
    T* out = y.data<T>();
    for (std::int64_t o = 0; o < row_count; ++o) {
      out[o] = static_cast<T>(mean ? total[o] / count[o] : total[o]);
    }
  });
  if (mean) {
    return tape.record("masked_mean", std::move(y), {x}, [](VjpContext& context) { masked_sum_vjp(context, true); },
                       {mask, std::move(counts)}, attributes);
  }
  return tape.record("masked_sum", std::move(y), {x}, [](VjpContext& context) { masked_sum_vjp(context, false); },
                     {mask}, attributes);
}

Var record_masked_max(const Var& x, const Tensor& mask, const OpAttributes& attributes) {
  Tape& tape = x.tape();
  const Tensor& in = x.value();
  const MaskedPlan plan = plan_of(in.shape(), mask.shape(), attributes);
  Tensor y = tape.allocate(plan.out_shape, in.dtype());
  Tensor ties = tape.allocate(plan.out_shape, Dtype::f64);
  dispatch_floating(in.dtype(), [&](auto zero) {
    using T = decltype(zero);
    masked_max_kernel(in.shape(), in.data<T>(), mask.data<bool>(), plan, y.data<T>(), ties.data<double>(),
                      plan.kept_shape.numel());
  });
  return tape.record("masked_max", std::move(y), {x}, [](VjpContext& context) {
    const Tensor& x = context.input(0);
    const Tensor& mask = context.saved(0);
    const double* ties = context.saved(1).data<double>();
    const Tensor& maximum = context.output();
    const Tensor& cotangent = context.cotangent();
    const MaskedPlan plan = plan_of(x.shape(), mask.shape(), context.attributes());
    Tensor x_grad = context.allocate(x.shape(), x.dtype());
    dispatch_floating(x.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const bool* selected = mask.data<bool>();
      const T* in = x.data<T>();
      const T* m = maximum.data<T>();
      const T* g = cotangent.data<T>();
      T* dx = x_grad.data<T>();
      detail::for_each_broadcast(x.shape(), plan.mask_strides, plan.out_strides,
                                 [&](std::int64_t i, std::int64_t k, std::int64_t o) {
                                   // A selected tie implies ties[o] >= 1, and a masked entry is never read.
                                   const bool tie = selected[k] && detail::is_tie(in[i], m[o]);
                                   dx[i] = tie ? g[o] / static_cast<T>(ties[o]) : T{0};
                                 });
    });
    context.accumulate(0, std::move(x_grad));
  }, {mask, std::move(ties)}, attributes);
}

// Composes masked_logsumexp from recorded ops, as the header describes. Arguments are checked.
Var compose_masked_logsumexp(const Var& x, const Tensor& mask_argument, const OpAttributes& attributes) {
  // A handle of our own, because the caller's mask may be a reference into the tape's node
  // storage (the value() of a constant), which recording the ops below can move.
  const Tensor mask = mask_argument;
  Tape& tape = x.tape();
  const Tensor& in = x.value();
  const MaskedPlan plan = plan_of(in.shape(), mask.shape(), attributes);
  const std::int64_t row_count = plan.kept_shape.numel();

  // The shift m is the masked max of each row, computed here and recorded as a constant, so no
  // gradient flows through it. An infinite m is replaced by 0, because x − m would be inf − inf.
  Tensor shift = tape.allocate(plan.kept_shape, in.dtype());
  Tensor ties = tape.allocate(plan.kept_shape, Dtype::f64);
  dispatch_floating(in.dtype(), [&](auto zero) {
    using T = decltype(zero);
    T* m = shift.data<T>();
    masked_max_kernel(in.shape(), in.data<T>(), mask.data<bool>(), plan, m, ties.data<double>(), row_count);
    for (std::int64_t o = 0; o < row_count; ++o) {
      m[o] = std::isfinite(m[o]) ? m[o] : T{0};
    }
  });
  const Var m = tape.constant(shift);

  // where() puts -inf at masked entries before exp, so a masked 1000 never overflows, and its
  // VJP gives those entries exactly 0.
  const Var shifted = where(mask, x - m, -infinity);
  const Var exponentials = exp(shifted);
  const Var total = attributes.integer == reduce_all_elements
                        ? masked_sum(exponentials, mask)
                        : masked_sum(exponentials, mask, attributes.axis, attributes.keepdim);
  const Var m_out = plan.out_shape == plan.kept_shape ? m : tape.constant(shift.reshape(plan.out_shape));
  return log(total) + m_out;
}

}  // namespace

Var where(const Tensor& mask, const Var& a, const Var& b) {
  Tape& tape = common_tape("where", {a, b});
  detail::check_mask("where", mask);
  detail::check_floating("where", "a", a.value());
  detail::check_floating("where", "b", b.value());
  detail::check_same_dtype("where", a.value(), b.value());
  const Shape shape = where_shape(mask.shape(), a.shape(), &b.shape());
  Tensor y = tape.allocate(shape, a.dtype());
  dispatch_floating(a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const bool* selected = mask.data<bool>();
    const T* in_a = a.value().data<T>();
    const T* in_b = b.value().data<T>();
    T* out = y.data<T>();
    for_each_broadcast3(shape, detail::broadcast_strides(mask.shape(), shape),
                        detail::broadcast_strides(a.shape(), shape), detail::broadcast_strides(b.shape(), shape),
                        [&](std::int64_t o, std::int64_t m, std::int64_t i, std::int64_t j) {
                          out[o] = selected[m] ? in_a[i] : in_b[j];
                        });
  });
  return tape.record("where", std::move(y), {a, b}, where_vjp, {mask});
}

Var where(const Tensor& mask, const Var& a, double b) {
  Tape& tape = common_tape("where", {a});
  detail::check_mask("where", mask);
  detail::check_floating("where", "a", a.value());
  const Shape shape = where_shape(mask.shape(), a.shape(), nullptr);
  Tensor y = tape.allocate(shape, a.dtype());
  dispatch_floating(a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const bool* selected = mask.data<bool>();
    const T* in_a = a.value().data<T>();
    const T fill = static_cast<T>(b);
    T* out = y.data<T>();
    detail::for_each_broadcast(shape, detail::broadcast_strides(mask.shape(), shape),
                               detail::broadcast_strides(a.shape(), shape),
                               [&](std::int64_t o, std::int64_t m, std::int64_t i) {
                                 out[o] = selected[m] ? in_a[i] : fill;
                               });
  });
  return tape.record("where", std::move(y), {a}, where_vjp, {mask}, {.scalar = b});
}

Var masked_sum(const Var& x, const Tensor& mask) {
  return record_masked_sum(x, mask, check_masked("masked_sum", x, mask, std::nullopt, false), false);
}

Var masked_sum(const Var& x, const Tensor& mask, std::int64_t axis, bool keepdim) {
  return record_masked_sum(x, mask, check_masked("masked_sum", x, mask, axis, keepdim), false);
}

Var masked_mean(const Var& x, const Tensor& mask) {
  return record_masked_sum(x, mask, check_masked("masked_mean", x, mask, std::nullopt, false), true);
}

Var masked_mean(const Var& x, const Tensor& mask, std::int64_t axis, bool keepdim) {
  return record_masked_sum(x, mask, check_masked("masked_mean", x, mask, axis, keepdim), true);
}

Var masked_max(const Var& x, const Tensor& mask) {
  return record_masked_max(x, mask, check_masked("masked_max", x, mask, std::nullopt, false));
}

Var masked_max(const Var& x, const Tensor& mask, std::int64_t axis, bool keepdim) {
  return record_masked_max(x, mask, check_masked("masked_max", x, mask, axis, keepdim));
}

Var masked_logsumexp(const Var& x, const Tensor& mask) {
  return compose_masked_logsumexp(x, mask, check_masked("masked_logsumexp", x, mask, std::nullopt, false));
}

Var masked_logsumexp(const Var& x, const Tensor& mask, std::int64_t axis, bool keepdim) {
  return compose_masked_logsumexp(x, mask, check_masked("masked_logsumexp", x, mask, axis, keepdim));
}

// ---- gradcheck cases ---------------------------------------------------------------------------

namespace {

Tensor mask_of(const Shape& shape, std::initializer_list<double> values) {
  return Tensor::from_values(shape, values, Dtype::boolean);
}

// Distinct values at least 0.1 apart in [-5, 5), as for max in reductions.cpp.
Tensor spaced_values(const Shape& shape) {
  std::vector<double> values(static_cast<std::size_t>(shape.numel()));
  for (std::size_t k = 0; k < values.size(); ++k) {
    values[k] = 0.1 * static_cast<double>((37 * k + 11) % 101) - 5.0;
  }
  return Tensor::from_values(shape, values);
}

GradcheckInput mask_input(const Tensor& mask) {
  return {.shape = mask.shape(), .dtype = Dtype::boolean, .differentiable = false, .values = mask};
}

// The masks of the cases: [3, 4] with an all-false row 1, a [1, 4] row, a [3, 1] column with an
// all-false row 2, and [4, 3] without an all-false row.
struct CaseMasks {
  Tensor matrix_with_empty_row = mask_of({3, 4}, {1, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1});
  Tensor row = mask_of({1, 4}, {1, 0, 1, 1});
  Tensor column_with_empty_row = mask_of({3, 1}, {1, 1, 0});
  Tensor tall_full_rows = mask_of({4, 3}, {1, 0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1});
  Tensor one_row = mask_of({1, 5}, {0, 1, 1, 0, 1});
  Tensor one_column = mask_of({5, 1}, {1, 0, 1, 1, 0});
};

// Replaces the -inf of rows with no selected entry by 0, so that finite differences stay finite.
// The zero gradient of those rows is checked by the masked test suite with a seed of 1.
Var finite_rows(const Var& y, const Tensor& row_has_entry) { return where(row_has_entry, y, 0.0); }

void register_where_cases(GradcheckRegistry& registry, const CaseMasks& masks) {
  registry.add({.op = "where", .name = "same_shape",
                .inputs = {{.shape = {3, 4}}, {.shape = {3, 4}}},
                .function = [mask = masks.matrix_with_empty_row](std::span<const Var> inputs) {
                  return where(mask, inputs[0], inputs[1]);
                }});
  registry.add({.op = "where", .name = "mask_row_a_column",
                .inputs = {{.shape = {3, 1}}, {.shape = {3, 4}}},
                .function = [mask = masks.row](std::span<const Var> inputs) {
                  return where(mask, inputs[0], inputs[1]);
                }});
  registry.add({.op = "where", .name = "mask_column_b_row",
                .inputs = {{.shape = {3, 4}}, {.shape = {1, 4}}},
                .function = [mask = masks.column_with_empty_row](std::span<const Var> inputs) {
                  return where(mask, inputs[0], inputs[1]);
                }});
  registry.add({.op = "where", .name = "scalar_fill",
                .inputs = {{.shape = {4, 3}}},
                .function = [mask = masks.tall_full_rows](std::span<const Var> inputs) {
                  return where(mask, inputs[0], -2.5);
                }});
}

// A masked reduction as gradcheck calls it: over every element when axis is empty, else along
// the axis. The mask is the case's second input, with no gradient.
using MaskedReduction = Var (*)(const Var& x, const Tensor& mask, std::optional<std::int64_t> axis, bool keepdim);

// Returns a function that registers one case of the masked reduction `op`, computed by `reduce`.
auto masked_case_adder(GradcheckRegistry& registry, std::string op, MaskedReduction reduce) {
  return [&registry, op = std::move(op), reduce](std::string name, Shape shape, const Tensor& mask,
                                                 std::optional<std::int64_t> axis, bool keepdim) {
    registry.add({.op = op, .name = std::move(name),
                  .inputs = {{.shape = shape}, mask_input(mask)},
                  .function = [reduce, axis, keepdim](std::span<const Var> inputs) {
                    return reduce(inputs[0], inputs[1].value(), axis, keepdim);
                  }});
  };
}

void register_masked_sum_cases(GradcheckRegistry& registry, const CaseMasks& masks) {
  auto add = masked_case_adder(registry, "masked_sum",
                               [](const Var& x, const Tensor& mask, std::optional<std::int64_t> axis, bool keepdim) {
                                 return axis ? masked_sum(x, mask, *axis, keepdim) : masked_sum(x, mask);
                               });
  add("all_elements", {3, 4}, masks.matrix_with_empty_row, std::nullopt, false);
  add("axis1_empty_row", {3, 4}, masks.matrix_with_empty_row, 1, false);
  add("axis0_keepdim_mask_row", {3, 4}, masks.row, 0, true);
  add("axis_negative_mask_column_empty_row", {3, 4}, masks.column_with_empty_row, -1, false);
  add("axis1_tall", {4, 3}, masks.tall_full_rows, 1, true);
  add("one_row", {1, 5}, masks.one_row, 1, false);
  add("one_column", {5, 1}, masks.one_column, 0, false);
}

void register_masked_mean_cases(GradcheckRegistry& registry, const CaseMasks& masks) {
  // No case has a row without a selected entry, because masked_mean raises ValueError there.
  auto add = masked_case_adder(registry, "masked_mean",
                               [](const Var& x, const Tensor& mask, std::optional<std::int64_t> axis, bool keepdim) {
                                 return axis ? masked_mean(x, mask, *axis, keepdim) : masked_mean(x, mask);
                               });
  add("all_elements", {3, 4}, masks.matrix_with_empty_row, std::nullopt, false);
  add("axis1_tall", {4, 3}, masks.tall_full_rows, 1, false);
  add("axis0_keepdim_tall", {4, 3}, masks.tall_full_rows, 0, true);
  add("axis_negative_mask_row", {3, 4}, masks.row, -1, false);
  add("axis0_mask_column", {3, 4}, masks.column_with_empty_row, 0, false);
  add("one_row", {1, 5}, masks.one_row, -1, true);
  add("one_column", {5, 1}, masks.one_column, 0, false);
}

// Registers the cases of masked_max (sampled away from ties) or masked_logsumexp. A case with a
// row that has no selected entry passes `rows` to keep that row's -inf out of the differences.
void register_masked_max_like_cases(GradcheckRegistry& registry, const CaseMasks& masks, std::string op,
                                    Var (*reduce)(const Var&, const Tensor&, std::int64_t, bool),
                                    Var (*reduce_all)(const Var&, const Tensor&), bool spaced) {
  const std::string reason =
      spaced ? "values at least 0.1 apart, because a central difference across a tie measures 1/2, which is "
               "not a one-sided derivative; rows with no selected entry are set to 0 after the op, because "
               "their -inf makes every difference NaN"
             : "rows with no selected entry are set to 0 after the op, because their -inf makes every "
               "difference NaN";
  auto add = [&](std::string name, Shape shape, const Tensor& mask, std::optional<std::int64_t> axis, bool keepdim,
                 std::optional<Tensor> rows) {
    GradcheckInput x{.shape = shape, .low = -3, .high = 3};
    if (spaced) {
      x.values = spaced_values(shape);
    }
    registry.add({.op = op, .name = std::move(name),
                  .inputs = {x, mask_input(mask)},
                  .function = [=](std::span<const Var> inputs) {
                    const Tensor mask = inputs[1].value();
                    const Var y = axis ? reduce(inputs[0], mask, *axis, keepdim) : reduce_all(inputs[0], mask);
                    return rows ? finite_rows(y, *rows) : y;
                  },
                  .override_reason = reason});
  };
  add("all_elements", {3, 4}, masks.matrix_with_empty_row, std::nullopt, false, std::nullopt);
  add("axis1_empty_row", {3, 4}, masks.matrix_with_empty_row, 1, false, mask_of({3}, {1, 0, 1}));
  add("axis0_keepdim_mask_row", {3, 4}, masks.row, 0, true, mask_of({1, 4}, {1, 0, 1, 1}));
  add("axis_negative_mask_column", {3, 4}, masks.column_with_empty_row, -1, true, mask_of({3, 1}, {1, 1, 0}));
  add("axis1_tall", {4, 3}, masks.tall_full_rows, 1, false, std::nullopt);
  add("axis0_tall", {4, 3}, masks.tall_full_rows, 0, false, std::nullopt);
  add("one_row", {1, 5}, masks.one_row, 1, false, std::nullopt);
  add("one_column", {5, 1}, masks.one_column, 0, true, std::nullopt);
}

}  // namespace

void register_masked_cases(GradcheckRegistry& registry) {
  const CaseMasks masks;
  register_where_cases(registry, masks);
  register_masked_sum_cases(registry, masks);
  register_masked_mean_cases(registry, masks);
  register_masked_max_like_cases(registry, masks, "masked_max", masked_max, masked_max, true);
  register_masked_max_like_cases(registry, masks, "masked_logsumexp", masked_logsumexp, masked_logsumexp, false);
}

}  // namespace tapegrad
