#include "matmul.hpp"

#include <algorithm>
#include <limits>
#include <string>

#include <cblas.h>

#include "common.hpp"

namespace tapegrad {
namespace {

constexpr std::string_view op_name = "matmul";

// The flags travel to the VJP in OpAttributes::integer, one bit each.
constexpr std::int64_t transpose_a_bit = 1;
constexpr std::int64_t transpose_b_bit = 2;

std::int64_t encode_flags(MatmulOptions options) {
  return (options.transpose_a ? transpose_a_bit : 0) | (options.transpose_b ? transpose_b_bit : 0);
}

MatmulOptions decode_flags(std::int64_t bits) {
  return {.transpose_a = (bits & transpose_a_bit) != 0, .transpose_b = (bits & transpose_b_bit) != 0};
}

std::string describe_flags(MatmulOptions options) {
  if (options.transpose_a && options.transpose_b) {
    return " with transpose_a and transpose_b";
  }
  if (options.transpose_a) {
    return " with transpose_a";
  }
  if (options.transpose_b) {
    return " with transpose_b";
  }
  return "";
}

// Writes out = op(x)·op(y) for row-major operands, where op(x) is [rows, inner], op(y) is
// [inner, cols] and out is [rows, cols]. A transposed operand is stored with its two extents
// swapped, and BLAS reads it in place through CblasTrans. The leading dimension of a row-major
// matrix is its stored column count, which is positive whenever BLAS is called, because an
// empty product returns early and inner = 0 only fills zeros.
template <class T>
void gemm(bool transpose_x, bool transpose_y, std::int64_t rows, std::int64_t cols, std::int64_t inner, const T* x,
          const T* y, T* out) {
  if (rows == 0 || cols == 0) {
    return;
  }
  if (inner == 0) {
    std::fill_n(out, rows * cols, T{0});
    return;
  }
  const auto m = static_cast<blasint>(rows);
  const auto n = static_cast<blasint>(cols);
  const auto k = static_cast<blasint>(inner);
  const blasint ld_x = transpose_x ? m : k;
  const blasint ld_y = transpose_y ? k : n;
  const CBLAS_TRANSPOSE trans_x = transpose_x ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE trans_y = transpose_y ? CblasTrans : CblasNoTrans;
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, trans_x, trans_y, m, n, k, 1.0F, x, ld_x, y, ld_y, 0.0F, out, n);
  } else {
    cblas_dgemm(CblasRowMajor, trans_x, trans_y, m, n, k, 1.0, x, ld_x, y, ld_y, 0.0, out, n);
  }
}

// Extents of op(A) = [M, K] and op(B) = [K, N], read from the stored shapes and the flags.
struct ProductExtents {
  std::int64_t m;
  std::int64_t k;
  std::int64_t n;
};

ProductExtents product_extents(const Shape& a, const Shape& b, MatmulOptions options) {
  return {.m = options.transpose_a ? a[1] : a[0],
          .k = options.transpose_a ? a[0] : a[1],
          .n = options.transpose_b ? b[0] : b[1]};
}

// Checks the operands before anything is recorded, and returns the extents of the product.
ProductExtents check_operands(const Tensor& a, const Tensor& b, MatmulOptions options) {
  detail::check_floating(op_name, "a", a);
  detail::check_floating(op_name, "b", b);
  detail::check_same_dtype(op_name, a, b);
  if (a.rank() != 2 || b.rank() != 2) {
    raise<ShapeError>(op_name, "both operands must be 2-D matrices", "a {} (rank {}) and b {} (rank {})", a.shape(),
                      a.rank(), b.shape(), b.rank());
  }
  const std::int64_t a_inner_axis = options.transpose_a ? 0 : 1;
  const std::int64_t b_inner_axis = options.transpose_b ? 1 : 0;
  if (a.shape()[a_inner_axis] != b.shape()[b_inner_axis]) {
    raise<ShapeError>(op_name,
                      fmt::format("the inner dimensions must match (a.shape[{}] == b.shape[{}])", a_inner_axis,
                                  b_inner_axis),
                      "a {} and b {}{}", a.shape(), b.shape(), describe_flags(options));
  }
  const ProductExtents extents = product_extents(a.shape(), b.shape(), options);
  constexpr std::int64_t blas_limit = std::numeric_limits<blasint>::max();
  if (extents.m > blas_limit || extents.k > blas_limit || extents.n > blas_limit) {
    raise<ValueError>(op_name, fmt::format("each extent must fit the BLAS integer type (at most {})", blas_limit),
                      "a {} and b {}{}", a.shape(), b.shape(), describe_flags(options));
  }
  return extents;
}

// The VJP. C̄ is the cotangent, [M, N]. Every product below is one gemm call, annotated with the
// stored shapes of its operands. A transposed operand is passed as a flag and never copied.
void matmul_vjp(VjpContext& context) {
  const Tensor& a = context.input(0);
  const Tensor& b = context.input(1);
  const Tensor& c_grad = context.cotangent();
  const MatmulOptions options = decode_flags(context.attributes().integer);
  const bool ta = options.transpose_a;
  const bool tb = options.transpose_b;
  // Plain variables, not a structured binding: clang 14 cannot capture bindings in lambdas.
  const ProductExtents extents = product_extents(a.shape(), b.shape(), options);
  const std::int64_t m = extents.m;
  const std::int64_t k = extents.k;
  const std::int64_t n = extents.n;

  dispatch_floating(a.dtype(), [&](auto zero) {
    using T = decltype(zero);
    const T* a_data = a.data<T>();
    const T* b_data = b.data<T>();
    const T* g = c_grad.data<T>();

    if (context.needs_grad(0)) {
      Tensor a_grad = context.allocate(a.shape(), a.dtype());
      if (!ta) {
        // Ā = C̄·op(B)ᵀ, [M, N]·[N, K] → [M, K]. op(B)ᵀ is B read transposed, unless B is stored
        // transposed already:
        //   C = A·B:   Ā = C̄·Bᵀ, with B [K, N] read as CblasTrans.
        //   C = A·Bᵀ:  Ā = C̄·B,  with B [N, K] read as it is.
        gemm<T>(false, !tb, m, k, n, g, b_data, a_grad.data<T>());
      } else {
        // A is stored [K, M], so its gradient is (C̄·op(B)ᵀ)ᵀ = op(B)·C̄ᵀ, [K, N]·[N, M] → [K, M]:
        //   C = Aᵀ·B:   Ā = B·C̄ᵀ,  with B [K, N] as it is and C̄ [M, N] read as CblasTrans.
        //   C = Aᵀ·Bᵀ:  Ā = Bᵀ·C̄ᵀ, with B [N, K] and C̄ [M, N] both read as CblasTrans.
        gemm<T>(tb, true, k, m, n, b_data, g, a_grad.data<T>());
      }
      context.accumulate(0, std::move(a_grad));
    }

    if (context.needs_grad(1)) {
      Tensor b_grad = context.allocate(b.shape(), b.dtype());
      if (!tb) {
        // B̄ = op(A)ᵀ·C̄, [K, M]·[M, N] → [K, N]:
        //   C = A·B:   B̄ = Aᵀ·C̄, with A [M, K] read as CblasTrans.
        //   C = Aᵀ·B:  B̄ = A·C̄,  with A [K, M] read as it is.
        gemm<T>(!ta, false, k, n, m, a_data, g, b_grad.data<T>());
      } else {
        // B is stored [N, K], so its gradient is (op(A)ᵀ·C̄)ᵀ = C̄ᵀ·op(A), [N, M]·[M, K] → [N, K]:
        //   C = A·Bᵀ:   B̄ = C̄ᵀ·A,  with C̄ [M, N] read as CblasTrans and A [M, K] as it is.
        //   C = Aᵀ·Bᵀ:  B̄ = C̄ᵀ·Aᵀ, with C̄ [M, N] and A [K, M] both read as CblasTrans.
        gemm<T>(true, ta, n, k, m, g, a_data, b_grad.data<T>());
      }
      context.accumulate(1, std::move(b_grad));
    }
  });
}

}  // namespace

Var matmul(const Var& a, const Var& b, MatmulOptions options) {
  Tape& tape = common_tape(op_name, {a, b});
  const Tensor& a_value = a.value();
  const Tensor& b_value = b.value();
  const ProductExtents extents = check_operands(a_value, b_value, options);
  const std::int64_t m = extents.m;
  const std::int64_t k = extents.k;
  const std::int64_t n = extents.n;

  // C = op(A)·op(B), [M, K]·[K, N] → [M, N].
  Tensor c = tape.allocate(Shape{m, n}, a_value.dtype());
  dispatch_floating(a_value.dtype(), [&](auto zero) {
    using T = decltype(zero);
    gemm<T>(options.transpose_a, options.transpose_b, m, n, k, a_value.data<T>(), b_value.data<T>(), c.data<T>());
  });
  return tape.record(op_name, std::move(c), {a, b}, matmul_vjp, {}, {.integer = encode_flags(options)});
}

void register_matmul_cases(GradcheckRegistry& registry) {
  // Every flag combination with M = 2, K = 3 and N = 4, so that a gradient built with a wrong
  // transpose flag or a swapped extent has the wrong shape or the wrong values.
  const struct {
    const char* name;
    MatmulOptions options;
  } flag_cases[] = {
      {"plain", {}},
      {"transpose_a", {.transpose_a = true}},
      {"transpose_b", {.transpose_b = true}},
      {"transpose_both", {.transpose_a = true, .transpose_b = true}},
  };
  for (const auto& flag_case : flag_cases) {
    const MatmulOptions options = flag_case.options;
    const Shape a_shape = options.transpose_a ? Shape{3, 2} : Shape{2, 3};
    const Shape b_shape = options.transpose_b ? Shape{4, 3} : Shape{3, 4};
    registry.add({.op = "matmul",
                  .name = flag_case.name,
                  .inputs = {{.shape = a_shape}, {.shape = b_shape}},
                  .function = [options](std::span<const Var> inputs) { return matmul(inputs[0], inputs[1], options); }});
  }

  auto matmul_of = [](std::span<const Var> inputs) { return matmul(inputs[0], inputs[1]); };
  registry.add({.op = "matmul", .name = "one_row", .inputs = {{.shape = {1, 3}}, {.shape = {3, 4}}},
                .function = matmul_of});
  registry.add({.op = "matmul", .name = "one_column", .inputs = {{.shape = {4, 3}}, {.shape = {3, 1}}},
                .function = matmul_of});
  registry.add({.op = "matmul", .name = "inner_one", .inputs = {{.shape = {3, 1}}, {.shape = {1, 2}}},
                .function = matmul_of});
  registry.add({.op = "matmul", .name = "constant_b", .inputs = {{.shape = {2, 3}}, {.shape = {3, 2}, .differentiable = false}},
                .function = matmul_of});

  // z·zᵀ as NT-Xent computes it: one leaf on both sides, so both input gradients add into it.
  registry.add({.op = "matmul", .name = "same_leaf_gram", .inputs = {{.shape = {4, 3}}},
                .function = [](std::span<const Var> inputs) {
                  return matmul(inputs[0], inputs[0], {.transpose_b = true});
                }});
  registry.add({.op = "matmul", .name = "same_leaf_square", .inputs = {{.shape = {3, 3}}},
                .function = [](std::span<const Var> inputs) { return matmul(inputs[0], inputs[0]); }});
}

}  // namespace tapegrad
