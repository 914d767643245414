// Tensor factories, element access, conversion and printing.
#include <doctest/doctest.h>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

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

TEST_CASE("copies share storage and clone copies") {
  tg::Tensor a = tg::Tensor::zeros({3});
  tg::Tensor b = a;
  tg::Tensor c = a.clone();
  b.data<double>()[1] = 5.0;
  CHECK(a.at({1}) == 5.0);
  CHECK(c.at({1}) == 0.0);
}

TEST_CASE("typed access checks the dtype") {
  tg::Tensor t = tg::Tensor::ones({2}, tg::Dtype::f32);
  CHECK(t.data<float>()[0] == 1.0f);
  CHECK_THROWS_AS(t.data<double>(), tg::DtypeError);
  CHECK_THROWS_WITH(t.data<double>(), doctest::Contains("data<f64>() on a tensor of dtype f32"));
}

TEST_CASE("randn is reproducible from its seed") {
  const tg::Tensor a = tg::Tensor::randn({4, 4}, 7);
  const tg::Tensor b = tg::Tensor::randn({4, 4}, 7);
  const tg::Tensor c = tg::Tensor::randn({4, 4}, 8);
  CHECK(a.to_vector() == b.to_vector());
  CHECK(a.to_vector() != c.to_vector());
}
