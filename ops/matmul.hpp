#pragma once
// Matrix products through BLAS.

#include "../core/gradcheck_registry.hpp"

namespace tapegrad {

// Transpose flags of the two operands of matmul. BLAS reads a transposed operand in
// place (CblasTrans), so setting a flag never copies the operand.
struct MatmulOptions {
  bool transpose_a = false;
  bool transpose_b = false;
};

// Matrix product of two 2-D operands, each optionally transposed.
//   value: C = op(A)·op(B), where op(X) is Xᵀ when the operand's flag is set and X otherwise.
//   VJP:   Ā = C̄·op(B)ᵀ, stored transposed (Ā = op(B)·C̄ᵀ) when transpose_a is set;
//          B̄ = op(A)ᵀ·C̄, stored transposed (B̄ = C̄ᵀ·op(A)) when transpose_b is set.
//          Each is one cblas_?gemm call with transpose flags, and when a and b are the same Var
//          (z·zᵀ is matmul(z, z, {.transpose_b = true})) both products add into its gradient.
//   shape: op(A) is [M, K] and op(B) is [K, N], so A is [M, K] or, transposed, [K, M], and B is
//          [K, N] or [N, K]. C is [M, N] with the operands' dtype, f32 (cblas_sgemm) or f64
//          (cblas_dgemm).
//   edges: any extent may be 0. K = 0 gives C filled with zeros, and M = 0 or N = 0 gives an empty
//          C; BLAS is called only when M, K and N are all positive. An extent larger than the
//          BLAS integer type can represent (2³¹ − 1 for Debian's 32-bit OpenBLAS) raises ValueError.
//   errors: ShapeError for an operand that is not 2-D or for inner dimensions that differ (the
//          message names both shapes and the flags that are set); DtypeError for a boolean
//          operand or for operands of different dtypes.
Var matmul(const Var& a, const Var& b, MatmulOptions options = {});

void register_matmul_cases(GradcheckRegistry& registry);

}  // namespace tapegrad
