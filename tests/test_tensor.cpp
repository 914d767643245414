// Tensor factories, element access, conversion and printing.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include <fmt/format.h>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

namespace {

double mean_of(const std::vector<double>& values) {
  return std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
}

double variance_of(const std::vector<double>& values) {
  const double mean = mean_of(values);
  double squares = 0.0;
  for (double value : values) {
    squares += (value - mean) * (value - mean);
  }
  return squares / static_cast<double>(values.size());
}

}  // namespace

// ---- factories -------------------------------------------------------------------------------

TEST_CASE("from_values stores row-major f64 by default") {
  const tg::Tensor t = tg::Tensor::from_values({2, 3}, {0.1, 0.2, 0.3, 0.4, 0.5, 0.6});
  CHECK(t.dtype() == tg::Dtype::f64);
  CHECK(t.shape() == tg::Shape{2, 3});
  CHECK(t.at({1, 2}) == 0.6);
  CHECK(t.at({-1, 0}) == 0.4);
  CHECK(reinterpret_cast<std::uintptr_t>(t.raw_data()) % 64 == 0);
}

TEST_CASE("from_values with the wrong count names both") {
  CHECK_THROWS_AS(tg::Tensor::from_values({2, 3}, {1, 2, 3}), tg::ShapeError);
  CHECK_THROWS_WITH(tg::Tensor::from_values({2, 3}, {1, 2, 3}), doctest::Contains("3 values for shape [2, 3]"));
}

TEST_CASE("zeros ones and full in each dtype") {
  const tg::Tensor zeros = tg::Tensor::zeros({2, 2}, tg::Dtype::f32);
  CHECK(zeros.dtype() == tg::Dtype::f32);
  CHECK(zeros.to_vector() == std::vector<double>{0, 0, 0, 0});

  const tg::Tensor ones = tg::Tensor::ones({3});
  CHECK(ones.dtype() == tg::Dtype::f64);
  CHECK(ones.to_vector() == std::vector<double>{1, 1, 1});

  const tg::Tensor full = tg::Tensor::full({1, 2}, -2.5, tg::Dtype::f32);
  CHECK(full.data<float>()[0] == -2.5f);
  CHECK(full.data<float>()[1] == -2.5f);

  // A non-zero fill value is true in a boolean tensor.
  const tg::Tensor mask = tg::Tensor::full({2}, 0.5, tg::Dtype::boolean);
  CHECK(mask.data<bool>()[0]);
  CHECK(mask.data<bool>()[1]);
  CHECK_FALSE(tg::Tensor::zeros({1}, tg::Dtype::boolean).data<bool>()[0]);
}

TEST_CASE("scalar and empty tensors") {
  const tg::Tensor scalar = tg::Tensor::full({}, 4.0);
  CHECK(scalar.rank() == 0);
  CHECK(scalar.numel() == 1);
  CHECK(scalar.item() == 4.0);
  CHECK(scalar.at({}) == 4.0);

  const tg::Tensor empty = tg::Tensor::zeros({0, 3});
  CHECK(empty.numel() == 0);
  CHECK(empty.defined());
  CHECK(empty.raw_data() != nullptr);
  CHECK(empty.to_vector().empty());
}

TEST_CASE("from_values to boolean maps non-zero to true") {
  const tg::Tensor mask = tg::Tensor::from_values({2, 3}, {1, 0, 1, 1, 1, 0}, tg::Dtype::boolean);
  CHECK(mask.dtype() == tg::Dtype::boolean);
  CHECK(mask.to_vector() == std::vector<double>{1, 0, 1, 1, 1, 0});
  const tg::Tensor signs = tg::Tensor::from_values({3}, {-3.0, -0.0, 1e-300}, tg::Dtype::boolean);
  CHECK(signs.to_vector() == std::vector<double>{1, 0, 1});
}

TEST_CASE("factories reject negative extents") {
  CHECK_THROWS_AS(tg::Tensor::zeros({2, -3}), tg::ShapeError);
  CHECK_THROWS_WITH(tg::Tensor::zeros({2, -3}), doctest::Contains("shape [2, -3]"));
  CHECK_THROWS_AS(tg::Tensor::from_values({-1}, {}), tg::ShapeError);
  CHECK_THROWS_AS(tg::Tensor::randn({-2}, 1), tg::ShapeError);
  CHECK_THROWS_WITH(tg::Tensor::uniform({3, -1}, 0, 1, 1), doctest::Contains("Tensor::uniform"));
}

TEST_CASE("factories reject a shape too large to address") {
  // 2^31 · 2^31 = 2^62 elements of 8 bytes is 2^65 bytes, which wraps to 0 in std::size_t: the
  // factory must raise before it allocates instead of filling a 1-byte buffer.
  const std::int64_t two_to_31 = std::int64_t{1} << 31;
  CHECK_THROWS_AS(tg::Tensor::zeros({two_to_31, two_to_31}), tg::ShapeError);
  CHECK_THROWS_WITH(tg::Tensor::zeros({two_to_31, two_to_31}), doctest::Contains("shape [2147483648, 2147483648]"));
  CHECK_THROWS_WITH(tg::Tensor::zeros({two_to_31, two_to_31}), doctest::Contains("dtype f64"));
  // 2^32 · 2^32 overflows std::int64_t itself.
  const std::int64_t two_to_32 = std::int64_t{1} << 32;
  CHECK_THROWS_AS(tg::Tensor::from_values({two_to_32, two_to_32}, {}), tg::ShapeError);
  CHECK_THROWS_AS(tg::Tensor::empty({two_to_32, two_to_32}, tg::Dtype::boolean), tg::ShapeError);
}

TEST_CASE("randn is reproducible from its seed") {
  const tg::Tensor a = tg::Tensor::randn({4, 4}, 7);
  const tg::Tensor b = tg::Tensor::randn({4, 4}, 7);
  const tg::Tensor c = tg::Tensor::randn({4, 4}, 8);
  CHECK(a.to_vector() == b.to_vector());
  CHECK(a.to_vector() != c.to_vector());
}

TEST_CASE("randn samples a standard normal") {
  // With n = 10000 the sample mean has standard deviation 0.01 and the sample variance about
  // sqrt(2 / n) = 0.014, so these bounds are 5 standard deviations wide.
  const std::vector<double> values = tg::Tensor::randn({100, 100}, 2024).to_vector();
  CHECK(std::abs(mean_of(values)) < 0.05);
  CHECK(std::abs(variance_of(values) - 1.0) < 0.07);
  const tg::Tensor f32 = tg::Tensor::randn({100, 100}, 2024, tg::Dtype::f32);
  CHECK(f32.dtype() == tg::Dtype::f32);
  // The f32 tensor holds the same samples, rounded.
  CHECK(f32.flat(17) == static_cast<double>(static_cast<float>(values[17])));
}

TEST_CASE("uniform samples lie in the half-open range") {
  const std::vector<double> values = tg::Tensor::uniform({10000}, -2.0, 3.0, 11).to_vector();
  CHECK(*std::min_element(values.begin(), values.end()) >= -2.0);
  CHECK(*std::max_element(values.begin(), values.end()) < 3.0);
  // The range is 5 wide: 10000 samples leave no gap of 0.01 at either end except with
  // probability about 2 · exp(-20).
  CHECK(*std::min_element(values.begin(), values.end()) < -1.99);
  CHECK(*std::max_element(values.begin(), values.end()) > 2.99);
  // The mean of U(-2, 3) is 0.5 and the sample mean has standard deviation 5 / sqrt(12 · 10000) = 0.0144.
  CHECK(std::abs(mean_of(values) - 0.5) < 0.07);
  CHECK(values == tg::Tensor::uniform({10000}, -2.0, 3.0, 11).to_vector());
  CHECK(values != tg::Tensor::uniform({10000}, -2.0, 3.0, 12).to_vector());
}

TEST_CASE("uniform f32 samples stay below high") {
  // The range holds 8 floats and a double sample in the top half-step rounds up to high, so
  // without a guard about 1 sample in 16 would equal high.
  const double low = 1.0;
  const double high = 1.0 + std::ldexp(1.0, -20);
  const tg::Tensor samples = tg::Tensor::uniform({2000}, low, high, 5, tg::Dtype::f32);
  const std::vector<double> values = samples.to_vector();
  CHECK(*std::min_element(values.begin(), values.end()) >= low);
  CHECK(*std::max_element(values.begin(), values.end()) < high);
}

TEST_CASE("uniform f32 bounds beyond float") {
  // Bounds past the float range clamp to finite floats instead of rounding to infinity.
  const std::vector<double> values = tg::Tensor::uniform({100}, -1e300, 1e300, 9, tg::Dtype::f32).to_vector();
  CHECK(std::all_of(values.begin(), values.end(), [](double value) { return std::isfinite(value); }));
  // No float lies in [1 + 1e-12, 1 + 2e-12): the nearest are 1 and 1 + 2^-23.
  CHECK_THROWS_AS(tg::Tensor::uniform({2}, 1.0 + 1e-12, 1.0 + 2e-12, 9, tg::Dtype::f32), tg::ValueError);
  CHECK_THROWS_WITH(tg::Tensor::uniform({2}, 1.0 + 1e-12, 1.0 + 2e-12, 9, tg::Dtype::f32),
                    doctest::Contains("Tensor::uniform: an f32 range [low, high) must contain a float"));
  // In f64 the same range is valid.
  CHECK_NOTHROW(tg::Tensor::uniform({2}, 1.0 + 1e-12, 1.0 + 2e-12, 9));
}

TEST_CASE("uniform rejects invalid bounds with their values") {
  CHECK_THROWS_AS(tg::Tensor::uniform({2}, 1.0, 1.0, 3), tg::ValueError);
  CHECK_THROWS_WITH(tg::Tensor::uniform({2}, 2.0, -1.0, 3),
                    "Tensor::uniform: the bounds must be finite with low < high, but got low 2 and high -1");
  const double infinity = std::numeric_limits<double>::infinity();
  CHECK_THROWS_WITH(tg::Tensor::uniform({2}, 0.0, infinity, 3), doctest::Contains("high inf"));
  CHECK_THROWS_AS(tg::Tensor::uniform({2}, std::nan(""), 1.0, 3), tg::ValueError);
}

// ---- element access --------------------------------------------------------------------------

TEST_CASE("at item and flat read the same element") {
  const tg::Tensor t = tg::Tensor::from_values({2, 3, 2}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  // Row-major: index (1, 2, 0) is flat 1·6 + 2·2 + 0 = 10.
  CHECK(t.at({1, 2, 0}) == 10.0);
  CHECK(t.flat(10) == 10.0);
  CHECK(t.at({-1, -1, -1}) == 11.0);
  CHECK(t.at({0, -3, 1}) == 1.0);
  CHECK(t.size(0) == 2);
  CHECK(t.size(-1) == 2);
  CHECK(t.size(1) == 3);
  CHECK(tg::Tensor::full({1, 1}, 7.0).item() == 7.0);
}

TEST_CASE("at rejects out-of-range indices naming them") {
  const tg::Tensor t = tg::Tensor::zeros({2, 3});
  CHECK_THROWS_AS(t.at({2, 0}), tg::ShapeError);
  CHECK_THROWS_WITH(t.at({2, 0}), "Tensor::at: each index must be in [-extent, extent) of its axis, "
                                  "but got index [2, 0] for shape [2, 3] (axis 0)");
  CHECK_THROWS_WITH(t.at({0, -4}), doctest::Contains("index [0, -4] for shape [2, 3] (axis 1)"));
  CHECK_THROWS_AS(t.at({0, 3}), tg::ShapeError);
}

TEST_CASE("at rejects the wrong number of indices") {
  const tg::Tensor t = tg::Tensor::zeros({2, 3});
  CHECK_THROWS_AS(t.at({1}), tg::ShapeError);
  CHECK_THROWS_WITH(t.at({1}), "Tensor::at: at() needs one index per axis, but got an index of length 1 ([1]) for shape [2, 3]");
  CHECK_THROWS_WITH(t.at({0, 0, 0}), doctest::Contains("an index of length 3 ([0, 0, 0]) for shape [2, 3]"));
}

TEST_CASE("flat rejects out-of-range indices") {
  const tg::Tensor t = tg::Tensor::zeros({2, 3});
  CHECK_THROWS_AS(t.flat(6), tg::ShapeError);
  CHECK_THROWS_WITH(t.flat(6), "Tensor::flat: a flat index must be in [0, 6), but got index 6 for shape [2, 3]");
  CHECK_THROWS_WITH(t.flat(-1), doctest::Contains("index -1 for shape [2, 3]"));
  CHECK_THROWS_AS(tg::Tensor::zeros({0}).flat(0), tg::ShapeError);
}

TEST_CASE("item needs exactly one element") {
  CHECK_THROWS_AS(tg::Tensor::zeros({2, 3}).item(), tg::ShapeError);
  CHECK_THROWS_WITH(tg::Tensor::zeros({2, 3}).item(), doctest::Contains("shape [2, 3] (6 elements)"));
  CHECK_THROWS_WITH(tg::Tensor::zeros({0}).item(), doctest::Contains("shape [0] (0 elements)"));
}

TEST_CASE("size rejects an axis outside the rank") {
  const tg::Tensor t = tg::Tensor::zeros({2, 3});
  CHECK_THROWS_AS(t.size(2), tg::ShapeError);
  CHECK_THROWS_WITH(t.size(-3), doctest::Contains("Tensor::size: axis must be in [-2, 2)"));
}

TEST_CASE("typed access checks the dtype") {
  tg::Tensor t = tg::Tensor::ones({2}, tg::Dtype::f32);
  CHECK(t.data<float>()[0] == 1.0f);
  CHECK_THROWS_AS(t.data<double>(), tg::DtypeError);
  CHECK_THROWS_WITH(t.data<double>(), doctest::Contains("data<f64>() on a tensor of dtype f32"));
}

TEST_CASE("typed access rejects each wrong element type") {
  tg::Tensor f64 = tg::Tensor::zeros({2});
  tg::Tensor mask = tg::Tensor::zeros({2}, tg::Dtype::boolean);
  CHECK_THROWS_AS(f64.data<float>(), tg::DtypeError);
  CHECK_THROWS_WITH(f64.data<bool>(), doctest::Contains("data<boolean>() on a tensor of dtype f64"));
  CHECK_THROWS_WITH(mask.data<float>(), doctest::Contains("data<f32>() on a tensor of dtype boolean"));
  const tg::Tensor& read_only = mask;
  CHECK_THROWS_AS(read_only.data<double>(), tg::DtypeError);
  CHECK_NOTHROW(read_only.data<bool>());
}

TEST_CASE("an undefined tensor raises on access") {
  const tg::Tensor undefined;
  CHECK_FALSE(undefined.defined());
  CHECK_THROWS_AS(undefined.item(), tg::ValueError);
  CHECK_THROWS_WITH(undefined.item(), doctest::Contains("Tensor::item: the tensor must be defined"));
  CHECK_THROWS_AS(undefined.at({}), tg::ValueError);
  CHECK_THROWS_AS(undefined.data<double>(), tg::ValueError);
  CHECK_THROWS_AS(undefined.clone(), tg::ValueError);
  CHECK_THROWS_AS(undefined.to(tg::Dtype::f32), tg::ValueError);
}

// ---- sharing and copying ---------------------------------------------------------------------

TEST_CASE("copies share storage and clone copies") {
  tg::Tensor a = tg::Tensor::zeros({3});
  tg::Tensor b = a;
  tg::Tensor c = a.clone();
  b.data<double>()[1] = 5.0;
  CHECK(a.at({1}) == 5.0);
  CHECK(c.at({1}) == 0.0);
}

TEST_CASE("use_count counts handles and reshape shares") {
  tg::Tensor a = tg::Tensor::from_values({2, 3}, {1, 2, 3, 4, 5, 6});
  CHECK(a.use_count() == 1);
  tg::Tensor view = a.reshape({3, 2});
  CHECK(a.use_count() == 2);
  CHECK(view.raw_data() == a.raw_data());
  view.data<double>()[5] = -6.0;
  CHECK(a.at({1, 2}) == -6.0);

  const tg::Tensor copy = a.clone();
  CHECK(copy.use_count() == 1);
  CHECK(copy.raw_data() != a.raw_data());
  CHECK(reinterpret_cast<std::uintptr_t>(copy.raw_data()) % 64 == 0);
  CHECK(copy.to_vector() == a.to_vector());

  CHECK_THROWS_AS(a.reshape({4, 2}), tg::ShapeError);
  CHECK_THROWS_WITH(a.reshape({4, 2}), doctest::Contains("shape [2, 3] (6 elements) to [4, 2] (8 elements)"));
}

// ---- dtype conversion ------------------------------------------------------------------------

TEST_CASE("to f32 rounds each value to the nearest float") {
  const tg::Tensor f64 = tg::Tensor::from_values({4}, {0.1, 1.0 / 3.0, 1e-50, 1e300});
  const tg::Tensor f32 = f64.to(tg::Dtype::f32);
  CHECK(f32.dtype() == tg::Dtype::f32);
  // Expected values from python3: struct.unpack('f', struct.pack('f', x))[0].
  CHECK(f32.flat(0) == 0.10000000149011612);
  CHECK(f32.flat(1) == 0.3333333432674408);
  CHECK(f32.flat(2) == 0.0);
  CHECK(std::isinf(f32.flat(3)));
  // Back to f64 keeps the rounded value exactly.
  const tg::Tensor back = f32.to(tg::Dtype::f64);
  CHECK(back.dtype() == tg::Dtype::f64);
  CHECK(back.flat(0) == 0.10000000149011612);
}

TEST_CASE("to boolean and back") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const tg::Tensor f64 = tg::Tensor::from_values({5}, {0.0, -0.0, 2.5, nan, -1.0});
  const tg::Tensor f32 = f64.to(tg::Dtype::f32);
  const tg::Tensor mask = f32.to(tg::Dtype::boolean);
  CHECK(mask.dtype() == tg::Dtype::boolean);
  // NaN compares unequal to 0, so it converts to true.
  CHECK(mask.to_vector() == std::vector<double>{0, 0, 1, 1, 1});
  CHECK(mask.to(tg::Dtype::f32).to_vector() == std::vector<double>{0, 0, 1, 1, 1});
  CHECK(mask.to(tg::Dtype::f64).to_vector() == std::vector<double>{0, 0, 1, 1, 1});
  CHECK(f64.to(tg::Dtype::boolean).to_vector() == std::vector<double>{0, 0, 1, 1, 1});
}

TEST_CASE("to the same dtype copies") {
  tg::Tensor a = tg::Tensor::from_values({2}, {1.5, 2.5});
  tg::Tensor b = a.to(tg::Dtype::f64);
  CHECK(b.raw_data() != a.raw_data());
  b.data<double>()[0] = 0.0;
  CHECK(a.at({0}) == 1.5);
}

// ---- printing --------------------------------------------------------------------------------

TEST_CASE("fmt prints values shape and dtype") {
  const tg::Tensor matrix = tg::Tensor::from_values({2, 3}, {0.1, 0.2, 0.3, 0.4, 0.5, 0.6});
  CHECK(fmt::format("{}", matrix) == "Tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]], shape=[2, 3], dtype=f64)");
  // Six significant digits, as printf's %.6g: 1/3, 1e-7 and 123456789 checked with python3.
  const tg::Tensor f32 = tg::Tensor::from_values({3}, {1.0 / 3.0, 1e-7, 123456789.0}, tg::Dtype::f32);
  CHECK(fmt::format("{}", f32) == "Tensor([0.333333, 1e-07, 1.23457e+08], shape=[3], dtype=f32)");
  const tg::Tensor mask = tg::Tensor::from_values({2}, {1, 0}, tg::Dtype::boolean);
  CHECK(fmt::format("{}", mask) == "Tensor([true, false], shape=[2], dtype=boolean)");
}

TEST_CASE("fmt prints edge tensors") {
  CHECK(fmt::format("{}", tg::Tensor::full({}, -2.5)) == "Tensor(-2.5, shape=[], dtype=f64)");
  CHECK(fmt::format("{}", tg::Tensor::zeros({0, 3})) == "Tensor([], shape=[0, 3], dtype=f64)");
  CHECK(fmt::format("{}", tg::Tensor::zeros({2, 0})) == "Tensor([[], []], shape=[2, 0], dtype=f64)");
  CHECK(fmt::format("{}", tg::Tensor()) == "Tensor(undefined)");
  const double infinity = std::numeric_limits<double>::infinity();
  CHECK(fmt::format("{}", tg::Tensor::from_values({2}, {infinity, -infinity})) ==
        "Tensor([inf, -inf], shape=[2], dtype=f64)");
}

TEST_CASE("fmt elides the middle of a long axis") {
  const tg::Tensor row = tg::Tensor::from_values({10}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK(fmt::format("{}", row) == "Tensor([0, 1, 2, ..., 7, 8, 9], shape=[10], dtype=f64)");
  const tg::Tensor six = tg::Tensor::from_values({6}, {0, 1, 2, 3, 4, 5});
  CHECK(fmt::format("{}", six) == "Tensor([0, 1, 2, 3, 4, 5], shape=[6], dtype=f64)");
}

TEST_CASE("fmt honors string format specifications") {
  const tg::Tensor t = tg::Tensor::full({1}, 2.0);
  CHECK(fmt::format("{:>40}", t) == "       Tensor([2], shape=[1], dtype=f64)");
  CHECK(fmt::format("{}", tg::Shape{4, 3}) == "[4, 3]");
  CHECK(fmt::format("{}", tg::Dtype::boolean) == "boolean");
}
