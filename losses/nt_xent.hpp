#pragma once
// NT-Xent, the normalized temperature-scaled cross-entropy loss of SimCLR (Chen, Kornblith,
// Norouzi and Hinton, "A Simple Framework for Contrastive Learning of Visual Representations",
// ICML 2020, equation 1), composed from the library's ops.
//
// For 2N embeddings z_0 … z_{2N−1}, where each row a has exactly one positive partner p(a):
//
//     s_ab = cos(z_a, z_b) / temperature       cos uses z / max(‖z‖₂, 1e-12), as normalize does
//     l_a  = logsumexp_{k ≠ a} s_ak − s_a,p(a)
//     loss = mean_a l_a   (Reduction::mean, as in the paper)
//          = Σ_a l_a      (Reduction::sum)
//          = [l_0 … l_{2N−1}] in row order  (Reduction::none, shape [2N])
//
// Layouts say which row is whose positive. For N = 3 images, with views x (first) and y (second):
//
//     concatenated, p(a) = (a + N) mod 2N, as in SimCLR and its PyTorch ports:
//         row      0   1   2   3   4   5
//         holds    x0  x1  x2  y0  y1  y2
//         p(row)   3   4   5   0   1   2
//
//     interleaved, p(a) = a xor 1, as in some Keras ports:
//         row      0   1   2   3   4   5
//         holds    x0  y0  x1  y1  x2  y2
//         p(row)   1   0   3   2   5   4
//
// The same pairs in either layout give the same mean and sum, and the same per-anchor losses and
// gradient rows, permuted with the rows.
//
// Graph: normalize rows → u·uᵀ with the transpose passed to BLAS as a flag → scale by
// 1/temperature → masked_logsumexp over each row with the diagonal masked out (stabilized by
// the row maximum over unmasked entries, so float32 stays finite at temperature 0.01 where
// exp(1/temperature) overflows) → subtract the positive logit picked per row → reduce.
// No hand-written VJP: every derivative comes from the ops.
//
// Edges:
// - N = 1 has no negatives: each l_a is exactly 0, and so is the gradient.
// - A zero row has cosine 0 with every row (normalize maps it to zero); the loss stays finite.
// - Errors: empty input, an odd row count in the one-tensor form, input that is not 2-D, rows
//   with no features, views of unequal shape, a temperature that is not positive and finite,
//   a dtype other than f32 and f64, views of two dtypes, and a layout, reduction or
//   implementation value outside its enum. All are raised before anything is recorded.

#include <concepts>
#include <cstdint>

#include "../core/gradcheck_registry.hpp"

namespace tapegrad {

enum class Layout { concatenated, interleaved };
enum class Reduction { mean, sum, none };

// How nt_xent computes the loss. Both give the same values and gradients to rounding.
//   fused     tiles of the similarity matrix with a streaming logsumexp and a hand-written VJP
//             (losses/nt_xent_fused.hpp): memory linear in N, the default.
//   composed  the graph of ops described above, differentiated op by op: memory quadratic in N,
//             kept as the reference that the fused path is tested against.
enum class NtXentImplementation { fused, composed };

struct NtXentOptions {
  // Divides the cosine similarities. Must be positive and finite. 0.5 is SimCLR's setting for
  // CIFAR-10; smaller values sharpen the softmax over negatives.
  double temperature = 0.5;
  Layout layout = Layout::concatenated;
  Reduction reduction = Reduction::mean;
  NtXentImplementation implementation = NtXentImplementation::fused;
  // The fused path keeps the similarity tiles of its forward pass for the backward pass when
  // all of them fit in this many bytes together, a little over (2N)²/2 elements (9 MiB in
  // float32 at N = 1024), and recomputes them tile by tile otherwise, which costs a third more
  // matrix products. 0 always recomputes. Must not be negative. The composed path ignores it.
  std::int64_t fused_cache_bytes = std::int64_t{32} << 20;
};

// NT-Xent of z, shape [2N, D], rows paired by options.layout. Returns a scalar for
// Reduction::mean and Reduction::sum, and shape [2N] for Reduction::none.
Var nt_xent(const Var& z, const NtXentOptions& options = {});

// NT-Xent of two views of N images, each of shape [N, D]: row i of zi and row i of zj are a
// positive pair. The views are stacked in the layout options.layout names, which decides the
// order of the per-anchor losses for Reduction::none.
Var nt_xent_two_views(const Var& zi, const Var& zj, const NtXentOptions& options = {});

// The same, under the name nt_xent. A template, so that nt_xent(z, {}) means the one-tensor form
// with default options: `{}` could make a Var as well, and a template parameter is not deduced
// from `{}`.
template <std::same_as<Var> View>
Var nt_xent(const Var& zi, const View& zj, const NtXentOptions& options = {}) {
  return nt_xent_two_views(zi, zj, options);
}

std::string_view layout_name(Layout layout);
std::string_view reduction_name(Reduction reduction);

void register_nt_xent_cases(GradcheckRegistry& registry);

namespace detail {

// Row `row`'s positive partner in a batch of `rows` = 2N rows paired as `layout` says. Inline,
// because the fused path calls it in its tile loops.
inline std::int64_t positive_of(std::int64_t row, std::int64_t rows, Layout layout) {
  return layout == Layout::concatenated ? (row + rows / 2) % rows : (row ^ 1);
}

// The argument checks that nt_xent and nt_xent_fused share, raising with `op` as the op's name.
// Embeddings must be f32 or f64, 2-D, with rows and features; `argument` names them in messages.
void check_nt_xent_embeddings(std::string_view op, std::string_view argument, const Tensor& z);
// The temperature must be positive and finite and, for embeddings of `dtype`, at least
// 4 / (the dtype's largest value), and each enum a value it defines.
void check_nt_xent_options(std::string_view op, const NtXentOptions& options, Dtype dtype);

}  // namespace detail

}  // namespace tapegrad
