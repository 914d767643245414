// Adam: the bias-corrected update against hand-computed values, convergence on a quadratic built
// from tapegrad ops, option and gradient checks, and rejected steps that change nothing.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

namespace {

void check_values(const tg::Tensor& tensor, const std::vector<double>& expected, double epsilon) {
  REQUIRE(tensor.numel() == static_cast<std::int64_t>(expected.size()));
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO("element " << i);
    CHECK(tensor.flat(static_cast<std::int64_t>(i)) == doctest::Approx(expected[i]).epsilon(epsilon));
  }
}

}  // namespace

// Expected values were computed in Python float64 from Kingma & Ba 2015, Algorithm 1, written out
// element by element (m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ), θ −= lr·m̂ / (√v̂ + ε)),
// independently of adam.cpp, with lr 0.1 and the default betas and epsilon.
TEST_CASE("Adam two steps match hand computation") {
  tg::Tensor theta = tg::Tensor::from_values({3}, {0.5, -1.0, 2.0});
  tg::Adam adam({theta}, {.lr = 0.1});

  adam.step({tg::Tensor::from_values({3}, {0.2, -0.4, 0.0})});
  CHECK(adam.step_count() == 1);
  check_values(theta, {0.4000000049999997, -0.9000000024999999, 2.0}, 1e-14);
  check_values(adam.first_moment(0), {0.019999999999999997, -0.039999999999999994, 0.0}, 1e-14);
  check_values(adam.second_moment(0), {4.0000000000000044e-05, 0.00016000000000000018, 0.0}, 1e-14);

  adam.step({tg::Tensor::from_values({3}, {0.1, 0.3, -0.5})});
  CHECK(adam.step_count() == 2);
  check_values(theta, {0.3067820470153658, -0.8910675020121357, 2.074413680252488}, 1e-14);
  check_values(adam.first_moment(0), {0.027999999999999997, -0.006000000000000005, -0.04999999999999999}, 1e-14);
  check_values(adam.second_moment(0), {4.996000000000006e-05, 0.00024984000000000025, 0.0002500000000000002}, 1e-14);
}

TEST_CASE("Adam two steps in float32") {
  tg::Tensor theta = tg::Tensor::from_values({3}, {0.5, -1.0, 2.0}, tg::Dtype::f32);
  tg::Adam adam({theta}, {.lr = 0.1});
  adam.step({tg::Tensor::from_values({3}, {0.2, -0.4, 0.0}, tg::Dtype::f32)});
  adam.step({tg::Tensor::from_values({3}, {0.1, 0.3, -0.5}, tg::Dtype::f32)});
  // Same float64 reference as above; float32 keeps about 7 significant digits through two steps.
  check_values(theta, {0.3067820470153658, -0.8910675020121357, 2.074413680252488}, 1e-6);
}

// Same reference computation as above with weight_decay 0.1 added to the gradient (L2 form).
TEST_CASE("Adam weight decay adds to the gradient") {
  tg::Tensor theta = tg::Tensor::from_values({3}, {0.5, -1.0, 2.0});
  tg::Adam adam({theta}, {.lr = 0.1, .weight_decay = 0.1});
  adam.step({tg::Tensor::from_values({3}, {0.2, -0.4, 0.0})});
  check_values(theta, {0.4000000039999998, -0.900000002, 1.9000000049999997}, 1e-14);
}

TEST_CASE("Adam reaches the minimum of a quadratic") {
  // f(θ) = Σ a_i (θ_i − c_i)², minimum θ = c, with curvatures a spread over two decades so a
  // single fixed step size would not suit every coordinate.
  const tg::Tensor curvature = tg::Tensor::from_values({2, 2}, {0.1, 1.0, 5.0, 10.0});
  const tg::Tensor center = tg::Tensor::from_values({2, 2}, {1.5, -2.0, 0.25, 3.0});
  tg::Tensor theta = tg::Tensor::zeros({2, 2});
  tg::Tensor bias = tg::Tensor::zeros({1});  // a second parameter, f = … + (bias − 0.5)²
  tg::Adam adam({theta, bias}, {.lr = 0.05});
  tg::Tape tape;
  double loss = 0.0;
  for (int step = 0; step < 3000; ++step) {
    tape.clear();
    const tg::Var t = tape.leaf(theta);
    const tg::Var b = tape.leaf(bias);
    const tg::Var d = t - tape.constant(center);
    const tg::Var f = tg::sum(tape.constant(curvature) * d * d) + tg::sum((b - 0.5) * (b - 0.5));
    tape.backward(f);
    loss = f.value().item();
    adam.step({t.grad(), b.grad()});
  }
  CHECK(loss < 1e-8);
  for (std::int64_t i = 0; i < 4; ++i) {
    INFO("element " << i);
    CHECK(std::abs(theta.flat(i) - center.flat(i)) < 1e-4);
  }
  CHECK(std::abs(bias.item() - 0.5) < 1e-4);
}

TEST_CASE("Adam rejects options outside their range") {
  const tg::Tensor theta = tg::Tensor::zeros({2});
  CHECK_THROWS_AS(tg::Adam({theta}, {.lr = -0.1}), tg::ValueError);
  CHECK_THROWS_WITH(tg::Adam({theta}, {.lr = -0.1}), doctest::Contains("Adam: lr must be finite and >= 0, but got lr = -0.1"));
  CHECK_THROWS_WITH(tg::Adam({theta}, {.lr = std::nan("")}), doctest::Contains("lr = nan"));
  CHECK_THROWS_WITH(tg::Adam({theta}, {.lr = INFINITY}), doctest::Contains("lr = inf"));
  CHECK_THROWS_AS(tg::Adam({theta}, {.beta1 = 1.0}), tg::ValueError);
  CHECK_THROWS_WITH(tg::Adam({theta}, {.beta1 = 1.0}), doctest::Contains("beta1 must be in [0, 1), but got beta1 = 1"));
  CHECK_THROWS_WITH(tg::Adam({theta}, {.beta2 = -0.5}), doctest::Contains("beta2 must be in [0, 1), but got beta2 = -0.5"));
  CHECK_THROWS_WITH(tg::Adam({theta}, {.beta2 = std::nan("")}), doctest::Contains("beta2 = nan"));
  CHECK_THROWS_WITH(tg::Adam({theta}, {.eps = -1e-8}), doctest::Contains("eps must be finite and >= 0"));
  CHECK_THROWS_WITH(tg::Adam({theta}, {.weight_decay = -1.0}), doctest::Contains("weight_decay = -1"));
  CHECK_NOTHROW(tg::Adam({theta}, {.lr = 0.0, .beta1 = 0.0, .beta2 = 0.0}));
}

TEST_CASE("Adam rejects parameters it cannot update") {
  CHECK_THROWS_AS(tg::Adam({tg::Tensor()}), tg::ValueError);
  CHECK_THROWS_WITH(tg::Adam({tg::Tensor::zeros({2}), tg::Tensor()}), doctest::Contains("position 1"));
  const tg::Tensor mask = tg::Tensor::from_values({2}, {1, 0}, tg::Dtype::boolean);
  CHECK_THROWS_AS(tg::Adam({mask}), tg::DtypeError);
  CHECK_THROWS_WITH(tg::Adam({mask}), doctest::Contains("parameter 0 of dtype boolean and shape [2]"));
}

TEST_CASE("Adam rejects mismatched gradients") {
  tg::Tensor theta = tg::Tensor::zeros({2, 3});
  tg::Adam adam({theta}, {.lr = 0.1});
  CHECK_THROWS_AS(adam.step({tg::Tensor::zeros({3, 2})}), tg::ShapeError);
  CHECK_THROWS_WITH(adam.step({tg::Tensor::zeros({3, 2})}),
                    doctest::Contains("gradient 0 of shape [3, 2] for a parameter of shape [2, 3]"));
  CHECK_THROWS_AS(adam.step({tg::Tensor::zeros({2, 3}, tg::Dtype::f32)}), tg::DtypeError);
  CHECK_THROWS_WITH(adam.step({tg::Tensor::zeros({2, 3}, tg::Dtype::f32)}),
                    doctest::Contains("gradient 0 of dtype f32 for a parameter of dtype f64"));
  CHECK_THROWS_AS(adam.step({}), tg::ValueError);
  CHECK_THROWS_WITH(adam.step({}), doctest::Contains("0 gradients for 1 parameters"));
  CHECK_THROWS_AS(adam.step({tg::Tensor()}), tg::ValueError);
  CHECK(adam.step_count() == 0);
}

TEST_CASE("Adam rejected step changes nothing") {
  tg::Tensor first = tg::Tensor::from_values({2}, {1.0, 2.0});
  tg::Tensor second = tg::Tensor::from_values({2}, {3.0, 4.0});
  tg::Adam adam({first, second}, {.lr = 0.1});
  adam.step({tg::Tensor::ones({2}), tg::Tensor::ones({2})});
  const std::vector<double> first_before = first.to_vector();
  const std::vector<double> moment_before = adam.first_moment(0).to_vector();

  // The first gradient is fine; the second has a NaN, so neither parameter may move.
  const tg::Tensor bad = tg::Tensor::from_values({2}, {0.5, std::nan("")});
  CHECK_THROWS_AS(adam.step({tg::Tensor::ones({2}), bad}), tg::ValueError);
  CHECK_THROWS_WITH(adam.step({tg::Tensor::ones({2}), bad}),
                    doctest::Contains("nan at flat index 1 of gradient 1 (shape [2])"));
  CHECK(first.to_vector() == first_before);
  CHECK(adam.first_moment(0).to_vector() == moment_before);
  CHECK(adam.step_count() == 1);
}

TEST_CASE("Adam updates the caller's tensor in place") {
  tg::Tensor theta = tg::Tensor::from_values({1}, {1.0});
  const tg::Tensor alias = theta;  // shares storage, as a tape leaf does
  tg::Adam adam({theta}, {.lr = 0.25});
  adam.step({tg::Tensor::from_values({1}, {2.0})});
  // First step: m̂ = g and v̂ = g², so θ moves by lr·g/(|g| + ε).
  CHECK(alias.item() == doctest::Approx(1.0 - 0.25 * 2.0 / (2.0 + 1e-8)).epsilon(1e-15));
  CHECK_THROWS_AS(adam.first_moment(1), tg::ValueError);
  CHECK_THROWS_AS(adam.second_moment(-1), tg::ValueError);
}

TEST_CASE("Adam set_lr checks its value") {
  tg::Tensor theta = tg::Tensor::zeros({1});
  tg::Adam adam({theta});
  adam.set_lr(0.5);
  CHECK(adam.options().lr == 0.5);
  CHECK_THROWS_WITH(adam.set_lr(-1.0), doctest::Contains("lr = -1"));
  CHECK(adam.options().lr == 0.5);
}
