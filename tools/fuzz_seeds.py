#!/usr/bin/env python3
"""Write the seed corpus of tapegrad-fuzz into tools/fuzz-corpus/, one file per program.

The byte format is the one tools/fuzz_main.cpp decodes (see the comment at its top). Each op
appears at least once with valid operands, and a few programs start from edge cases: special
values, zero extents, all-false mask rows, a boolean constant and extreme temperatures.
Run it again after changing the format; it replaces every file it wrote before.
"""

import pathlib

OPS = [
    "add", "sub", "mul", "div", "add_scalar", "sub_scalar", "mul_scalar", "div_scalar", "neg", "exp",
    "log", "relu", "normalize", "sum", "mean", "max", "where", "where_scalar", "masked_sum",
    "masked_mean", "masked_max", "masked_logsumexp", "matmul", "transpose", "transpose_axes",
    "reshape", "concat", "select_rows", "select_per_row", "nt_xent",
]

# Indices into special_values in fuzz_main.cpp.
SPECIAL = {"0": 0, "-0": 1, "subnormal": 4, "1e-300": 5, "1e300": 7, "FLT_MAX": 9, "710": 12,
           "inf": 16, "-inf": 17, "nan": 18}
# Indices into temperatures in fuzz_main.cpp.
TEMPERATURE = {"0.5": 0, "0.1": 1, "0.01": 4, "0": 5, "nan": 8, "1e-300": 11, "subnormal": 12, "1e300": 13}

KEEPDIM, TRANSPOSE_A, TRANSPOSE_B, SCALAR_LEFT, INTERLEAVED, COMPOSED, TWO_VIEWS, ALL_ELEMENTS = (
    1 << bit for bit in range(8))


def value_byte(value):
    """Return the byte for an ordinary value (a multiple of 1/16 in [-7, 6.9375]) or a special's name."""
    if isinstance(value, str):
        return 224 + SPECIAL[value]
    byte = round(value * 16) + 112
    assert 0 <= byte < 224, value
    assert (byte - 112) / 16 == value, value
    return byte


def axis_byte(axis):
    assert -5 <= axis <= 5
    return axis + 5


def tensor(shape, values, f32=False, constant=False, boolean=False):
    kind = 0
    if f32:
        kind |= 1
    if constant:
        kind |= 2
    if boolean:
        kind |= 0x1C
    count = 1
    for extent in shape:
        count *= extent
    assert len(values) == count, (shape, values)
    return bytes([kind, len(shape)] + list(shape) + [value_byte(v) for v in values])


def step(op, a=0, b=1, c=2, axis_or_reduction=0, flags=0, scalar=0, mode=0, extra=()):
    """Build one 16-byte step record. `scalar` is a raw byte: a value, an eps or a temperature index."""
    extra = list(extra) + [0] * (8 - len(extra))
    return bytes([OPS.index(op), a, b, c, axis_or_reduction, flags, scalar, mode] + extra)


def program(inputs, steps):
    return bytes([len(inputs) - 1]) + b"".join(inputs) + b"".join(steps)


# Four inputs that most seeds share: two [2, 3] f64 leaves, a [3, 2] f64 leaf and a [4, 2] f32 leaf.
COMMON = [
    tensor([2, 3], [0.5, -1.25, 2.0, 0.0, 1.5, -0.75]),
    tensor([2, 3], [1.0, 0.25, -0.5, 2.5, -2.0, 0.125]),
    tensor([3, 2], [0.75, -1.0, 1.25, 0.5, -0.25, 2.0]),
    tensor([4, 2], [1.0, 0.5, -0.5, 1.5, 0.25, -1.0, 2.0, 0.75], f32=True),
]
# Mask bits 10110101 repeated: a mixed mask with true and false entries in every row.
BITS = [0b10110101] * 8


def mask_mode(shape_kind, fill_kind):
    """Return byte 7 of a masked step. Shapes: 0 same, 1 row, 2 column, 3 scalar, 4 mismatch,
    5 f64. Fills: 0 all false, 1 all true, 2 the bits, 3 the bits with the first half false."""
    return shape_kind + 6 * fill_kind


SEEDS = {
    "add": [step("add")],
    "sub_broadcast": [step("sub", a=0, b=4)],  # result 4 is the [3] that the prefix in main() records
    "mul": [step("mul")],
    "div": [step("div")],
    "add_scalar": [step("add_scalar", scalar=value_byte(2.0))],
    "sub_scalar_left": [step("sub_scalar", flags=SCALAR_LEFT, scalar=value_byte(1.5))],
    "mul_scalar": [step("mul_scalar", scalar=value_byte(-0.5))],
    "div_scalar_left": [step("div_scalar", flags=SCALAR_LEFT, scalar=value_byte(3.0))],
    "neg": [step("neg")],
    "exp": [step("exp")],
    "log": [step("exp", a=0), step("log", a=6), step("log", a=1)],
    "relu": [step("relu")],
    "normalize": [step("normalize", axis_or_reduction=axis_byte(-1))],
    "sum": [step("sum", flags=ALL_ELEMENTS), step("sum", axis_or_reduction=axis_byte(1), flags=KEEPDIM)],
    "mean": [step("mean", flags=ALL_ELEMENTS), step("mean", axis_or_reduction=axis_byte(0))],
    "max": [step("max", flags=ALL_ELEMENTS), step("max", axis_or_reduction=axis_byte(-1), flags=KEEPDIM)],
    "where": [step("where", mode=mask_mode(0, 2), extra=BITS)],
    "where_row_mask": [step("where", mode=mask_mode(1, 2), extra=BITS)],
    "where_scalar": [step("where_scalar", scalar=value_byte(-1.0), mode=mask_mode(2, 2), extra=BITS)],
    "masked_sum": [step("masked_sum", axis_or_reduction=axis_byte(1), mode=mask_mode(0, 3), extra=BITS)],
    "masked_mean": [step("masked_mean", axis_or_reduction=axis_byte(1), mode=mask_mode(0, 2), extra=BITS)],
    "masked_mean_empty_row": [step("masked_mean", axis_or_reduction=axis_byte(1), mode=mask_mode(0, 3), extra=BITS)],
    "masked_max": [step("masked_max", axis_or_reduction=axis_byte(1), mode=mask_mode(0, 3), extra=BITS)],
    "masked_max_all": [step("masked_max", flags=ALL_ELEMENTS, mode=mask_mode(0, 2), extra=BITS)],
    "masked_logsumexp": [step("masked_logsumexp", axis_or_reduction=axis_byte(1), mode=mask_mode(0, 2), extra=BITS)],
    "masked_logsumexp_empty_row": [
        step("masked_logsumexp", axis_or_reduction=axis_byte(-1), flags=KEEPDIM, mode=mask_mode(0, 3), extra=BITS)],
    "matmul": [step("matmul", a=0, b=2)],
    "matmul_transposed": [step("matmul", a=0, b=1, flags=TRANSPOSE_B), step("matmul", a=2, b=0, flags=TRANSPOSE_A | TRANSPOSE_B)],
    "matmul_mismatch": [step("matmul", a=0, b=1)],
    "transpose": [step("transpose")],
    "transpose_axes": [step("transpose_axes", axis_or_reduction=axis_byte(0), scalar=axis_byte(-1))],
    # Mode 8 is a valid shape of rank 2 and mode 9 the same with a -1. Extra bytes pick divisors.
    "reshape": [step("reshape", mode=8, extra=[2]), step("reshape", a=4, mode=9, extra=[2, 0, 0, 0, 0, 0, 0, 1])],
    "concat": [step("concat", a=0, b=1, c=2, axis_or_reduction=axis_byte(0), mode=2)],
    "concat_three": [step("concat", a=0, b=1, c=2, axis_or_reduction=axis_byte(1), mode=3)],
    # decode_index(b, 2) = b % 5 − 2, so 2, 3, 1, 3 pick rows 0, 1, −1, 1.
    "select_rows": [step("select_rows", mode=4, extra=[2, 3, 1, 3])],
    # decode_index(b, 3) = b % 7 − 3, so 5, 3 pick columns 2, 0.
    "select_per_row": [step("select_per_row", mode=0, extra=[5, 3])],
    "nt_xent": [step("nt_xent", a=3, axis_or_reduction=0, scalar=TEMPERATURE["0.5"])],
    "nt_xent_composed_interleaved": [
        step("nt_xent", a=3, axis_or_reduction=1, flags=COMPOSED | INTERLEAVED, scalar=TEMPERATURE["0.1"])],
    "nt_xent_two_views": [step("nt_xent", a=0, b=1, axis_or_reduction=2, flags=TWO_VIEWS, scalar=TEMPERATURE["0.5"])],
    "nt_xent_tiny_temperature": [step("nt_xent", a=3, flags=COMPOSED, scalar=TEMPERATURE["1e-300"])],
    "nt_xent_subnormal_temperature": [step("nt_xent", a=0, b=1, flags=TWO_VIEWS, scalar=TEMPERATURE["subnormal"])],
    "nt_xent_zero_temperature": [step("nt_xent", a=3, scalar=TEMPERATURE["0"])],
    "nt_xent_recomputed_tiles": [step("nt_xent", a=3, axis_or_reduction=2, scalar=TEMPERATURE["0.5"], mode=1)],
    "nt_xent_negative_cache_limit": [step("nt_xent", a=3, scalar=TEMPERATURE["0.5"], mode=2)],
}

# Programs that start from edge-case inputs instead of COMMON.
EDGE_SEEDS = {
    "special_values": program(
        [tensor([2, 3], ["0", "-0", "subnormal", "1e-300", "1e300", "FLT_MAX"]),
         tensor([3], [1.0, "710", -1.0]), tensor([2, 3], ["inf", "-inf", "nan", 1.0, 2.0, 3.0])],
        [step("exp", a=0), step("mul", a=0, b=1), step("div", a=1, b=0), step("log", a=0), step("sum", a=5, flags=ALL_ELEMENTS)]),
    "zero_extents": program(
        [tensor([0, 3], []), tensor([3, 0], []), tensor([2, 0, 4], [])],
        [step("matmul", a=0, b=1), step("matmul", a=1, b=0), step("sum", a=2, axis_or_reduction=axis_byte(1)),
         step("max", a=0, axis_or_reduction=axis_byte(0)), step("normalize", a=2, axis_or_reduction=axis_byte(1)),
         step("reshape", a=2, mode=9, extra=[0, 0, 0, 0, 0, 0, 0, 1])]),
    "boolean_constant": program(
        [tensor([2, 2], [1.0, 0.0, 0.0, 1.0], constant=True, boolean=True), tensor([2, 2], [1.0, 2.0, 3.0, 4.0])],
        [step("add", a=0, b=1), step("exp", a=1)]),
    "constant_and_rank3": program(
        [tensor([2, 1, 3], [0.5, 1.0, 1.5, -0.5, -1.0, -1.5], constant=True), tensor([1, 3], [1.0, 2.0, 3.0])],
        [step("mul", a=0, b=1), step("transpose_axes", a=2, axis_or_reduction=axis_byte(0), scalar=axis_byte(2)),
         step("masked_logsumexp", a=3, axis_or_reduction=axis_byte(2), mode=mask_mode(2, 2), extra=BITS)]),
    "zero_row_normalize": program(
        [tensor([2, 2], [0.0, 0.0, 3.0, 4.0])],
        [step("normalize", a=0, axis_or_reduction=axis_byte(1)), step("nt_xent", a=0, flags=COMPOSED)]),
    "mixed_dtypes": program(
        [tensor([2, 2], [1.0, 2.0, 3.0, 4.0]), tensor([2, 2], [1.0, 2.0, 3.0, 4.0], f32=True)],
        [step("add", a=0, b=1), step("matmul", a=0, b=1), step("concat", a=0, b=1, mode=2),
         step("nt_xent", a=0, b=1, flags=TWO_VIEWS)]),
    "ties": program(
        [tensor([2, 3], [2.0, 2.0, 1.0, -1.0, -1.0, -1.0])],
        [step("max", a=0, axis_or_reduction=axis_byte(1)), step("max", a=0, flags=ALL_ELEMENTS),
         step("masked_max", a=0, axis_or_reduction=axis_byte(1), mode=mask_mode(0, 1))]),
    "bad_axes_and_indices": program(
        COMMON[:1],
        [step("sum", a=0, axis_or_reduction=255), step("normalize", a=0, axis_or_reduction=254),
         step("select_rows", a=0, mode=2, extra=[255, 4]), step("select_per_row", a=0, mode=7, extra=[254]),
         step("reshape", a=0, mode=2 + 4 * 3, extra=[7, 1, 0])]),
}

# x = 1/16 feeds two products with c = 1e300·6.9375⁹ ≈ 3.7e307 (nine mul_scalar steps). Each
# product's input gradient 3·c is finite, but their sum in x's gradient overflows.
_chain = [step("mul_scalar", a=1 + i, scalar=value_byte(6.9375)) for i in range(9)]
EDGE_SEEDS["gradient_sum_overflow"] = program(
    [tensor([1], [0.0625]), tensor([1], ["1e300"], constant=True)],
    _chain + [step("mul", a=0, b=10), step("mul", a=0, b=10), step("mul_scalar", a=11, scalar=value_byte(3.0)),
              step("mul_scalar", a=12, scalar=value_byte(3.0)), step("add", a=13, b=14)])


def main():
    corpus = pathlib.Path(__file__).resolve().parent / "fuzz-corpus"
    corpus.mkdir(exist_ok=True)
    for old in corpus.glob("*.bin"):
        old.unlink()
    covered = set()
    for name, steps in SEEDS.items():
        # Two ops on result 0 first give the broadcast operand [3] (result 4) and a scalar (result 5).
        prefix = [step("sum", a=0, axis_or_reduction=axis_byte(0)), step("sum", a=0, flags=ALL_ELEMENTS)]
        (corpus / f"{name}.bin").write_bytes(program(COMMON, prefix + steps))
        covered.update(OPS[s[0]] for s in steps)
    for name, data in EDGE_SEEDS.items():
        (corpus / f"{name}.bin").write_bytes(data)
    missing = set(OPS) - covered
    assert not missing, f"ops without a seed: {sorted(missing)}"
    print(f"wrote {len(SEEDS) + len(EDGE_SEEDS)} seeds to {corpus}")


if __name__ == "__main__":
    main()
