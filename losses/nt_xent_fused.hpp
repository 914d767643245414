#pragma once
// NT-Xent computed in tiles, never holding the [2N, 2N] similarity matrix: the same loss as the
// composed nt_xent, with a hand-written VJP because the composed graph needs O(N²) memory.
//
// With R = 2N rows, u_a = z_a / max(‖z_a‖₂, 1e-12) and s_ab = ⟨u_a, u_b⟩ / temperature:
//
//   value: lse_a = logsumexp_{b ≠ a} s_ab,   l_a = lse_a − s_a,p(a),
//          reduced as options.reduction selects (mean over the R anchors, sum, or none).
//          s is symmetric, so only tiles (I, J) with I ≤ J are computed, each with one BLAS
//          product (?syrk for the upper triangle of a diagonal tile). Rows have norm at most 1,
//          so s_ab ≤ c = 1/temperature, and each exponential e_ab = exp(s_ab − c) is taken once
//          and added to the sums of both row a and row b: lse_a = c + log Σ_b e_ab (the bounded
//          shift). It is exact to rounding while e^(−2c) is a normal number with room to spare:
//          2c ≤ 80 in float32 (temperature ≥ 0.025) and 2c ≤ 700 in float64. Colder
//          temperatures, and N = 1, keep a running maximum and a running sum per row instead, as
//          a streaming logsumexp, with each tile read along its rows and then down its columns.
//   VJP:   with w_a the cotangent of l_a (the seed divided by R for mean) and
//          P_ab = exp(s_ab − lse_a), the softmax over b ≠ a,
//            ∂L/∂s_ab = w_a (P_ab − [b = p(a)])  for b ≠ a, and 0 on the diagonal.
//          Because s_ab = s_ba and p is an involution, the gradient of u is
//            ū = (H u − q) / temperature,   H_ab = w_a P_ab + w_b P_ba  (H_aa = 0),
//            q_a = (w_a + w_p(a)) u_p(a),
//          where H is symmetric and formed tile by tile, from the forward's kept tiles or from
//          tiles computed again: Ū_I += H_IJ U_J and, for I < J, Ū_J += H_IJᵀ U_I (?symm for
//          I = J). Under the bounded shift, P_ab = e_ab·exp(c − lse_a). Then the VJP of normalize: z̄_a = (ū_a − u_a⟨u_a, ū_a⟩) / ‖z_a‖ when
//          ‖z_a‖ > 1e-12, and ū_a / 1e-12 otherwise (the convention of normalize).
//   shape: z is [R, D] with R even and positive, D positive, f32 or f64. The result is a
//          scalar for mean and sum and [R] for none, in z's dtype.
//   memory: beyond z and its gradient, O(R·D) for u and one gradient buffer per extra thread,
//          O(R) per thread for the running sums, and one tile buffer per thread
//          (fused_tile_rows² elements). When all tiles together, about R²/2 elements, fit in
//          options.fused_cache_bytes (32 MiB unless set: up to N = 1985 in float32 and 1386 in
//          float64), the forward keeps them until Tape::clear() and the backward skips a third of
//          its matrix products.
//          Otherwise nothing of size R² is held.
//   edges: N = 1 (R = 2) has no negatives, so each l_a and the gradient are exactly 0. A zero
//          row has cosine 0 with every row. A temperature of 0.01 stays finite in f32 because
//          below the bounded shift's limit each exponential is taken after subtracting the
//          row's running maximum.
//   threads: tile pairs are spread over OpenMP threads (omp_get_max_threads()), each calling
//          BLAS on its own tiles. NOTE: while any fused call runs, OpenBLAS is set to one thread
//          (openblas_set_num_threads, a process-wide setting) and restored when the last one
//          ends, so the two thread pools do not oversubscribe the cores. BLAS calls made by
//          other threads during that time run single-threaded.
//   determinism: bit-identical for the same input and the same OpenMP thread count, on any
//          thread and whatever other threads run. A different thread count adds the per-thread
//          partial sums in another order, which changes the last bits (docs/threads.md).
//   errors: as nt_xent: DtypeError for a dtype other than f32 and f64; ShapeError for input that
//          is not 2-D, is empty, has no features or an odd row count; ValueError for a
//          temperature that is not positive and finite, and for a negative fused_cache_bytes. All are raised before anything is
//          recorded.

#include <cstdint>

#include "nt_xent.hpp"

namespace tapegrad {

// Rows of z per tile. A tile of similarities has fused_tile_rows² elements.
inline constexpr std::int64_t fused_tile_rows = 256;

// NT-Xent of z, shape [2N, D], with rows paired as options.layout selects, computed in tiles.
// options.implementation is ignored: this is the fused implementation.
Var nt_xent_fused(const Var& z, const NtXentOptions& options = {});

void register_nt_xent_fused_cases(GradcheckRegistry& registry);

namespace detail {

// Writes y[i] = eˣ⁽ⁱ⁾ for count elements with a polynomial that the compiler vectorizes.
// Accuracy against std::exp: within 1 ulp in float and 4 ulp (below 1e-15 relative) in double for normal
// results.
// Results below the smallest normal number round once to a subnormal, and overflow gives +inf,
// -inf gives 0 and NaN stays NaN, as std::exp does.
void exp_elements(const float* x, float* y, std::int64_t count);
void exp_elements(const double* x, double* y, std::int64_t count);

}  // namespace detail

}  // namespace tapegrad
