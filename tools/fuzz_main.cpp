// tapegrad-fuzz: a libFuzzer target that decodes each input into a small program over the public
// API, runs it forward and backward twice (anomaly mode off, then on) and aborts with a message
// on stderr when an invariant breaks. tools/fuzz.sh builds and runs it. To replay a saved input:
//
//     build-fuzz/tools/tapegrad-fuzz FILE              # runs the input once
//     TAPEGRAD_FUZZ_TRACE=1 build-fuzz/tools/tapegrad-fuzz FILE   # also prints every step
//
// Input format (bytes past the end read as 0, so every input is a valid program):
//   byte 0            number of inputs, 1 + b % 4
//   per input         a kind byte, a rank byte (b % 4), one byte per extent (b % 6, so extents
//                     0 to 5), then one value byte per element. Kind bit 0 selects f32 over f64
//                     and bit 1 a constant over a leaf. With bits 2-4 all set the input is
//                     boolean, which Tape::leaf rejects.
//   then              up to max_steps records of step_size bytes, one op each (see Step)
// A value byte below 224 is the ordinary value (b − 112) / 16. From 224 up it selects an entry of
// special_values: ±0, ±1, subnormals, 1e±300, FLT_MAX, exp's overflow points, ±inf and NaN.
//
// Invariants, each an abort when broken:
//   1. Nothing but tapegrad::Error and its subclasses escapes an op, a leaf, a constant or
//      backward, and no sanitizer reports anything (fuzz.sh makes UBSan reports fatal).
//   2. Without anomaly mode, an op that raises leaves the tape as it was (same node count).
//   3. After any exception the tape still works: one more op on a new leaf and backward from it
//      give the expected gradient.
//   4. Anomaly mode only rejects with a ValueError saying "anomaly mode", and only ops and sweeps
//      that succeed without it; it never accepts an op that fails without it.
//   5. When every input and every scalar argument is finite and the run without anomaly mode
//      gives a non-finite op output or leaf gradient, the run with anomaly mode raises.
//   6. After a backward sweep each leaf gradient has its leaf's shape and dtype.

#include <tapegrad/tapegrad.hpp>

#include <array>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace tg = tapegrad;

namespace {

constexpr std::size_t max_inputs = 4;
constexpr std::size_t max_steps = 16;
constexpr std::size_t step_size = 16;

constexpr double inf = std::numeric_limits<double>::infinity();
constexpr double nan = std::numeric_limits<double>::quiet_NaN();
constexpr double subnormal = std::numeric_limits<double>::denorm_min();

// Values at the domain edges of the ops. 1e-40 is subnormal in f32, and 1e154 squared overflows
// in normalize's f64 norm. 710 and 89 overflow exp in f64 and f32, and -750 underflows it.
constexpr std::array<double, 24> special_values = {
    0.0,  -0.0,  1.0,  -1.0, subnormal, 1e-300, 1e-40, 1e300, -1e300, FLT_MAX, -FLT_MAX, 1e154,
    710.0, 89.0, -750.0, 1e-8, inf,     -inf,   nan,   0.1,   1e-12,  2.0,     1e20,     -1e20,
};

constexpr std::array<double, 16> temperatures = {
    0.5, 0.1, 1.0, 2.0, 0.01, 0.0, -0.0, -0.5, nan, inf, -inf, 1e-300, subnormal, 1e300, FLT_MAX, 1e-8,
};

constexpr std::array<double, 10> normalize_eps_values = {
    1e-12, 1e-6, 1.0, 0.0, -1e-12, nan, inf, 1e-300, subnormal, 1e300,
};

double decode_value(std::uint8_t byte) {
  if (byte < 224) {
    return (static_cast<double>(byte) - 112.0) / 16.0;
  }
  return special_values[static_cast<std::size_t>(byte - 224) % special_values.size()];
}

// An axis in [-5, 5], or one of the extremes of std::int64_t.
std::int64_t decode_axis(std::uint8_t byte) {
  if (byte == 255) {
    return std::numeric_limits<std::int64_t>::min();
  }
  if (byte == 254) {
    return std::numeric_limits<std::int64_t>::max();
  }
  return static_cast<std::int64_t>(byte % 11) - 5;
}

// An index in [-extent, extent] (the last one out of range), or one of the extremes of std::int64_t.
std::int64_t decode_index(std::uint8_t byte, std::int64_t extent) {
  if (byte == 255) {
    return std::numeric_limits<std::int64_t>::min();
  }
  if (byte == 254) {
    return std::numeric_limits<std::int64_t>::max();
  }
  return static_cast<std::int64_t>(byte) % (2 * extent + 1) - extent;
}

class ByteReader {
 public:
  ByteReader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint8_t next() { return position_ < size_ ? data_[position_++] : 0; }
  bool exhausted() const { return position_ >= size_; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t position_ = 0;
};

// ---- The decoded program -------------------------------------------------------------------

struct InputSpec {
  tg::Dtype dtype = tg::Dtype::f64;
  bool constant = false;
  tg::Shape shape;
  std::vector<double> values;
};

enum class OpCode : std::uint8_t {
  add, sub, mul, div, add_scalar, sub_scalar, mul_scalar, div_scalar, neg, exp, log, relu,
  normalize, sum, mean, max, where, where_scalar, masked_sum, masked_mean, masked_max,
  masked_logsumexp, matmul, transpose, transpose_axes, reshape, concat, select_rows,
  select_per_row, nt_xent, count,
};

constexpr std::array<std::string_view, static_cast<std::size_t>(OpCode::count)> op_names = {
    "add", "sub", "mul", "div", "add_scalar", "sub_scalar", "mul_scalar", "div_scalar", "neg", "exp",
    "log", "relu", "normalize", "sum", "mean", "max", "where", "where_scalar", "masked_sum",
    "masked_mean", "masked_max", "masked_logsumexp", "matmul", "transpose", "transpose_axes",
    "reshape", "concat", "select_rows", "select_per_row", "nt_xent",
};

// One op: a record of step_size bytes. Byte 0 is the op code (b % OpCode::count). The others:
//   1-3   operands, each an index into the results so far (b % count)
//   4     axis (decode_axis), or the reduction of nt_xent (b % 3: mean, sum, none)
//   5     flags: bit 0 keepdim, 1 transpose_a, 2 transpose_b, 3 scalar on the left, 4 interleaved
//         layout, 5 composed NT-Xent, 6 NT-Xent of two views, 7 the all-elements form of a reduction
//   6     scalar (decode_value), normalize's eps, NT-Xent's temperature, or transpose's second axis
//   7     mask kind, index count, reshape mode, concat's operand count, or NT-Xent's
//         fused_cache_bytes (b % 3: the default, 0, or -1, which must be rejected)
//   8-15  mask bits, indices or reshape extents
// The bits of byte 5, in order from bit 0.
enum class Flag { keepdim, transpose_a, transpose_b, scalar_left, interleaved, composed, two_views, all_elements };

struct Step {
  OpCode op = OpCode::add;
  std::array<std::uint8_t, step_size> bytes{};

  std::uint8_t operand(int position) const { return bytes[static_cast<std::size_t>(1 + position)]; }
  std::int64_t axis() const { return decode_axis(bytes[4]); }
  bool flag(Flag bit) const { return ((bytes[5] >> static_cast<int>(bit)) & 1) != 0; }
  double scalar() const { return decode_value(bytes[6]); }
  std::uint8_t mode() const { return bytes[7]; }
  std::uint8_t extra(int position) const { return bytes[static_cast<std::size_t>(8 + position)]; }
};


struct Program {
  std::vector<InputSpec> inputs;
  std::vector<Step> steps;
};

Program decode_program(const std::uint8_t* data, std::size_t size) {
  ByteReader reader(data, size);
  Program program;
  const std::size_t input_count = 1 + reader.next() % max_inputs;
  for (std::size_t i = 0; i < input_count; ++i) {
    InputSpec input;
    const std::uint8_t kind = reader.next();
    input.constant = (kind & 2) != 0;
    if (((kind >> 2) & 7) == 7) {
      input.dtype = tg::Dtype::boolean;
    } else {
      input.dtype = (kind & 1) != 0 ? tg::Dtype::f32 : tg::Dtype::f64;
    }
    const int rank = reader.next() % 4;
    for (int axis = 0; axis < rank; ++axis) {
      input.shape.push_back(reader.next() % 6);
    }
    for (std::int64_t element = 0; element < input.shape.numel(); ++element) {
      input.values.push_back(decode_value(reader.next()));
    }
    program.inputs.push_back(std::move(input));
  }
  while (!reader.exhausted() && program.steps.size() < max_steps) {
    Step step;
    for (std::uint8_t& byte : step.bytes) {
      byte = reader.next();
    }
    step.op = static_cast<OpCode>(step.bytes[0] % static_cast<std::uint8_t>(OpCode::count));
    program.steps.push_back(step);
  }
  return program;
}

// ---- Building masks, indices and shapes from a step ------------------------------------------

// Builds a mask for x. Byte 7 % 6 selects its shape:
//   0 x's shape, 1 x's last axis alone (a row that broadcasts), 2 x's shape with the last extent 1
//   (a column), 3 a scalar, 4 x's shape with every extent plus one (a mismatch), 5 x's shape in
//   f64 (a dtype mismatch).
// Byte 7 / 6 % 4 selects the fill: 0 all false, 1 all true, 2 bits 8-15, 3 those bits with the
// first half of the elements false, so some rows are all false.
tg::Tensor build_mask(const Step& step, const tg::Shape& x_shape) {
  const int shape_kind = step.mode() % 6;
  const int fill_kind = (step.mode() / 6) % 4;
  tg::Shape shape;
  tg::Dtype dtype = tg::Dtype::boolean;
  switch (shape_kind) {
    case 0: shape = x_shape; break;
    case 1:
      if (x_shape.rank() > 0) {
        shape.push_back(x_shape[x_shape.rank() - 1]);
      }
      break;
    case 2:
      shape = x_shape;
      if (shape.rank() > 0) {
        shape[shape.rank() - 1] = 1;
      }
      break;
    case 3: break;
    case 4:
      for (std::int64_t extent : x_shape) {
        shape.push_back(extent + 1);
      }
      break;
    default:
      shape = x_shape;
      dtype = tg::Dtype::f64;
      break;
  }
  std::uint64_t bits = 0;
  for (int i = 0; i < 8; ++i) {
    bits |= static_cast<std::uint64_t>(step.extra(i)) << (8 * i);
  }
  std::vector<double> values(static_cast<std::size_t>(shape.numel()));
  for (std::size_t i = 0; i < values.size(); ++i) {
    const bool bit = ((bits >> (i % 64)) & 1) != 0;
    switch (fill_kind) {
      case 0: values[i] = 0.0; break;
      case 1: values[i] = 1.0; break;
      case 2: values[i] = bit ? 1.0 : 0.0; break;
      default: values[i] = (2 * i >= values.size() && bit) ? 1.0 : 0.0; break;
    }
  }
  return tg::Tensor::from_values(shape, values, dtype);
}

// Builds the target shape of a reshape of numel elements. Byte 7 % 4 selects the mode:
//   0 a valid shape of rank (byte 7 / 4) % 4, 1 the same with one extent replaced by -1,
//   2 extents (b % 8) − 2 from bytes 8-11 (mostly invalid), 3 the flat shape [numel].
tg::Shape build_reshape_target(const Step& step, std::int64_t numel) {
  const int mode = step.mode() % 4;
  const int rank = (step.mode() / 4) % 4;
  tg::Shape shape;
  if (mode == 3) {
    shape.push_back(numel);
    return shape;
  }
  if (mode == 2) {
    for (int axis = 0; axis < rank; ++axis) {
      shape.push_back(static_cast<std::int64_t>(step.extra(axis) % 8) - 2);
    }
    return shape;
  }
  std::int64_t remaining = numel;
  for (int axis = 0; axis + 1 < rank; ++axis) {
    std::int64_t extent = 0;
    if (remaining == 0) {
      extent = step.extra(axis) % 6;
    } else {
      std::vector<std::int64_t> divisors;
      for (std::int64_t d = 1; d <= remaining; ++d) {
        if (remaining % d == 0) {
          divisors.push_back(d);
        }
      }
      extent = divisors[step.extra(axis) % divisors.size()];
      remaining /= extent;
    }
    shape.push_back(extent);
  }
  if (rank > 0) {
    shape.push_back(remaining);
  }
  if (mode == 1 && rank > 0) {
    shape[step.extra(7) % rank] = -1;
  }
  return shape;
}

// ---- Running a program -----------------------------------------------------------------------

bool trace_enabled = false;

bool all_finite(const tg::Tensor& tensor) {
  if (!tg::is_floating(tensor.dtype())) {
    return true;
  }
  for (std::int64_t i = 0; i < tensor.numel(); ++i) {
    if (!std::isfinite(tensor.flat(i))) {
      return false;
    }
  }
  return true;
}

[[noreturn]] void fail(std::string_view message) {
  std::fprintf(stderr, "tapegrad-fuzz: invariant broken: %.*s\n", static_cast<int>(message.size()), message.data());
  std::fprintf(stderr, "tapegrad-fuzz: rerun the saved input with TAPEGRAD_FUZZ_TRACE=1 to print its steps\n");
  std::abort();
}

// The outcome of one call: success, or the message of the tapegrad::Error it raised.
struct Attempt {
  bool succeeded = true;
  bool value_error = false;
  std::string message;

  bool is_anomaly() const { return value_error && message.find("anomaly mode") != std::string::npos; }
};

template <class Function>
Attempt attempt(std::string_view what, Function&& function) {
  try {
    function();
    return {};
  } catch (const tg::ValueError& error) {
    return {.succeeded = false, .value_error = true, .message = error.what()};
  } catch (const tg::Error& error) {
    return {.succeeded = false, .value_error = false, .message = error.what()};
  } catch (const std::exception& error) {
    fail(fmt::format("{} raised an exception that is not a tapegrad::Error: {}", what, error.what()));
  } catch (...) {
    fail(fmt::format("{} raised something that is not a std::exception", what));
  }
}

// Records one op on a new leaf and runs backward from it: the tape must still work.
void check_tape_usable(tg::Tape& tape, std::string_view after) {
  const Attempt probe = attempt("the probe op after an exception", [&] {
    const tg::Var p = tape.leaf(tg::Tensor::from_values({2}, {1.0, 2.0}));
    const tg::Var y = tg::sum(p * p);
    tape.backward(y);
    const tg::Tensor gradient = p.grad();
    // d/dp Σ p² = 2p, exact in binary floating point.
    if (gradient.at({0}) != 2.0 || gradient.at({1}) != 4.0) {
      fail(fmt::format("after {}, the probe's gradient is {} instead of [2, 4]", after, gradient));
    }
  });
  if (!probe.succeeded) {
    fail(fmt::format("after {}, the tape rejects a valid op and backward: {}", after, probe.message));
  }
}

tg::Var pick(const std::vector<tg::Var>& results, std::uint8_t byte) {
  return results[byte % results.size()];
}

tg::NtXentOptions nt_xent_options(const Step& step) {
  tg::NtXentOptions options;
  options.temperature = temperatures[step.bytes[6] % temperatures.size()];
  options.layout = step.flag(Flag::interleaved) ? tg::Layout::interleaved : tg::Layout::concatenated;
  const std::array<tg::Reduction, 3> reductions = {tg::Reduction::mean, tg::Reduction::sum, tg::Reduction::none};
  options.reduction = reductions[step.bytes[4] % reductions.size()];
  options.implementation = step.flag(Flag::composed) ? tg::NtXentImplementation::composed : tg::NtXentImplementation::fused;
  // 0 makes the fused backward compute its tiles again, the path of batches too large to keep.
  const std::array<std::int64_t, 3> cache_limits = {options.fused_cache_bytes, 0, -1};
  options.fused_cache_bytes = cache_limits[step.mode() % cache_limits.size()];
  return options;
}

// True when the step passes a double to the op that anomaly mode counts as an input.
bool has_scalar_argument(const Step& step) {
  switch (step.op) {
    case OpCode::add_scalar:
    case OpCode::sub_scalar:
    case OpCode::mul_scalar:
    case OpCode::div_scalar:
    case OpCode::where_scalar: return true;
    default: return false;
  }
}

template <class Function>
tg::Var scalar_op(const Step& step, const tg::Var& x, Function&& function) {
  return step.flag(Flag::scalar_left) ? function(step.scalar(), x) : function(x, step.scalar());
}

// A reduction in its all-elements form, or along the step's axis.
template <class Whole, class AlongAxis>
tg::Var reduction(const Step& step, Whole&& whole, AlongAxis&& along_axis) {
  return step.flag(Flag::all_elements) ? whole() : along_axis(step.axis(), step.flag(Flag::keepdim));
}

tg::Var run_step(const Step& step, const std::vector<tg::Var>& results) {
  const tg::Var a = pick(results, step.operand(0));
  const tg::Var b = pick(results, step.operand(1));
  const tg::Var c = pick(results, step.operand(2));
  switch (step.op) {
    case OpCode::add: return a + b;
    case OpCode::sub: return a - b;
    case OpCode::mul: return a * b;
    case OpCode::div: return a / b;
    case OpCode::add_scalar:
      return scalar_op(step, a, [](const auto& left, const auto& right) { return left + right; });
    case OpCode::sub_scalar:
      return scalar_op(step, a, [](const auto& left, const auto& right) { return left - right; });
    case OpCode::mul_scalar:
      return scalar_op(step, a, [](const auto& left, const auto& right) { return left * right; });
    case OpCode::div_scalar:
      return scalar_op(step, a, [](const auto& left, const auto& right) { return left / right; });
    case OpCode::neg: return -a;
    case OpCode::exp: return tg::exp(a);
    case OpCode::log: return tg::log(a);
    case OpCode::relu: return tg::relu(a);
    case OpCode::normalize:
      return tg::normalize(a, step.axis(), normalize_eps_values[step.bytes[6] % normalize_eps_values.size()]);
    case OpCode::sum:
      return reduction(step, [&] { return tg::sum(a); },
                       [&](std::int64_t axis, bool keep) { return tg::sum(a, axis, keep); });
    case OpCode::mean:
      return reduction(step, [&] { return tg::mean(a); },
                       [&](std::int64_t axis, bool keep) { return tg::mean(a, axis, keep); });
    case OpCode::max:
      return reduction(step, [&] { return tg::max(a); },
                       [&](std::int64_t axis, bool keep) { return tg::max(a, axis, keep); });
    case OpCode::where: return tg::where(build_mask(step, a.shape()), a, b);
    case OpCode::where_scalar: return tg::where(build_mask(step, a.shape()), a, step.scalar());
    case OpCode::masked_sum: {
      const tg::Tensor mask = build_mask(step, a.shape());
      return reduction(step, [&] { return tg::masked_sum(a, mask); },
                       [&](std::int64_t axis, bool keep) { return tg::masked_sum(a, mask, axis, keep); });
    }
    case OpCode::masked_mean: {
      const tg::Tensor mask = build_mask(step, a.shape());
      return reduction(step, [&] { return tg::masked_mean(a, mask); },
                       [&](std::int64_t axis, bool keep) { return tg::masked_mean(a, mask, axis, keep); });
    }
    case OpCode::masked_max: {
      const tg::Tensor mask = build_mask(step, a.shape());
      return reduction(step, [&] { return tg::masked_max(a, mask); },
                       [&](std::int64_t axis, bool keep) { return tg::masked_max(a, mask, axis, keep); });
    }
    case OpCode::masked_logsumexp: {
      const tg::Tensor mask = build_mask(step, a.shape());
      return reduction(step, [&] { return tg::masked_logsumexp(a, mask); },
                       [&](std::int64_t axis, bool keep) { return tg::masked_logsumexp(a, mask, axis, keep); });
    }
    case OpCode::matmul:
      return tg::matmul(a, b, {.transpose_a = step.flag(Flag::transpose_a), .transpose_b = step.flag(Flag::transpose_b)});
    case OpCode::transpose: return tg::transpose(a);
    case OpCode::transpose_axes: return tg::transpose(a, step.axis(), decode_axis(step.bytes[6]));
    case OpCode::reshape: return tg::reshape(a, build_reshape_target(step, a.value().numel()));
    case OpCode::concat: {
      const std::array<tg::Var, 3> operands = {a, b, c};
      const std::size_t count = step.mode() % 4;
      return tg::concat(std::span<const tg::Var>(operands.data(), count), step.axis());
    }
    case OpCode::select_rows: {
      const std::int64_t rows = a.shape().rank() > 0 ? a.shape()[0] : 0;
      std::vector<std::int64_t> indices;
      for (int i = 0; i < step.mode() % 9; ++i) {
        indices.push_back(decode_index(step.extra(i), rows));
      }
      return tg::select_rows(a, indices);
    }
    case OpCode::select_per_row: {
      const bool matrix = a.shape().rank() == 2;
      const std::int64_t rows = matrix ? a.shape()[0] : 0;
      const std::int64_t columns = matrix ? a.shape()[1] : 0;
      // Mode 7 passes one index too many, which must raise ShapeError.
      const std::int64_t count = rows + (step.mode() % 8 == 7 ? 1 : 0);
      std::vector<std::int64_t> indices;
      for (std::int64_t i = 0; i < count; ++i) {
        indices.push_back(decode_index(step.extra(static_cast<int>(i % 8)), columns));
      }
      return tg::select_per_row(a, indices);
    }
    case OpCode::nt_xent:
      return step.flag(Flag::two_views) ? tg::nt_xent(a, b, nt_xent_options(step)) : tg::nt_xent(a, nt_xent_options(step));
    case OpCode::count: break;
  }
  fail("run_step got an op code past the end of OpCode");
}

// The record of one run of a program that the invariants between the two runs compare.
struct RunRecord {
  std::vector<Attempt> inputs;
  std::vector<Attempt> steps;  // one per step that ran
  std::optional<Attempt> backward;
  bool inputs_finite = true;
  bool scalars_finite = true;  // the scalar argument of every step that succeeded
  std::string first_non_finite;  // empty when every output and leaf gradient is finite
  bool anomaly_raised = false;
  bool stopped_early = false;  // anomaly mode rejected a step that succeeded in the reference
};

void trace(std::string_view line) {
  if (trace_enabled) {
    std::fprintf(stderr, "  %.*s\n", static_cast<int>(line.size()), line.data());
  }
}

// Runs the program on one tape. `reference` is the record of the run without anomaly mode when
// this is the run with it: the two must agree step by step until anomaly mode rejects a step.
RunRecord run_program(const Program& program, bool detect_anomaly, const RunRecord* reference) {
  RunRecord record;
  tg::Tape tape({.detect_anomaly = detect_anomaly});
  std::vector<tg::Var> results;
  std::vector<tg::Var> leaves;

  for (std::size_t i = 0; i < program.inputs.size(); ++i) {
    const InputSpec& spec = program.inputs[i];
    const Attempt created = attempt("creating an input", [&] {
      const tg::Tensor value = tg::Tensor::from_values(spec.shape, spec.values, spec.dtype);
      record.inputs_finite = record.inputs_finite && all_finite(value);
      const tg::Var var = spec.constant ? tape.constant(value) : tape.leaf(value);
      results.push_back(var);
      if (!spec.constant) {
        leaves.push_back(var);
      }
    });
    trace(fmt::format("input {}: {} {} {} -> {}", i, spec.constant ? "constant" : "leaf", spec.dtype, spec.shape,
                      created.succeeded ? fmt::format("result {}: {}", results.size() - 1, results.back().value())
                                        : created.message));
    if (!created.succeeded) {
      check_tape_usable(tape, "a rejected input");
    }
    record.inputs.push_back(created);
  }
  if (reference != nullptr) {
    for (std::size_t i = 0; i < record.inputs.size(); ++i) {
      if (record.inputs[i].succeeded != reference->inputs[i].succeeded) {
        fail(fmt::format("input {} succeeds in one run and fails in the other", i));
      }
    }
  }
  if (results.empty()) {
    return record;
  }

  for (std::size_t index = 0; index < program.steps.size(); ++index) {
    const Step& step = program.steps[index];
    const std::string_view name = op_names[static_cast<std::size_t>(step.op)];
    const std::int64_t size_before = tape.size();
    tg::Var output;
    const Attempt outcome = attempt(name, [&] { output = run_step(step, results); });
    trace(fmt::format("step {}: {}(result {}, {}, {}), bytes {:02x} -> {}", index, name,
                      step.operand(0) % results.size(), step.operand(1) % results.size(),
                      step.operand(2) % results.size(), fmt::join(step.bytes, " "),
                      outcome.succeeded ? fmt::format("result {}: {}", results.size(), output.value()) : outcome.message));
    record.steps.push_back(outcome);

    if (reference != nullptr) {
      const Attempt& expected = reference->steps[index];
      if (outcome.succeeded && !expected.succeeded) {
        fail(fmt::format("step {} ({}) fails without anomaly mode ({}) but succeeds with it", index, name,
                         expected.message));
      }
      if (!outcome.succeeded && expected.succeeded) {
        if (!outcome.is_anomaly()) {
          fail(fmt::format("step {} ({}) succeeds without anomaly mode but with it raises {}", index, name,
                           outcome.message));
        }
        record.anomaly_raised = true;
        record.stopped_early = true;
        check_tape_usable(tape, fmt::format("anomaly mode rejected step {} ({})", index, name));
        return record;
      }
    }

    if (!outcome.succeeded) {
      // Ops check their arguments before recording anything. Composite ops then record their
      // inner ops one by one, so anomaly mode can reject an inner op after others were recorded.
      if (!detect_anomaly && tape.size() != size_before) {
        fail(fmt::format("step {} ({}) raised but left {} node(s) on the tape: {}", index, name,
                         tape.size() - size_before, outcome.message));
      }
      check_tape_usable(tape, fmt::format("step {} ({}) raised", index, name));
      continue;
    }

    if (has_scalar_argument(step) && !std::isfinite(step.scalar())) {
      record.scalars_finite = false;
    }
    if (record.first_non_finite.empty() && !all_finite(output.value())) {
      record.first_non_finite = fmt::format("the output of step {} ({})", index, name);
    }
    results.push_back(output);
  }

  tg::Var loss;
  const Attempt swept = attempt("backward", [&] {
    loss = tg::sum(results.back());
    tape.backward(loss);
  });
  trace(fmt::format("backward from the sum of result {} -> {}", results.size() - 1,
                    swept.succeeded ? fmt::format("loss {}", loss.value()) : swept.message));
  for (std::size_t i = 0; swept.succeeded && i < leaves.size(); ++i) {
    trace(fmt::format("gradient of leaf {}: {}", i, leaves[i].grad()));
  }
  record.backward = swept;
  if (reference != nullptr && reference->backward.has_value()) {
    if (swept.succeeded && !reference->backward->succeeded) {
      fail(fmt::format("backward fails without anomaly mode ({}) but succeeds with it", reference->backward->message));
    }
    if (!swept.succeeded && reference->backward->succeeded) {
      if (!swept.is_anomaly()) {
        fail(fmt::format("backward succeeds without anomaly mode but with it raises {}", swept.message));
      }
      record.anomaly_raised = true;
    }
  }
  if (!swept.succeeded) {
    check_tape_usable(tape, "backward raised");
    return record;
  }

  if (record.first_non_finite.empty() && !all_finite(loss.value())) {
    record.first_non_finite = "the sum that seeds backward";
  }
  for (std::size_t i = 0; i < leaves.size(); ++i) {
    const tg::Tensor gradient = leaves[i].grad();
    if (gradient.shape() != leaves[i].shape() || gradient.dtype() != leaves[i].dtype()) {
      fail(fmt::format("leaf {} of shape {} and dtype {} has a gradient of shape {} and dtype {}", i,
                       leaves[i].shape(), leaves[i].dtype(), gradient.shape(), gradient.dtype()));
    }
    if (record.first_non_finite.empty() && !all_finite(gradient)) {
      record.first_non_finite = fmt::format("the gradient of leaf {}", i);
    }
  }
  return record;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  trace_enabled = std::getenv("TAPEGRAD_FUZZ_TRACE") != nullptr;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const Program program = decode_program(data, size);

  trace("without anomaly mode:");
  const RunRecord reference = run_program(program, false, nullptr);
  trace("with anomaly mode:");
  const RunRecord checked = run_program(program, true, &reference);

  const bool finite_arguments = reference.inputs_finite && reference.scalars_finite;
  if (finite_arguments && !reference.first_non_finite.empty() && !checked.anomaly_raised) {
    fail(fmt::format("every input and scalar argument is finite and, without anomaly mode, {} is not, "
                     "but anomaly mode raised nothing",
                     reference.first_non_finite));
  }
  return 0;
}
