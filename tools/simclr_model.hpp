#pragma once
// The SimCLR model for 8×8 digits: an MLP encoder and a linear projection head, in float32.
//
//     encoder:    h = relu(x·W1 + b1)·W2 + b2     x [B, 64], W1 [64, 128], W2 [128, 64]
//     projection: z = h·W3 + b3                   W3 [64, 32]
//
// NT-Xent is applied to z. The representation evaluated downstream is h, as in SimCLR, where
// the layers after the projection head's input are discarded after training.

#include <cstdint>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace simclr {

namespace tg = tapegrad;

struct ModelSizes {
  std::int64_t input = 64;
  std::int64_t hidden = 128;
  std::int64_t embedding = 64;   // encoder output h
  std::int64_t projection = 32;  // projection head output z
};

// A dense layer y = x·weight + bias, weight [in, out] and bias [out].
struct Linear {
  tg::Tensor weight;
  tg::Tensor bias;
};

struct Model {
  Linear hidden;
  Linear embedding;
  Linear projection;

  // The six parameter tensors in a fixed order: W1, b1, W2, b2, W3, b3. They share storage with
  // the model, so an optimizer given them updates the model.
  std::vector<tg::Tensor> parameters() const;
};

// Names of parameters(), in the same order, for graph export and messages.
inline constexpr const char* parameter_names[] = {"W1", "b1", "W2", "b2", "W3", "b3"};

// A model with every weight and bias drawn uniformly from [−1/√fan_in, 1/√fan_in), the default
// initialization of torch.nn.Linear, from std::mt19937_64 seeded with seed.
Model init_model(const ModelSizes& sizes, std::uint64_t seed);

// The model's parameters recorded on a tape, as leaves (training) or constants (evaluation).
struct ModelVars {
  tg::Var w1, b1, w2, b2, w3, b3;
};
ModelVars record_leaves(tg::Tape& tape, const Model& model);
ModelVars record_constants(tg::Tape& tape, const Model& model);

tg::Var encode(const tg::Var& x, const ModelVars& vars);
tg::Var project(const tg::Var& h, const ModelVars& vars);

// Encoder outputs h of every image, computed on a tape of constants: [count, embedding] rows.
std::vector<float> encode_images(const Model& model, const float* images, std::int64_t count);

}  // namespace simclr
