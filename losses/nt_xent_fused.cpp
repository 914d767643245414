#include "nt_xent_fused.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>

#include <cblas.h>
#include <omp.h>

#include "../ops/common.hpp"
#include "../ops/normalize.hpp"
#include "../ops/shape_ops.hpp"

namespace tapegrad {
namespace {

constexpr std::string_view op_name = "nt_xent_fused";
// The clamp of normalize: a row is divided by max(‖z‖₂, norm_eps).
constexpr double norm_eps = 1e-12;

// ---- Vectorizable exponential ------------------------------------------------------------------
//
// eˣ = 2ᵏ·eʳ with k = round(x·log₂e) and r = x − k·ln2 in [−ln2/2, ln2/2]. k·ln2 is subtracted in
// two parts (Cody and Waite): ln2_high has few enough significant bits that k·ln2_high is exact.
// eʳ is a Taylor polynomial, degree 7 in float (truncation below 6e-9 relative) and degree 12 in
// double (below 2e-16). 2ᵏ is built from exponent bits in two factors 2^k₁·2^k₂, so results in
// the subnormal range are rounded once and overflow still reaches +inf. Rounding to an integer
// uses the 1.5·2^m trick (adding it leaves k in the low mantissa bits), so no float-to-integer
// conversion happens and NaN passes through.

template <class T>
struct ExpConstants;

template <>
struct ExpConstants<float> {
  using Bits = std::uint32_t;
  static constexpr float lowest = -104.0F;   // e^-104 is below half the smallest subnormal: 0
  static constexpr float highest = 89.0F;    // e^89 exceeds FLT_MAX: +inf
  static constexpr float log2e = 1.44269504F;
  static constexpr float ln2_high = 0.693115234375F;  // ln 2 rounded to 12 significant bits
  static constexpr float ln2_low = 3.19461833e-05F;   // ln 2 − ln2_high
  static constexpr float round_magic = 12582912.0F;   // 1.5·2^23
  static constexpr Bits mantissa_bits = 23;
  static constexpr Bits exponent_bias = 127;
  static constexpr int degree = 7;
};

template <>
struct ExpConstants<double> {
  using Bits = std::uint64_t;
  static constexpr double lowest = -746.0;  // e^-746 is below half the smallest subnormal: 0
  static constexpr double highest = 710.0;  // e^710 exceeds DBL_MAX: +inf
  static constexpr double log2e = 1.4426950408889634;
  static constexpr double ln2_high = 0x1.62e42ffp-1;             // ln 2 rounded to 32 significant bits
  static constexpr double ln2_low = -0x1.718432a1b0e26p-35;      // ln 2 − ln2_high
  static constexpr double round_magic = 6755399441055744.0;      // 1.5·2^52
  static constexpr Bits mantissa_bits = 52;
  static constexpr Bits exponent_bias = 1023;
  static constexpr int degree = 12;
};

// 2ᵏ for an integer-valued k whose biased exponent k + bias lies in [1, 2·bias].
template <class T>
[[gnu::always_inline]] inline T power_of_two(T k) {
  using C = ExpConstants<T>;
  using Bits = typename C::Bits;
  const Bits k_bits = std::bit_cast<Bits>(k + C::round_magic) - std::bit_cast<Bits>(C::round_magic);
  return std::bit_cast<T>((k_bits + C::exponent_bias) << C::mantissa_bits);
}

// 1/j! for j = 0 … degree, computed in double and rounded once to T.
template <class T, int degree>
constexpr std::array<T, degree + 1> taylor_coefficients() {
  std::array<T, degree + 1> coefficients{};
  double factorial = 1.0;
  for (int j = 0; j <= degree; ++j) {
    factorial *= j > 0 ? static_cast<double>(j) : 1.0;
    coefficients[static_cast<std::size_t>(j)] = static_cast<T>(1.0 / factorial);
  }
  return coefficients;
}

// Writes k = round(x·log₂e) and returns eʳ for r = x − k·ln2, so that eˣ = eʳ·2ᵏ.
template <class T>
[[gnu::always_inline]] inline T exp_reduced(T x, T& k) {
  using C = ExpConstants<T>;
  k = (x * C::log2e + C::round_magic) - C::round_magic;
  const T r = (x - k * C::ln2_high) - k * C::ln2_low;

  // Horner's rule over the coefficients 1/j!, highest degree first.
  constexpr auto coefficients = taylor_coefficients<T, C::degree>();
  T p = coefficients[C::degree];
  for (int j = C::degree - 1; j >= 0; --j) {
    p = p * r + coefficients[static_cast<std::size_t>(j)];
  }
  return p;
}

template <class T>
[[gnu::always_inline]] inline T exp_polynomial(T x) {
  using C = ExpConstants<T>;
  x = x < C::lowest ? C::lowest : x;
  x = x > C::highest ? C::highest : x;
  T k;
  const T p = exp_reduced(x, k);

  // Split k so that each factor is a normal number; the first product is exact.
  const T k_first = (k * T{0.5} + C::round_magic) - C::round_magic;
  const T k_second = k - k_first;
  return (p * power_of_two(k_first)) * power_of_two(k_second);
}

// ---- Reductions over contiguous rows -------------------------------------------------------
//
// Floating-point max and sum reductions do not vectorize without -ffast-math, because the order
// changes the result. Keeping `lanes` independent accumulators fixes an order that the compiler
// can map onto vector registers.

constexpr std::int64_t lanes = 16;

template <class T>
[[gnu::always_inline]] inline T max_of(const T* x, std::int64_t count) {
  T partial[lanes];
  std::fill_n(partial, lanes, -std::numeric_limits<T>::infinity());
  std::int64_t i = 0;
  for (; i + lanes <= count; i += lanes) {
    for (std::int64_t k = 0; k < lanes; ++k) {
      partial[k] = x[i + k] > partial[k] ? x[i + k] : partial[k];
    }
  }
  for (; i < count; ++i) {
    partial[0] = x[i] > partial[0] ? x[i] : partial[0];
  }
  T result = partial[0];
  for (std::int64_t k = 1; k < lanes; ++k) {
    result = partial[k] > result ? partial[k] : result;
  }
  return result;
}

// Σᵢ x[i], accumulated in T and returned as double.
template <class T>
[[gnu::always_inline]] inline double sum_of(const T* x, std::int64_t count) {
  T partial[lanes] = {};
  std::int64_t i = 0;
  for (; i + lanes <= count; i += lanes) {
    for (std::int64_t k = 0; k < lanes; ++k) {
      partial[k] += x[i + k];
    }
  }
  for (; i < count; ++i) {
    partial[0] += x[i];
  }
  double result = 0.0;
  for (std::int64_t k = 0; k < lanes; ++k) {
    result += static_cast<double>(partial[k]);
  }
  return result;
}

// Σᵢ exp(x[i] − shift), accumulated in T within the row and returned as double.
template <class T>
[[gnu::always_inline]] inline double sum_exp_shifted(const T* x, T shift, std::int64_t count) {
  T partial[lanes] = {};
  std::int64_t i = 0;
  for (; i + lanes <= count; i += lanes) {
    for (std::int64_t k = 0; k < lanes; ++k) {
      partial[k] += exp_polynomial(x[i + k] - shift);
    }
  }
  for (; i < count; ++i) {
    partial[0] += exp_polynomial(x[i] - shift);
  }
  double result = 0.0;
  for (std::int64_t k = 0; k < lanes; ++k) {
    result += static_cast<double>(partial[k]);
  }
  return result;
}

// Σᵢ x[i]·y[i] in double. The fixed lanes make the order of the sum the same on every CPU.
template <class T>
[[gnu::always_inline]] inline double dot_in_double(const T* x, const T* y, std::int64_t count) {
  double partial[lanes] = {};
  std::int64_t i = 0;
  for (; i + lanes <= count; i += lanes) {
    for (std::int64_t k = 0; k < lanes; ++k) {
      partial[k] += static_cast<double>(x[i + k]) * static_cast<double>(y[i + k]);
    }
  }
  for (; i < count; ++i) {
    partial[0] += static_cast<double>(x[i]) * static_cast<double>(y[i]);
  }
  double result = 0.0;
  for (std::int64_t k = 0; k < lanes; ++k) {
    result += partial[k];
  }
  return result;
}

// ---- Tiles -----------------------------------------------------------------------------------

// A block of rows [begin, end) of the batch.
struct Block {
  std::int64_t begin;
  std::int64_t end;
  std::int64_t size() const { return end - begin; }
};

// What every tile of one call shares.
template <class T>
struct TileProblem {
  std::int64_t rows;
  std::int64_t features;
  const T* u;  // [rows, features], normalized rows
  T inverse_temperature;
  Layout layout;
};

// Writes s = u_I·u_Jᵀ / temperature into `tile` ([|I|, |J|], row-major), the transpose handed to
// BLAS as a flag. A diagonal tile (I = J) is filled in one of two ways:
//   full:  made exactly symmetric, so s_ab and s_ba agree bit for bit, with -inf on the diagonal,
//          which removes b = a from every logsumexp (the running-maximum path);
//   upper: only b ≥ a, by ?syrk at half the multiply-adds; the lower triangle is left as it was
//          (the bounded shift, whose loops read b > a only).
enum class DiagonalTile { full, upper };

template <class T>
void compute_similarity_tile(const TileProblem<T>& problem, Block rows_i, Block rows_j, DiagonalTile fill, T* tile) {
  const auto m = static_cast<blasint>(rows_i.size());
  const auto n = static_cast<blasint>(rows_j.size());
  const auto k = static_cast<blasint>(problem.features);
  const T* u_i = problem.u + rows_i.begin * problem.features;
  const T* u_j = problem.u + rows_j.begin * problem.features;
  const bool diagonal = rows_i.begin == rows_j.begin;
  if (diagonal && fill == DiagonalTile::upper) {
    // [|I|, D]·[D, |I|] → [|I|, |I|], upper triangle
    if constexpr (std::is_same_v<T, float>) {
      cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, m, k, problem.inverse_temperature, u_i, k, 0.0F, tile, n);
    } else {
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, m, k, problem.inverse_temperature, u_i, k, 0.0, tile, n);
    }
    return;
  }
  // [|I|, D]·[D, |J|] → [|I|, |J|]
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, problem.inverse_temperature, u_i, k, u_j, k, 0.0F,
                tile, n);
  } else {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, problem.inverse_temperature, u_i, k, u_j, k, 0.0,
                tile, n);
  }
  if (diagonal) {
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t j = 0; j < i; ++j) {
        tile[i * n + j] = tile[j * n + i];
      }
      tile[i * n + i] = -std::numeric_limits<T>::infinity();
    }
  }
}

// Running logsumexp of each row: the maximum seen so far and the sum of exp(s − maximum).
struct RunningLogsumexp {
  double* maximum;
  double* sum;
};

// Folds a block of entries with maximum `block_maximum` and Σ exp(s − shift) = `block_sum`, where
// shift = max(state maximum, block maximum), into the running state of one row.
inline void fold(RunningLogsumexp state, std::int64_t row, double shift, double block_sum) {
  const double previous = state.maximum[row];
  const double rescale = previous == -std::numeric_limits<double>::infinity() ? 0.0 : std::exp(previous - shift);
  state.sum[row] = state.sum[row] * rescale + block_sum;
  state.maximum[row] = shift;
}

// Updates the running logsumexp of the rows of I over the columns of J and, for an off-diagonal
// tile, of the rows of J over the rows of I (s is symmetric). Records s_a,p(a) for each row a
// whose positive lies in the other block. `scratch` has room for 2·|J| elements.
template <class T>
[[gnu::always_inline]] inline void accumulate_tile(const TileProblem<T>& problem, Block rows_i, Block rows_j,
                                                   const T* tile, T* scratch, RunningLogsumexp state,
                                                   T* positive_logits) {
  constexpr T negative_infinity = -std::numeric_limits<T>::infinity();
  const std::int64_t width = rows_j.size();

  for (std::int64_t i = 0; i < rows_i.size(); ++i) {
    const std::int64_t a = rows_i.begin + i;
    const T* row = tile + i * width;
    const T block_maximum = max_of(row, width);
    if (block_maximum == negative_infinity) {
      continue;  // a one-row diagonal tile: nothing but the masked diagonal
    }
    const T shift = std::max(static_cast<T>(state.maximum[a]), block_maximum);
    fold(state, a, shift, sum_exp_shifted(row, shift, width));
    const std::int64_t partner = detail::positive_of(a, problem.rows, problem.layout);
    if (partner >= rows_j.begin && partner < rows_j.end) {
      positive_logits[a] = row[partner - rows_j.begin];
    }
  }
  if (rows_i.begin == rows_j.begin) {
    return;
  }

  // Rows of J, read down the columns of the tile: one vector lane per column.
  T* column_shift = scratch;
  T* column_sum = scratch + width;
  std::fill_n(column_shift, width, negative_infinity);
  for (std::int64_t i = 0; i < rows_i.size(); ++i) {
    const T* row = tile + i * width;
    for (std::int64_t j = 0; j < width; ++j) {
      column_shift[j] = row[j] > column_shift[j] ? row[j] : column_shift[j];
    }
  }
  for (std::int64_t j = 0; j < width; ++j) {
    const T previous = static_cast<T>(state.maximum[rows_j.begin + j]);
    column_shift[j] = previous > column_shift[j] ? previous : column_shift[j];
    column_sum[j] = T{0};
  }
  for (std::int64_t i = 0; i < rows_i.size(); ++i) {
    const T* row = tile + i * width;
    for (std::int64_t j = 0; j < width; ++j) {
      column_sum[j] += exp_polynomial(row[j] - column_shift[j]);
    }
  }
  for (std::int64_t j = 0; j < width; ++j) {
    const std::int64_t b = rows_j.begin + j;
    fold(state, b, static_cast<double>(column_shift[j]), static_cast<double>(column_sum[j]));
    const std::int64_t partner = detail::positive_of(b, problem.rows, problem.layout);
    if (partner >= rows_i.begin && partner < rows_i.end) {
      positive_logits[b] = tile[(partner - rows_i.begin) * width + j];
    }
  }
}

// Writes H_ab = w_a·exp(s_ab − lse_a) + w_b·exp(s_ab − lse_b) into `tile`, reading s from
// `similarities` (which may be `tile` itself). The diagonal contains -inf, so H_aa = 0.
template <class T>
[[gnu::always_inline]] inline void weight_tile(Block rows_i, Block rows_j, const T* weights, const T* lse,
                                               const T* similarities, T* tile) {
  const std::int64_t width = rows_j.size();
  const T* weights_j = weights + rows_j.begin;
  const T* lse_j = lse + rows_j.begin;
  for (std::int64_t i = 0; i < rows_i.size(); ++i) {
    const T weight_a = weights[rows_i.begin + i];
    const T lse_a = lse[rows_i.begin + i];
    const T* source = similarities + i * width;
    T* row = tile + i * width;
    for (std::int64_t j = 0; j < width; ++j) {
      const T s = source[j];
      row[j] = weight_a * exp_polynomial(s - lse_a) + weights_j[j] * exp_polynomial(s - lse_j[j]);
    }
  }
}

// ---- Tiles under the bounded shift -----------------------------------------------------------
//
// Every row of u has norm at most 1 (to rounding), so every logit s_ab = ⟨u_a, u_b⟩/temperature
// is at most c = 1/temperature. Subtracting c instead of each row's running maximum lets one
// exponential e_ab = exp(s_ab − c) serve row a, row b (s is symmetric) and the backward pass:
//   lse_a = c + log Σ_b e_ab,   exp(s_ab − lse_a) = e_ab·g_a  with g_a = exp(c − lse_a).
// Every term has s_ab − c ≥ −2c, so this is exact to rounding while e^(−2c) is a normal number
// with room to spare. That needs 2c ≤ 80 in float (e^−80 ≈ 1.8e−35, and the smallest normal is
// about e^−87.3) and 2c ≤ 700 in double (smallest normal about e^−708.4). Then g_a ≤ e^(2c) cannot overflow
// either. Colder temperatures take the running-maximum path above, and so does N = 1, where the
// running maximum makes lse_a = s_a,p(a) exactly and with it a loss and gradient of exactly 0.
template <class T>
bool bounded_shift_applies(std::int64_t rows, double temperature) {
  const double exponent_limit = std::is_same_v<T, float> ? 80.0 : 700.0;
  return rows > 2 && 2.0 / temperature <= exponent_limit;
}

// Returns eˣ for x in the range the bounded shift produces, [−2c − 1, 1] with 2c ≤ 80 in float
// and 700 in double. It is exp_polynomial without the clamps and with one power of two, because
// 2ᵏ stays a normal number there. Not for -inf, NaN or x outside that range.
template <class T>
[[gnu::always_inline]] inline T exp_bounded(T x) {
  T k;
  const T p = exp_reduced(x, k);
  return p * power_of_two(k);
}

// Records s_a,p(a) for each row a of I or J whose positive lies in the other block of the tile or,
// for a diagonal tile, in the same block, read from its upper triangle.
template <class T>
[[gnu::always_inline]] inline void record_positive_logits(const TileProblem<T>& problem, Block rows_i, Block rows_j,
                                                          const T* tile, T* positive_logits) {
  const std::int64_t width = rows_j.size();
  const bool diagonal = rows_i.begin == rows_j.begin;
  for (std::int64_t i = 0; i < rows_i.size(); ++i) {
    const std::int64_t partner = detail::positive_of(rows_i.begin + i, problem.rows, problem.layout);
    if (partner >= rows_j.begin && partner < rows_j.end) {
      const std::int64_t j = partner - rows_j.begin;
      positive_logits[rows_i.begin + i] = diagonal ? tile[std::min(i, j) * width + std::max(i, j)] : tile[i * width + j];
    }
  }
  if (diagonal) {
    return;
  }
  for (std::int64_t j = 0; j < width; ++j) {
    const std::int64_t partner = detail::positive_of(rows_j.begin + j, problem.rows, problem.layout);
    if (partner >= rows_i.begin && partner < rows_i.end) {
      positive_logits[rows_j.begin + j] = tile[(partner - rows_i.begin) * width + j];
    }
  }
}

// Overwrites the tile's s_ab with e_ab = exp(s_ab − c) and adds each e_ab to sums[a] and sums[b]:
// over the whole of an off-diagonal tile, and over the part b > a of a diagonal one (its upper
// triangle, which contains each pair a ≠ b once), where e_aa is set to 0. Row sums gather in `lanes`
// partial sums and column sums in `column_sums` (|J| elements), both in T within the tile, then
// in double across tiles.
template <class T>
[[gnu::always_inline]] inline void accumulate_tile_bounded(const TileProblem<T>& problem, Block rows_i, Block rows_j,
                                                           T* tile, T* column_sums, double* sums, T* positive_logits) {
  record_positive_logits(problem, rows_i, rows_j, tile, positive_logits);
  const std::int64_t width = rows_j.size();
  const T shift = problem.inverse_temperature;
  const bool diagonal = rows_i.begin == rows_j.begin;
  std::fill_n(column_sums, width, T{0});
  // Three passes over a row that stays in L1 cache: one loop doing all three ran out of vector
  // registers and ran at half the speed.
  for (std::int64_t i = 0; i < rows_i.size(); ++i) {
    const std::int64_t first = diagonal ? i + 1 : 0;
    T* __restrict row = tile + i * width;
    for (std::int64_t j = first; j < width; ++j) {
      row[j] = exp_bounded(row[j] - shift);
    }
    if (diagonal) {
      row[i] = T{0};
    }
    sums[rows_i.begin + i] += sum_of(row + first, width - first);
    T* __restrict columns = column_sums;
    for (std::int64_t j = first; j < width; ++j) {
      columns[j] += row[j];
    }
  }
  for (std::int64_t j = 0; j < width; ++j) {
    sums[rows_j.begin + j] += static_cast<double>(column_sums[j]);
  }
}

// Writes H_ab = (e_ab·g_a)·w_a + (e_ab·g_b)·w_b into `tile`, where `source` contains e_ab when
// `exponentials` is true (a kept tile) and s_ab otherwise (a recomputed one, which may be `tile`
// itself). e_ab·g_a = exp(s_ab − lse_a) ≤ 1 is formed first, so a large cotangent w cannot
// overflow where the product it stands for does not. A diagonal tile gets its upper triangle
// only, with H_aa = 0, as ?symm reads it.
template <class T, bool exponentials>
[[gnu::always_inline]] inline void weight_tile_bounded(Block rows_i, Block rows_j, const T* weights, const T* gains,
                                                       T shift, const T* source, T* tile) {
  const std::int64_t width = rows_j.size();
  const bool diagonal = rows_i.begin == rows_j.begin;
  const T* weights_j = weights + rows_j.begin;
  const T* gains_j = gains + rows_j.begin;
  for (std::int64_t i = 0; i < rows_i.size(); ++i) {
    const std::int64_t first = diagonal ? i + 1 : 0;
    const T weight_a = weights[rows_i.begin + i];
    const T gain_a = gains[rows_i.begin + i];
    const T* in = source + i * width;
    T* row = tile + i * width;
    for (std::int64_t j = first; j < width; ++j) {
      const T e = exponentials ? in[j] : exp_bounded(in[j] - shift);
      row[j] = (e * gain_a) * weight_a + (e * gains_j[j]) * weights_j[j];
    }
    if (diagonal) {
      row[i] = T{0};
    }
  }
}

// weight_tile_bounded with `exponentials` chosen at run time, one loop compiled for each value.
template <class T>
[[gnu::always_inline]] inline void weight_tile_bounded(Block rows_i, Block rows_j, const T* weights, const T* gains,
                                                       T shift, bool exponentials, const T* source, T* tile) {
  if (exponentials) {
    weight_tile_bounded<T, true>(rows_i, rows_j, weights, gains, shift, source, tile);
  } else {
    weight_tile_bounded<T, false>(rows_i, rows_j, weights, gains, shift, source, tile);
  }
}

// What the last pass of the backward reads: the per-thread partial Ū beyond thread 0's, the
// weights w_a, u and the norms.
template <class T>
struct GradientRows {
  std::int64_t rows;
  std::int64_t features;
  int threads;
  const T* extra;  // [threads − 1, rows, features]
  const T* weights;
  const T* u;
  const double* norms;
  T inverse_temperature;
  Layout layout;
};

// Writes u_a = z_a / max(‖z_a‖₂, norm_eps) and the unclamped norms ‖z_a‖₂, summed in double.
template <class T>
[[gnu::always_inline]] inline void normalize_rows(const T* z, std::int64_t rows, std::int64_t features, T* u,
                                                  double* norms) {
  for (std::int64_t a = 0; a < rows; ++a) {
    const T* row = z + a * features;
    norms[a] = std::sqrt(dot_in_double(row, row, features));
    if (std::isinf(norms[a])) {
      norms[a] = detail::rescaled_norm(row, features, 1);  // f64 rows above about 1e154
    }
    // The scale is rounded to T once, so the row is scaled in T's own vector width.
    const T inverse = static_cast<T>(1.0 / std::max(norms[a], norm_eps));
    T* out = u + a * features;
    for (std::int64_t k = 0; k < features; ++k) {
      out[k] = row[k] * inverse;
    }
  }
}

// Turns each row of Ū, the cotangent of the unit rows u, into the cotangent of z, in place:
// ū_a = (Ū_a − q_a) / temperature with q_a = (w_a + w_p(a))·u_p(a), then the VJP of
// normalize, (ū_a − u_a·(u_a·ū_a)) / ‖z_a‖ when ‖z_a‖ > norm_eps, and ū_a / norm_eps otherwise.
template <class T>
[[gnu::always_inline]] inline void finish_gradient_rows(const GradientRows<T>& problem, T* gradient) {
  const std::int64_t features = problem.features;
  for (std::int64_t a = 0; a < problem.rows; ++a) {
    T* row = gradient + a * features;
    for (int t = 1; t < problem.threads; ++t) {
      const T* other = problem.extra + ((t - 1) * problem.rows + a) * features;
      for (std::int64_t k = 0; k < features; ++k) {
        row[k] += other[k];
      }
    }
    const std::int64_t partner = detail::positive_of(a, problem.rows, problem.layout);
    const T pair_weight = problem.weights[a] + problem.weights[partner];
    const T* u_partner = problem.u + partner * features;
    for (std::int64_t k = 0; k < features; ++k) {
      row[k] = (row[k] - pair_weight * u_partner[k]) * problem.inverse_temperature;
    }
    const T* u_a = problem.u + a * features;
    const double norm = problem.norms[a];
    if (norm > norm_eps) {
      const auto projection = static_cast<T>(dot_in_double(u_a, row, features));
      const auto inverse_norm = static_cast<T>(1.0 / norm);
      for (std::int64_t k = 0; k < features; ++k) {
        row[k] = (row[k] - u_a[k] * projection) * inverse_norm;
      }
    } else {
      const double inverse_eps = 1.0 / norm_eps;
      for (std::int64_t k = 0; k < features; ++k) {
        row[k] = static_cast<T>(static_cast<double>(row[k]) * inverse_eps);
      }
    }
  }
}

// The loops above, compiled once per instruction set; the loader picks the widest the CPU has:
// x86-64-v4 (AVX-512), x86-64-v3 (AVX2 with FMA) or the x86-64 baseline.
// Clang builds with a sanitizer compile one version only. Clang instruments the clones' ifunc
// resolver, and the loader runs it before the sanitizer runtime starts, which crashes.
#if defined(__clang__)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer) || __has_feature(coverage_sanitizer)
#define TAPEGRAD_ONE_VERSION_ONLY
#endif
#endif
#ifdef TAPEGRAD_ONE_VERSION_ONLY
#define TAPEGRAD_VECTOR_CLONES
#else
#define TAPEGRAD_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif

TAPEGRAD_VECTOR_CLONES void accumulate_tile_f32(const TileProblem<float>& problem, Block rows_i, Block rows_j,
                                                const float* tile, float* scratch, RunningLogsumexp state,
                                                float* positive_logits) {
  accumulate_tile(problem, rows_i, rows_j, tile, scratch, state, positive_logits);
}

TAPEGRAD_VECTOR_CLONES void accumulate_tile_f64(const TileProblem<double>& problem, Block rows_i, Block rows_j,
                                                const double* tile, double* scratch, RunningLogsumexp state,
                                                double* positive_logits) {
  accumulate_tile(problem, rows_i, rows_j, tile, scratch, state, positive_logits);
}

TAPEGRAD_VECTOR_CLONES void weight_tile_f32(Block rows_i, Block rows_j, const float* weights, const float* lse,
                                            const float* similarities, float* tile) {
  weight_tile(rows_i, rows_j, weights, lse, similarities, tile);
}

TAPEGRAD_VECTOR_CLONES void weight_tile_f64(Block rows_i, Block rows_j, const double* weights, const double* lse,
                                            const double* similarities, double* tile) {
  weight_tile(rows_i, rows_j, weights, lse, similarities, tile);
}

TAPEGRAD_VECTOR_CLONES void accumulate_tile_bounded_f32(const TileProblem<float>& problem, Block rows_i,
                                                        Block rows_j, float* tile, float* column_sums, double* sums,
                                                        float* positive_logits) {
  accumulate_tile_bounded(problem, rows_i, rows_j, tile, column_sums, sums, positive_logits);
}

TAPEGRAD_VECTOR_CLONES void accumulate_tile_bounded_f64(const TileProblem<double>& problem, Block rows_i,
                                                        Block rows_j, double* tile, double* column_sums, double* sums,
                                                        double* positive_logits) {
  accumulate_tile_bounded(problem, rows_i, rows_j, tile, column_sums, sums, positive_logits);
}

TAPEGRAD_VECTOR_CLONES void weight_tile_bounded_f32(Block rows_i, Block rows_j, const float* weights,
                                                    const float* gains, float shift, bool exponentials,
                                                    const float* source, float* tile) {
  weight_tile_bounded(rows_i, rows_j, weights, gains, shift, exponentials, source, tile);
}

TAPEGRAD_VECTOR_CLONES void weight_tile_bounded_f64(Block rows_i, Block rows_j, const double* weights,
                                                    const double* gains, double shift, bool exponentials,
                                                    const double* source, double* tile) {
  weight_tile_bounded(rows_i, rows_j, weights, gains, shift, exponentials, source, tile);
}

TAPEGRAD_VECTOR_CLONES void exp_elements_f32(const float* x, float* y, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) {
    y[i] = exp_polynomial(x[i]);
  }
}

TAPEGRAD_VECTOR_CLONES void exp_elements_f64(const double* x, double* y, std::int64_t count) {
  for (std::int64_t i = 0; i < count; ++i) {
    y[i] = exp_polynomial(x[i]);
  }
}

TAPEGRAD_VECTOR_CLONES void normalize_rows_f32(const float* z, std::int64_t rows, std::int64_t features, float* u,
                                               double* norms) {
  normalize_rows(z, rows, features, u, norms);
}

TAPEGRAD_VECTOR_CLONES void normalize_rows_f64(const double* z, std::int64_t rows, std::int64_t features, double* u,
                                               double* norms) {
  normalize_rows(z, rows, features, u, norms);
}

TAPEGRAD_VECTOR_CLONES void finish_gradient_rows_f32(const GradientRows<float>& problem, float* gradient) {
  finish_gradient_rows(problem, gradient);
}

TAPEGRAD_VECTOR_CLONES void finish_gradient_rows_f64(const GradientRows<double>& problem, double* gradient) {
  finish_gradient_rows(problem, gradient);
}

#undef TAPEGRAD_VECTOR_CLONES
#undef TAPEGRAD_ONE_VERSION_ONLY

void accumulate_tile_dispatch(const TileProblem<float>& problem, Block rows_i, Block rows_j, const float* tile,
                              float* scratch, RunningLogsumexp state, float* positive_logits) {
  accumulate_tile_f32(problem, rows_i, rows_j, tile, scratch, state, positive_logits);
}
void accumulate_tile_dispatch(const TileProblem<double>& problem, Block rows_i, Block rows_j, const double* tile,
                              double* scratch, RunningLogsumexp state, double* positive_logits) {
  accumulate_tile_f64(problem, rows_i, rows_j, tile, scratch, state, positive_logits);
}
void weight_tile_dispatch(Block rows_i, Block rows_j, const float* weights, const float* lse,
                          const float* similarities, float* tile) {
  weight_tile_f32(rows_i, rows_j, weights, lse, similarities, tile);
}
void weight_tile_dispatch(Block rows_i, Block rows_j, const double* weights, const double* lse,
                          const double* similarities, double* tile) {
  weight_tile_f64(rows_i, rows_j, weights, lse, similarities, tile);
}
void accumulate_tile_bounded_dispatch(const TileProblem<float>& problem, Block rows_i, Block rows_j, float* tile,
                                      float* column_sums, double* sums, float* positive_logits) {
  accumulate_tile_bounded_f32(problem, rows_i, rows_j, tile, column_sums, sums, positive_logits);
}
void accumulate_tile_bounded_dispatch(const TileProblem<double>& problem, Block rows_i, Block rows_j, double* tile,
                                      double* column_sums, double* sums, double* positive_logits) {
  accumulate_tile_bounded_f64(problem, rows_i, rows_j, tile, column_sums, sums, positive_logits);
}
void weight_tile_bounded_dispatch(Block rows_i, Block rows_j, const float* weights, const float* gains, float shift,
                                  bool exponentials, const float* source, float* tile) {
  weight_tile_bounded_f32(rows_i, rows_j, weights, gains, shift, exponentials, source, tile);
}
void weight_tile_bounded_dispatch(Block rows_i, Block rows_j, const double* weights, const double* gains,
                                  double shift, bool exponentials, const double* source, double* tile) {
  weight_tile_bounded_f64(rows_i, rows_j, weights, gains, shift, exponentials, source, tile);
}

void normalize_rows_dispatch(const float* z, std::int64_t rows, std::int64_t features, float* u, double* norms) {
  normalize_rows_f32(z, rows, features, u, norms);
}
void normalize_rows_dispatch(const double* z, std::int64_t rows, std::int64_t features, double* u, double* norms) {
  normalize_rows_f64(z, rows, features, u, norms);
}
void finish_gradient_rows_dispatch(const GradientRows<float>& problem, float* gradient) {
  finish_gradient_rows_f32(problem, gradient);
}
void finish_gradient_rows_dispatch(const GradientRows<double>& problem, double* gradient) {
  finish_gradient_rows_f64(problem, gradient);
}

// ---- Scheduling ------------------------------------------------------------------------------

// The tile pairs (I, J), I ≤ J, in row-major order, dealt round-robin to the threads: thread t
// takes pairs t, t + threads, t + 2·threads and so on. The assignment depends only on the thread count,
// so a repeated call adds the same terms in the same order and gives bit-identical results.
class TilePairs {
 public:
  TilePairs(std::int64_t rows) : rows_(rows), blocks_((rows + fused_tile_rows - 1) / fused_tile_rows) {}

  std::int64_t pair_count() const { return blocks_ * (blocks_ + 1) / 2; }

  // Threads worth starting: one per pair at most, and one when OpenMP offers one.
  int thread_count() const {
    return static_cast<int>(std::min<std::int64_t>(omp_get_max_threads(), pair_count()));
  }

  Block block(std::int64_t index) const {
    return {index * fused_tile_rows, std::min(rows_, (index + 1) * fused_tile_rows)};
  }

  // Elements of all tiles (I, J), I ≤ J, stored one after another in pair order.
  std::int64_t cache_elements() const {
    const Block last = block(blocks_ - 1);
    return cache_offset(blocks_ - 1, blocks_ - 1) + last.size() * last.size();
  }

  // Calls visit(I, J, offset) for pairs first, first + stride, … in order, where offset is where
  // the tile of (I, J) starts in a cache of cache_elements().
  template <class Visit>
  void for_each(std::int64_t first, std::int64_t stride, Visit&& visit) const {
    std::int64_t i = 0;
    std::int64_t j = 0;
    advance(i, j, first);
    while (i < blocks_) {
      visit(block(i), block(j), cache_offset(i, j));
      advance(i, j, stride);
    }
  }

 private:
  // Every block but the last has B = fused_tile_rows rows; the last has r. The pairs before (i, j)
  // are, for each earlier block row i' < i, blocks − 1 − i' tiles of B² and one of B·r, then the
  // j − i tiles of B² in row i before column j.
  std::int64_t cache_offset(std::int64_t i, std::int64_t j) const {
    const std::int64_t full = fused_tile_rows * fused_tile_rows;
    const std::int64_t last_rows = block(blocks_ - 1).size();
    const std::int64_t full_tiles_before = i * (blocks_ - 1) - i * (i - 1) / 2 + (j - i);
    return full * full_tiles_before + fused_tile_rows * last_rows * i;
  }

  void advance(std::int64_t& i, std::int64_t& j, std::int64_t steps) const {
    j += steps;
    while (i < blocks_ && j >= blocks_) {
      const std::int64_t overshoot = j - blocks_;
      ++i;
      j = i + overshoot;
    }
  }

  std::int64_t rows_;
  std::int64_t blocks_;
};

// Holds OpenBLAS at one thread while any fused NT-Xent runs, on any thread, and restores the
// count it found when the last one ends. One BLAS thread keeps OpenMP's and OpenBLAS's thread
// pools from oversubscribing the cores. It also makes the result depend on the OpenMP thread count
// only. OpenBLAS splits some products differently with more threads, which changes their rounding.
// The count is process-wide, so without the shared guard one call could restore it while another
// call's tiles run, and two equal calls on two threads would differ.
// NOTE: other threads' BLAS calls in that window run on one thread too (more slowly, and rounded
// as one thread rounds), and a count set by the user in that window is undone at its end.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() {
    const std::lock_guard lock(mutex_);
    if (active_calls_++ == 0) {
      previous_ = openblas_get_num_threads();
      if (previous_ > 1) {
        openblas_set_num_threads(1);
      }
    }
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;
  ~SingleThreadedBlas() {
    const std::lock_guard lock(mutex_);
    if (--active_calls_ == 0 && previous_ > 1) {
      openblas_set_num_threads(previous_);
    }
  }

 private:
  static inline std::mutex mutex_;
  static inline int active_calls_ = 0;  // fused calls inside a guard, guarded by mutex_
  static inline int previous_ = 0;      // the count found by the first of them
};

// ---- Forward ---------------------------------------------------------------------------------

struct ForwardResult {
  Tensor value;  // the reduced loss, or the per-anchor losses for Reduction::none
  Tensor u;      // [R, D] normalized rows, z's dtype
  Tensor norms;  // [R] f64, ‖z_a‖₂ before the clamp
  Tensor lse;    // [R] f64, logsumexp_{b ≠ a} s_ab
  // Every tile of the forward pass, one after another in pair order, when they fit in
  // options.fused_cache_bytes, so the backward need not compute them again: e_ab under the
  // bounded shift, s_ab otherwise. Undefined when they do not fit.
  Tensor tile_cache;
};

// Merges the threads' running maxima and sums into lse = M + log Σ_t sum_t·exp(max_t − M), where
// M = max_t max_t. `states` contains each thread's maxima, then its sums, R values each.
void merge_running_logsumexp(const double* states, int threads, std::int64_t rows, double* lse) {
  for (std::int64_t a = 0; a < rows; ++a) {
    double maximum = -std::numeric_limits<double>::infinity();
    for (int t = 0; t < threads; ++t) {
      maximum = std::max(maximum, states[2 * t * rows + a]);
    }
    double sum = 0.0;
    for (int t = 0; t < threads; ++t) {
      const double thread_maximum = states[2 * t * rows + a];
      const double thread_sum = states[(2 * t + 1) * rows + a];
      // exp(0) is exactly 1, so the thread whose maximum is the row's maximum skips the call.
      if (thread_maximum == maximum) {
        sum += thread_sum;
      } else if (thread_maximum != -std::numeric_limits<double>::infinity()) {
        sum += thread_sum * std::exp(thread_maximum - maximum);
      }
    }
    lse[a] = maximum + std::log(sum);
  }
}

// Merges the threads' sums of e_ab = exp(s_ab − c) into lse = c + log Σ_t sum_t. `states` is laid
// out as for merge_running_logsumexp; only the sums are used.
void merge_bounded_sums(const double* states, int threads, std::int64_t rows, double shift, double* lse) {
  for (std::int64_t a = 0; a < rows; ++a) {
    double sum = 0.0;
    for (int t = 0; t < threads; ++t) {
      sum += states[(2 * t + 1) * rows + a];
    }
    lse[a] = shift + std::log(sum);
  }
}

template <class T>
ForwardResult forward(Tape& tape, const Tensor& z, const NtXentOptions& options) {
  const std::int64_t rows = z.size(0);
  const std::int64_t features = z.size(1);
  const Dtype dtype = z.dtype();
  ForwardResult result{.value = {},
                       .u = tape.allocate({rows, features}, dtype),
                       .norms = tape.allocate({rows}, Dtype::f64),
                       .lse = tape.allocate({rows}, Dtype::f64),
                       .tile_cache = {}};
  normalize_rows_dispatch(z.data<T>(), rows, features, result.u.template data<T>(),
                          result.norms.data<double>());

  const TilePairs pairs(rows);
  const int threads = pairs.thread_count();
  const bool bounded = bounded_shift_applies<T>(rows, options.temperature);
  const std::int64_t cache_elements = pairs.cache_elements();
  // Compared in elements, so that the byte count cannot overflow.
  const bool keep_tiles = cache_elements <= options.fused_cache_bytes / static_cast<std::int64_t>(sizeof(T));
  const std::int64_t scratch_elements = 2 * fused_tile_rows;
  const std::int64_t thread_elements = scratch_elements + (keep_tiles ? 0 : fused_tile_rows * fused_tile_rows);
  Tensor states = tape.allocate({threads, 2, rows}, Dtype::f64);
  Tensor buffers = tape.allocate({threads, thread_elements}, dtype);
  Tensor positive_logits = tape.allocate({rows}, dtype);
  if (keep_tiles) {
    result.tile_cache = tape.allocate({cache_elements}, dtype);
  }
  double* state_data = states.data<double>();
  std::fill_n(state_data, 2 * threads * rows, 0.0);
  for (int t = 0; t < threads; ++t) {
    std::fill_n(state_data + 2 * t * rows, rows, -std::numeric_limits<double>::infinity());
  }

  const TileProblem<T> problem{.rows = rows,
                               .features = features,
                               .u = result.u.template data<T>(),
                               .inverse_temperature = static_cast<T>(1.0 / options.temperature),
                               .layout = options.layout};
  T* buffer_data = buffers.data<T>();
  T* cache = keep_tiles ? result.tile_cache.template data<T>() : nullptr;
  T* positives = positive_logits.data<T>();
  {
    const SingleThreadedBlas blas_guard;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
      const int t = omp_get_thread_num();
      T* scratch = buffer_data + t * thread_elements;
      T* own_tile = scratch + scratch_elements;
      const RunningLogsumexp state{state_data + 2 * t * rows, state_data + (2 * t + 1) * rows};
      pairs.for_each(t, omp_get_num_threads(), [&](Block rows_i, Block rows_j, std::int64_t offset) {
        T* tile = keep_tiles ? cache + offset : own_tile;
        compute_similarity_tile(problem, rows_i, rows_j, bounded ? DiagonalTile::upper : DiagonalTile::full, tile);
        if (bounded) {
          accumulate_tile_bounded_dispatch(problem, rows_i, rows_j, tile, scratch, state.sum, positives);
        } else {
          accumulate_tile_dispatch(problem, rows_i, rows_j, tile, scratch, state, positives);
        }
      });
    }
  }

  double* lse = result.lse.data<double>();
  if (bounded) {
    merge_bounded_sums(state_data, threads, rows, static_cast<double>(problem.inverse_temperature), lse);
  } else {
    merge_running_logsumexp(state_data, threads, rows, lse);
  }

  // l_a = lse_a − s_a,p(a). With N = 1 the positive is the only term, so lse_a = s_a,p(a) exactly.
  if (options.reduction == Reduction::none) {
    result.value = tape.allocate({rows}, dtype);
    T* losses = result.value.template data<T>();
    for (std::int64_t a = 0; a < rows; ++a) {
      losses[a] = static_cast<T>(lse[a] - static_cast<double>(positives[a]));
    }
  } else {
    double total = 0.0;
    for (std::int64_t a = 0; a < rows; ++a) {
      total += lse[a] - static_cast<double>(positives[a]);
    }
    if (options.reduction == Reduction::mean) {
      total /= static_cast<double>(rows);
    }
    result.value = tape.allocate({}, dtype);
    *result.value.template data<T>() = static_cast<T>(total);
  }
  return result;
}

// ---- Backward --------------------------------------------------------------------------------

// Options travel to the VJP in OpAttributes: the temperature in `scalar`, the layout in `integer`
// and the reduction in `axis`.
OpAttributes encode_options(const NtXentOptions& options) {
  return {.axis = static_cast<std::int64_t>(options.reduction),
          .keepdim = false,
          .scalar = options.temperature,
          .integer = static_cast<std::int64_t>(options.layout)};
}

// For I ≠ J: Ū_I += H_IJ·U_J ([|I|, |J|]·[|J|, D] → [|I|, D]) and Ū_J += H_IJᵀ·U_I
// ([|J|, |I|]·[|I|, D] → [|J|, D]), H read transposed through the flag. For I = J, H_II is
// symmetric and ?symm reads its upper triangle: Ū_I += H_II·U_I.
template <class T>
void add_tile_products(Block rows_i, Block rows_j, std::int64_t features, const T* tile, const T* u, T* u_bar) {
  const auto m = static_cast<blasint>(rows_i.size());
  const auto n = static_cast<blasint>(rows_j.size());
  const auto k = static_cast<blasint>(features);
  T* u_bar_i = u_bar + rows_i.begin * features;
  T* u_bar_j = u_bar + rows_j.begin * features;
  const T* u_i = u + rows_i.begin * features;
  const T* u_j = u + rows_j.begin * features;
  if (rows_i.begin == rows_j.begin) {
    if constexpr (std::is_same_v<T, float>) {
      cblas_ssymm(CblasRowMajor, CblasLeft, CblasUpper, m, k, 1.0F, tile, n, u_i, k, 1.0F, u_bar_i, k);
    } else {
      cblas_dsymm(CblasRowMajor, CblasLeft, CblasUpper, m, k, 1.0, tile, n, u_i, k, 1.0, u_bar_i, k);
    }
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, n, 1.0F, tile, n, u_j, k, 1.0F, u_bar_i, k);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, m, 1.0F, tile, n, u_i, k, 1.0F, u_bar_j, k);
  } else {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, n, 1.0, tile, n, u_j, k, 1.0, u_bar_i, k);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, m, 1.0, tile, n, u_i, k, 1.0, u_bar_j, k);
  }
}

// Per-row factors of the backward tiles: w_a, the cotangent of l_a, and either lse_a (running-
// maximum path) or g_a = exp(c − lse_a) (bounded shift), both in T.
template <class T>
void row_factors(const Tensor& cotangent, Reduction reduction, const double* lse, bool bounded, double shift,
                 std::int64_t rows, T* weights, T* lse_or_gains) {
  const T* seed = cotangent.data<T>();
  for (std::int64_t a = 0; a < rows; ++a) {
    switch (reduction) {
      case Reduction::mean: weights[a] = static_cast<T>(static_cast<double>(seed[0]) / static_cast<double>(rows)); break;
      case Reduction::sum: weights[a] = seed[0]; break;
      case Reduction::none: weights[a] = seed[a]; break;
    }
    lse_or_gains[a] = static_cast<T>(bounded ? std::exp(shift - lse[a]) : lse[a]);
  }
}

template <class T>
void backward(VjpContext& context) {
  const Tensor& u_tensor = context.saved(0);
  const Tensor& norms_tensor = context.saved(1);
  const Tensor& lse_tensor = context.saved(2);
  // The forward's tiles, read but not changed, so that a second backward finds them intact.
  const T* cache = context.saved(3).defined() ? context.saved(3).data<T>() : nullptr;
  const OpAttributes& attributes = context.attributes();
  const double temperature = attributes.scalar;
  const auto layout = static_cast<Layout>(attributes.integer);
  const std::int64_t rows = u_tensor.size(0);
  const std::int64_t features = u_tensor.size(1);
  const Dtype dtype = u_tensor.dtype();
  const bool bounded = bounded_shift_applies<T>(rows, temperature);
  const auto shift = static_cast<T>(1.0 / temperature);

  Tensor weights_tensor = context.allocate({rows}, dtype);
  Tensor factors_tensor = context.allocate({rows}, dtype);
  T* weights = weights_tensor.data<T>();
  T* factors = factors_tensor.data<T>();
  row_factors(context.cotangent(), static_cast<Reduction>(attributes.axis), lse_tensor.data<double>(), bounded,
              static_cast<double>(shift), rows, weights, factors);

  const TilePairs pairs(rows);
  const int threads = pairs.thread_count();
  // Thread 0 accumulates Ū straight into the gradient buffer, the others into their own.
  Tensor gradient = context.allocate({rows, features}, dtype);
  Tensor extra_gradients;
  if (threads > 1) {
    extra_gradients = context.allocate({threads - 1, rows, features}, dtype);
    std::fill_n(extra_gradients.data<T>(), (threads - 1) * rows * features, T{0});
  }
  std::fill_n(gradient.data<T>(), rows * features, T{0});
  Tensor tiles = context.allocate({threads, fused_tile_rows * fused_tile_rows}, dtype);

  const T* u = u_tensor.data<T>();
  const TileProblem<T> problem{
      .rows = rows, .features = features, .u = u, .inverse_temperature = shift, .layout = layout};
  T* gradient_data = gradient.data<T>();
  T* extra_data = threads > 1 ? extra_gradients.data<T>() : nullptr;
  T* tile_data = tiles.data<T>();
  {
    const SingleThreadedBlas blas_guard;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
      const int t = omp_get_thread_num();
      T* tile = tile_data + t * fused_tile_rows * fused_tile_rows;
      T* u_bar = t == 0 ? gradient_data : extra_data + (t - 1) * rows * features;
      pairs.for_each(t, omp_get_num_threads(), [&](Block rows_i, Block rows_j, std::int64_t offset) {
        const T* source = tile;
        if (cache != nullptr) {
          source = cache + offset;
        } else {
          compute_similarity_tile(problem, rows_i, rows_j, bounded ? DiagonalTile::upper : DiagonalTile::full, tile);
        }
        if (bounded) {
          weight_tile_bounded_dispatch(rows_i, rows_j, weights, factors, shift, cache != nullptr, source, tile);
        } else {
          weight_tile_dispatch(rows_i, rows_j, weights, factors, source, tile);
        }
        add_tile_products(rows_i, rows_j, features, tile, u, u_bar);
      });
    }
  }

  const GradientRows<T> gradient_rows{.rows = rows,
                                      .features = features,
                                      .threads = threads,
                                      .extra = extra_data,
                                      .weights = weights,
                                      .u = u,
                                      .norms = norms_tensor.data<double>(),
                                      .inverse_temperature = shift,
                                      .layout = layout};
  finish_gradient_rows_dispatch(gradient_rows, gradient_data);
  context.accumulate(0, std::move(gradient));
}

void nt_xent_fused_vjp(VjpContext& context) {
  if (!context.needs_grad(0)) {
    return;
  }
  dispatch_floating(context.saved(0).dtype(), [&](auto zero) { backward<decltype(zero)>(context); });
}

// ---- Argument checks -------------------------------------------------------------------------

void check_arguments(const Tensor& z, const NtXentOptions& options) {
  detail::check_nt_xent_embeddings(op_name, "z", z);
  if (z.size(0) % 2 != 0) {
    raise<ShapeError>(op_name, "z must have an even number of rows (2N: two views of N samples)", "z of shape {}",
                      z.shape());
  }
  detail::check_nt_xent_options(op_name, options, z.dtype());
}

}  // namespace

Var nt_xent_fused(const Var& z, const NtXentOptions& options) {
  Tape& tape = common_tape(op_name, {z});
  const Tensor& embeddings = z.value();
  check_arguments(embeddings, options);
  ForwardResult result = dispatch_floating(embeddings.dtype(), [&](auto zero) {
    return forward<decltype(zero)>(tape, embeddings, options);
  });
  return tape.record(op_name, std::move(result.value), {z}, nt_xent_fused_vjp,
                     {result.u, result.norms, result.lse, result.tile_cache}, encode_options(options));
}

namespace detail {

void exp_elements(const float* x, float* y, std::int64_t count) { exp_elements_f32(x, y, count); }
void exp_elements(const double* x, double* y, std::int64_t count) { exp_elements_f64(x, y, count); }

}  // namespace detail

}  // namespace tapegrad

namespace tapegrad {

void register_nt_xent_fused_cases(GradcheckRegistry& registry) {
  struct Size {
    std::int64_t n;
    std::int64_t d;
    double temperature;
  };
  // N from 1 (no negatives, loss and gradient exactly 0) to 8, D from 1 (every normalized row is
  // ±1) to 16, temperatures 0.05 to 2, each in every layout and reduction.
  const Size sizes[] = {{1, 3, 0.5}, {2, 1, 1.0}, {3, 4, 0.5}, {4, 2, 2.0}, {5, 16, 0.05}, {8, 6, 0.2}};
  const Layout layouts[] = {Layout::concatenated, Layout::interleaved};
  const Reduction reductions[] = {Reduction::mean, Reduction::sum, Reduction::none};
  std::uint64_t seed = 101;
  for (const Size& size : sizes) {
    for (Layout layout : layouts) {
      for (Reduction reduction : reductions) {
        const NtXentOptions options{.temperature = size.temperature, .layout = layout, .reduction = reduction};
        registry.add({
            .op = std::string(op_name),
            .name = fmt::format("{}_{}_n{}_d{}_t{}", layout_name(layout), reduction_name(reduction), size.n,
                                size.d, size.temperature),
            .inputs = {{.shape = {2 * size.n, size.d}}},
            .function = [options](std::span<const Var> inputs) { return nt_xent_fused(inputs[0], options); },
            .seed = seed++,
        });
      }
    }
  }

  // One row of features: its normalized value is ±1 and every logit is ±1/temperature.
  registry.add({
      .op = std::string(op_name),
      .name = "one_column_n4",
      .inputs = {{.shape = {8, 1}, .values = detail::uniform_away_from_zero({8, 1}, 0.2, 1.5, 7)}},
      .function = [](std::span<const Var> inputs) { return nt_xent_fused(inputs[0], {.temperature = 0.3}); },
      .override_reason = "values kept away from 0, where x/|x| jumps from -1 to 1",
  });

  // A zero row is a constant: normalize is not differentiable at the zero vector for any step
  // larger than its eps (1e-12), so only the other rows are checked.
  registry.add({
      .op = std::string(op_name),
      .name = "zero_row_constant",
      .inputs = {{.shape = {5, 4}}, {.shape = {1, 4}, .differentiable = false, .values = Tensor::zeros({1, 4})}},
      .function = [](std::span<const Var> inputs) { return nt_xent_fused(concat({inputs[0], inputs[1]}, 0)); },
  });

  // More rows than one tile (2·131 = 262 > 256): off-diagonal and ragged tiles, and the pairs
  // split between threads when OpenMP has more than one. The backward reads the kept tiles, or
  // with fused_cache_bytes = 0 computes them again.
  for (Layout layout : layouts) {
    for (const std::int64_t cache_bytes : {NtXentOptions{}.fused_cache_bytes, std::int64_t{0}}) {
      NtXentOptions options{.temperature = 0.5, .layout = layout, .reduction = Reduction::sum};
      options.fused_cache_bytes = cache_bytes;
      registry.add({
          .op = std::string(op_name),
          .name = fmt::format("two_tiles_{}_sum{}", layout_name(layout), cache_bytes == 0 ? "_recomputed" : ""),
          .inputs = {{.shape = {2 * (fused_tile_rows / 2 + 3), 2}}},
          .function = [options](std::span<const Var> inputs) { return nt_xent_fused(inputs[0], options); },
      });
    }
  }

  // Below temperature 2/700 float64 leaves the bounded shift for the running maximum.
  registry.add({
      .op = std::string(op_name),
      .name = "running_maximum_t0.002_n3_d4",
      .inputs = {{.shape = {6, 4}}},
      .function = [](std::span<const Var> inputs) { return nt_xent_fused(inputs[0], {.temperature = 0.002}); },
  });
}

}  // namespace tapegrad
