#include "nt_xent.hpp"

#include <cmath>
#include <limits>
#include <vector>

#include "../ops/ops.hpp"
#include "nt_xent_fused.hpp"

namespace tapegrad {

namespace detail {

// Checks the options before anything is recorded: a layout or reduction outside its enum would
// otherwise be taken as interleaved or none, or be rejected by the fused path after the two-view
// form had recorded its concat.
void check_nt_xent_options(std::string_view op, const NtXentOptions& options, Dtype dtype) {
  if (!(options.temperature > 0.0) || !std::isfinite(options.temperature)) {
    raise<ValueError>(op, "the temperature must be positive and finite", "temperature {}", options.temperature);
  }
  // Logits lie in [-1/temperature, 1/temperature], so the loss and the differences the
  // logsumexp takes reach 2/temperature plus log(2N - 1). Below this bound they overflow the
  // dtype and the loss becomes inf or NaN.
  const double largest = dtype == Dtype::f32 ? std::numeric_limits<float>::max() : std::numeric_limits<double>::max();
  const double smallest_temperature = 4.0 / largest;
  if (options.temperature < smallest_temperature) {
    raise<ValueError>(op,
                      fmt::format("the temperature must be at least {:.3g} for {} embeddings (4 over the largest {} "
                                  "value), so that logit differences stay finite",
                                  smallest_temperature, dtype, dtype),
                      "temperature {}", options.temperature);
  }
  if (options.layout != Layout::concatenated && options.layout != Layout::interleaved) {
    raise<ValueError>(op, "the layout must be concatenated or interleaved", "layout value {}",
                      static_cast<int>(options.layout));
  }
  if (options.reduction != Reduction::mean && options.reduction != Reduction::sum &&
      options.reduction != Reduction::none) {
    raise<ValueError>(op, "the reduction must be mean, sum or none", "reduction value {}",
                      static_cast<int>(options.reduction));
  }
  if (options.implementation != NtXentImplementation::fused &&
      options.implementation != NtXentImplementation::composed) {
    raise<ValueError>(op, "the implementation must be fused or composed", "implementation value {}",
                      static_cast<int>(options.implementation));
  }
  if (options.fused_cache_bytes < 0) {
    raise<ValueError>(op, "fused_cache_bytes must be 0 (always recompute the tiles) or positive",
                      "fused_cache_bytes {}", options.fused_cache_bytes);
  }
}

void check_nt_xent_embeddings(std::string_view op, std::string_view argument, const Tensor& z) {
  if (!is_floating(z.dtype())) {
    raise<DtypeError>(op, "embeddings must be f32 or f64", "{} of dtype {} and shape {}", argument, z.dtype(),
                      z.shape());
  }
  if (z.rank() != 2) {
    raise<ShapeError>(op, "embeddings must be 2-D (one row per sample)", "{} of shape {}", argument, z.shape());
  }
  if (z.size(0) == 0) {
    raise<ShapeError>(op, "the batch must not be empty", "{} of shape {}", argument, z.shape());
  }
  if (z.size(1) == 0) {
    raise<ShapeError>(op, "each row needs at least one feature", "{} of shape {}", argument, z.shape());
  }
}

}  // namespace detail

namespace {

// True everywhere but on the diagonal: each anchor's logsumexp runs over every other row.
Tensor off_diagonal_mask(Tape& tape, std::int64_t rows) {
  Tensor mask = tape.allocate({rows, rows}, Dtype::boolean);
  bool* entries = mask.data<bool>();
  for (std::int64_t a = 0; a < rows; ++a) {
    for (std::int64_t b = 0; b < rows; ++b) {
      entries[a * rows + b] = a != b;
    }
  }
  return mask;
}

}  // namespace

std::string_view layout_name(Layout layout) {
  return layout == Layout::concatenated ? "concatenated" : "interleaved";
}

std::string_view reduction_name(Reduction reduction) {
  switch (reduction) {
    case Reduction::mean: return "mean";
    case Reduction::sum: return "sum";
    case Reduction::none: return "none";
  }
  return "unknown";
}

Var nt_xent(const Var& z, const NtXentOptions& options) {
  Tape& tape = common_tape("nt_xent", {z});
  detail::check_nt_xent_embeddings("nt_xent", "z", z.value());
  detail::check_nt_xent_options("nt_xent", options, z.dtype());
  const std::int64_t rows = z.value().size(0);
  if (rows % 2 != 0) {
    raise<ShapeError>("nt_xent", "z must have an even number of rows (2N: two views of N samples)",
                      "z of shape {}", z.shape());
  }
  if (options.implementation == NtXentImplementation::fused) {
    return nt_xent_fused(z, options);
  }

  // s = u·uᵀ / temperature, [2N, D]·[D, 2N] → [2N, 2N], the transpose handed to BLAS as a flag.
  const Var u = normalize(z, 1);
  // Divided by the temperature, not multiplied by its reciprocal, because for a subnormal
  // temperature 1 / temperature overflows to inf outside the tape. Anomaly mode checks only ops
  // whose inputs and scalar are finite, so it could then not name the overflow.
  const Var logits = matmul(u, u, {.transpose_b = true}) / options.temperature;

  const Var negatives_and_positive = masked_logsumexp(logits, off_diagonal_mask(tape, rows), 1);
  // Index scratch kept per thread (one tape per thread), so a steady training loop reuses its
  // capacity instead of allocating every step.
  thread_local std::vector<std::int64_t> positives;
  positives.resize(static_cast<std::size_t>(rows));
  for (std::int64_t a = 0; a < rows; ++a) {
    positives[static_cast<std::size_t>(a)] = detail::positive_of(a, rows, options.layout);
  }
  const Var per_anchor = negatives_and_positive - select_per_row(logits, positives);

  switch (options.reduction) {
    case Reduction::mean: return mean(per_anchor);
    case Reduction::sum: return sum(per_anchor);
    case Reduction::none: return per_anchor;
  }
  return per_anchor;
}

Var nt_xent_two_views(const Var& zi, const Var& zj, const NtXentOptions& options) {
  common_tape("nt_xent", {zi, zj});
  detail::check_nt_xent_embeddings("nt_xent", "zi", zi.value());
  detail::check_nt_xent_embeddings("nt_xent", "zj", zj.value());
  if (zi.shape() != zj.shape()) {
    raise<ShapeError>("nt_xent", "the two views must have the same shape [N, D] (row i of each is a pair)",
                      "zi of shape {} and zj of shape {}", zi.shape(), zj.shape());
  }
  if (zi.dtype() != zj.dtype()) {
    raise<DtypeError>("nt_xent", "the two views must have the same dtype", "zi of dtype {} and zj of dtype {}",
                      zi.dtype(), zj.dtype());
  }
  detail::check_nt_xent_options("nt_xent", options, zi.dtype());

  const Var stacked = concat({zi, zj}, 0);
  if (options.layout == Layout::concatenated) {
    return nt_xent(stacked, options);
  }
  // Interleave: row 2i is zi[i] and row 2i + 1 is zj[i].
  const std::int64_t n = zi.value().size(0);
  thread_local std::vector<std::int64_t> order;
  order.resize(static_cast<std::size_t>(2 * n));
  for (std::int64_t i = 0; i < n; ++i) {
    order[static_cast<std::size_t>(2 * i)] = i;
    order[static_cast<std::size_t>(2 * i + 1)] = n + i;
  }
  return nt_xent(select_rows(stacked, order), options);
}

}  // namespace tapegrad

namespace tapegrad {

void register_nt_xent_cases(GradcheckRegistry& registry) {
  struct Size {
    std::int64_t n;
    std::int64_t d;
    double temperature;
  };
  // N from 1 (no negatives) to 8, D from 1 (every normalized row is ±1) to 16, temperatures
  // 0.05 to 2. Each size runs in every layout and reduction.
  const Size sizes[] = {{1, 3, 0.5}, {2, 1, 1.0}, {3, 4, 0.5}, {4, 2, 2.0}, {5, 16, 0.05}, {8, 6, 0.2}};
  const Layout layouts[] = {Layout::concatenated, Layout::interleaved};
  const Reduction reductions[] = {Reduction::mean, Reduction::sum, Reduction::none};
  std::uint64_t seed = 1;
  for (const Size& size : sizes) {
    for (Layout layout : layouts) {
      for (Reduction reduction : reductions) {
        const NtXentOptions options{.temperature = size.temperature, .layout = layout, .reduction = reduction};
        registry.add({
            .op = "nt_xent",
            .name = fmt::format("{}_{}_n{}_d{}_t{}", layout_name(layout), reduction_name(reduction), size.n,
                                size.d, size.temperature),
            .inputs = {{.shape = {2 * size.n, size.d}}},
            .function = [options](std::span<const Var> inputs) { return nt_xent(inputs[0], options); },
            .seed = seed++,
        });
      }
    }
  }

  // A zero row is a constant: normalize is not differentiable at the zero vector for any step
  // larger than its eps (1e-12), so only the other rows are checked.
  registry.add({
      .op = "nt_xent",
      .name = "zero_row_constant",
      .inputs = {{.shape = {5, 4}}, {.shape = {1, 4}, .differentiable = false, .values = Tensor::zeros({1, 4})}},
      .function = [](std::span<const Var> inputs) { return nt_xent(concat({inputs[0], inputs[1]}, 0)); },
  });
  // Identical views: the same leaf is both views, so every gradient row gets two contributions.
  for (Layout layout : layouts) {
    registry.add({
        .op = "nt_xent",
        .name = fmt::format("identical_views_{}", layout_name(layout)),
        .inputs = {{.shape = {3, 5}}},
        .function = [layout](std::span<const Var> inputs) {
          return nt_xent(inputs[0], inputs[0], {.temperature = 0.3, .layout = layout});
        },
    });
  }
  // Two views of different leaves, reduction none, so the view stacking is checked too.
  for (Layout layout : layouts) {
    registry.add({
        .op = "nt_xent",
        .name = fmt::format("two_views_{}_none", layout_name(layout)),
        .inputs = {{.shape = {3, 4}}, {.shape = {3, 4}}},
        .function = [layout](std::span<const Var> inputs) {
          return nt_xent(inputs[0], inputs[1], {.temperature = 0.5, .layout = layout, .reduction = Reduction::none});
        },
    });
  }
}

}  // namespace tapegrad
