#include "simclr_model.hpp"

#include <cmath>
#include <cstring>

#include "simclr_data.hpp"

namespace simclr {
namespace {

Linear init_linear(std::int64_t in, std::int64_t out, std::uint64_t seed) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  return {.weight = tg::Tensor::uniform({in, out}, -bound, bound, seed, tg::Dtype::f32),
          .bias = tg::Tensor::uniform({out}, -bound, bound, seed + 1, tg::Dtype::f32)};
}

tg::Var linear(const tg::Var& x, const tg::Var& weight, const tg::Var& bias) {
  return tg::matmul(x, weight) + bias;  // [B, in]·[in, out] + [out] broadcast over the B rows
}

}  // namespace

std::vector<tg::Tensor> Model::parameters() const {
  return {hidden.weight, hidden.bias, embedding.weight, embedding.bias, projection.weight, projection.bias};
}

Model init_model(const ModelSizes& sizes, std::uint64_t seed) {
  // Tensor::uniform takes a seed per tensor, so each tensor gets a seed derived from the model
  // seed. The multiplier keeps the tensor seeds of neighbouring model seeds apart.
  const std::uint64_t base = seed * 0x9E3779B97F4A7C15ULL;
  return {.hidden = init_linear(sizes.input, sizes.hidden, base + 0),
          .embedding = init_linear(sizes.hidden, sizes.embedding, base + 2),
          .projection = init_linear(sizes.embedding, sizes.projection, base + 4)};
}

ModelVars record_leaves(tg::Tape& tape, const Model& model) {
  return {tape.leaf(model.hidden.weight),     tape.leaf(model.hidden.bias),
          tape.leaf(model.embedding.weight),  tape.leaf(model.embedding.bias),
          tape.leaf(model.projection.weight), tape.leaf(model.projection.bias)};
}

ModelVars record_constants(tg::Tape& tape, const Model& model) {
  return {tape.constant(model.hidden.weight),     tape.constant(model.hidden.bias),
          tape.constant(model.embedding.weight),  tape.constant(model.embedding.bias),
          tape.constant(model.projection.weight), tape.constant(model.projection.bias)};
}

tg::Var encode(const tg::Var& x, const ModelVars& vars) {
  return linear(tg::relu(linear(x, vars.w1, vars.b1)), vars.w2, vars.b2);
}

tg::Var project(const tg::Var& h, const ModelVars& vars) { return linear(h, vars.w3, vars.b3); }

std::vector<float> encode_images(const Model& model, const float* images, std::int64_t count) {
  tg::Tape tape;
  tg::Tensor input = tape.allocate({count, image_size}, tg::Dtype::f32);
  std::memcpy(input.data<float>(), images, static_cast<std::size_t>(count * image_size) * sizeof(float));
  const ModelVars vars = record_constants(tape, model);
  const tg::Tensor h = encode(tape.constant(input), vars).value();
  const float* values = h.data<float>();
  return {values, values + h.numel()};
}

}  // namespace simclr
