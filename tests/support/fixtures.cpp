// The parts of the test support that are compiled once for the whole suite rather than in every
// test file: reading fixture files (nlohmann-json's parser), the spectral norm (Eigen's SVD) and
// the layers' problem scales (Eigen's double products).
#include "support/fixtures.hpp"

#include <Eigen/SVD>
#include <stdexcept>
#include <string>

#include "support/layer_fixture.hpp"

namespace attn_test {

attn::io::SafetensorsFile read_fixture(const std::string& file_name) {
  return attn::io::read_safetensors(fixture_path(file_name));
}

attn::io::SafetensorsFile load_io(const std::string& name) {
  return read_fixture(name + ".io.safetensors");
}

namespace detail {

double spectral_norm(const RowMatrixd& m) {
  if (m.size() == 0) return 0.0;
  return Eigen::JacobiSVD<Eigen::MatrixXd>(Eigen::MatrixXd(m)).singularValues()(0);
}

LayerScales layer_scales_of(const attn::StateDict<double>& state, const RowMatrixd& x,
                            const RowMatrixd* grad_out, attn::Index B, attn::Index T,
                            attn::Index num_heads, double dropout) {
  const auto has = [&](const std::string& name) { return state.count(name) == 1; };
  const auto matrix = [&](const std::string& name) {
    const auto& t = state.at(name);
    RowMatrixd m(t.shape[0], t.shape.size() > 1 ? t.shape[1] : 1);
    for (std::size_t i = 0; i < t.values.size(); ++i) m.data()[i] = t.values[i];
    return m;
  };
  const auto vector = [&](const std::string& name) {
    const auto& values = state.at(name).values;
    Eigen::VectorXd v(static_cast<attn::Index>(values.size()));
    for (std::size_t i = 0; i < values.size(); ++i) v(static_cast<attn::Index>(i)) = values[i];
    return v;
  };
  const RowMatrixd& X = x;
  const RowMatrixd R = grad_out != nullptr ? *grad_out : RowMatrixd();
  const double x_spectral = spectral_norm(X), x_row = X.rows() ? X.rowwise().norm().maxCoeff() : 0;
  const auto N = static_cast<double>(X.rows());
  LayerScales scales;
  scales.length = std::max(X.rows(), X.cols());

  if (has("weight")) {  // Linear: out = x W^T + b
    const RowMatrixd W = matrix("weight");
    const double b = has("bias") ? vector("bias").norm() : 0.0;
    scales.out = spectral_norm(W) * X.norm() + std::sqrt(N) * b;
    scales.length = std::max(scales.length, W.rows());
    if (grad_out != nullptr) {
      scales.grad_x = R.norm() * spectral_norm(W);
      scales.gradients.push_back(
          {"weight", 0, W.size(), std::min(R.norm() * x_spectral, spectral_norm(R) * X.norm())});
      if (has("bias")) {
        scales.gradients.push_back({"bias", 0, W.rows(), R.rowwise().norm().sum()});
      }
    }
    return scales;
  }

  // The attentions of the layer, by the ladder's parameter names.
  std::vector<detail::Attention> attentions;
  const char* roles[3] = {"W_query", "W_key", "W_value"};
  const auto linear_attention = [&](const std::string& prefix) {
    detail::Attention a;
    a.has_bias = has(prefix + "W_key.bias");
    for (int r = 0; r < 3; ++r) {
      a.weight_name[r] = prefix + roles[r] + ".weight";
      a.weight[r] = matrix(a.weight_name[r]);
      if (a.has_bias) {
        a.bias_name[r] = prefix + roles[r] + ".bias";
        a.bias[r] = vector(a.bias_name[r]);
      }
    }
    return a;
  };
  if (has("qkv.weight")) {  // MultiHeadAttentionCombinedQKV: one stacked (3 C, d_in) projection
    detail::Attention a;
    const RowMatrixd W = matrix("qkv.weight");
    const attn::Index C = W.rows() / 3;
    a.has_bias = has("qkv.bias");
    for (int r = 0; r < 3; ++r) {
      a.weight[r] = W.middleRows(r * C, C);
      a.weight_name[r] = "qkv.weight";
      a.weight_first[r] = r * C * W.cols();
      if (a.has_bias) {
        a.bias[r] = vector("qkv.bias").segment(r * C, C);
        a.bias_name[r] = "qkv.bias";
        a.bias_first[r] = r * C;
      }
    }
    a.heads = num_heads;
    a.out_proj = "proj.";
    attentions.push_back(a);
  } else if (has("W_query")) {  // SelfAttentionV1: raw (d_in, d_out) matrices, x W
    detail::Attention a;
    for (int r = 0; r < 3; ++r) {
      a.weight_name[r] = roles[r];
      a.weight[r] = matrix(roles[r]).transpose();
    }
    attentions.push_back(a);
  } else if (has("W_query.weight")) {  // SelfAttentionV2, CausalAttention, MultiHeadAttention
    auto a = linear_attention("");
    if (has("out_proj.weight")) {
      a.heads = num_heads;
      a.out_proj = "out_proj.";
    }
    attentions.push_back(a);
  } else {  // MultiHeadAttentionWrapper: independent heads, outputs side by side (then out_proj)
    attn::Index first_col = 0;
    for (int h = 0; has("heads." + std::to_string(h) + ".W_query.weight"); ++h) {
      auto a = linear_attention("heads." + std::to_string(h) + ".");
      a.first_out_col = first_col;
      first_col += a.weight[2].rows();
      attentions.push_back(a);
    }
  }
  // The notebook's wrapper: one out_proj after the concatenated heads (each head's context c_h
  // sits in columns first_out_col.., out = [c_0 .. c_H] Wo^T + bo), bounded once for them all.
  const bool wrapper_out_proj = has("heads.0.W_query.weight") && has("out_proj.weight");

  const double keep = 1 / (1 - dropout);
  for (const auto& a : attentions) {
    const attn::Index C = a.weight[0].rows(), head_dim = C / a.heads;
    // Grouped-query attention: keys and values have kv_heads heads of head_dim (read from W_key's
    // rows), query head h reading kv head h / (heads / kv_heads); kv_heads = heads otherwise.
    const attn::Index kv_rows = a.weight[1].rows();
    const attn::Index kv_heads = kv_rows / head_dim;
    if (kv_heads == 0 || kv_rows % head_dim != 0 || a.heads % kv_heads != 0) {
      throw std::invalid_argument("layer_scales: " + a.weight_name[1] + " has " +
                                  std::to_string(kv_rows) + " rows, not a divisor of " +
                                  std::to_string(a.heads) + " heads of head_dim " +
                                  std::to_string(head_dim));
    }
    const attn::Index group_size = a.heads / kv_heads;
    RowMatrixd y[3];
    for (int r = 0; r < 3; ++r) {
      y[r] = X * a.weight[r].transpose();
      if (a.has_bias) y[r].rowwise() += a.bias[r].transpose();
    }
    RowMatrixd dout;
    if (grad_out != nullptr) {
      dout = !a.out_proj.empty() ? RowMatrixd(R * matrix(a.out_proj + "weight"))
             : wrapper_out_proj
                 ? RowMatrixd((R * matrix("out_proj.weight")).middleCols(a.first_out_col, C))
                 : RowMatrixd(R.middleCols(a.first_out_col, C));
    }
    AttentionBounds bounds;
    for (attn::Index b = 0; b < B; ++b) {
      for (attn::Index h = 0; h < a.heads; ++h) {
        const auto block = [&](const RowMatrixd& m, attn::Index head) {
          return RowMatrixd(m.block(b * T, head * head_dim, T, head_dim));
        };
        const RowMatrixd g = grad_out != nullptr ? block(dout, h) : RowMatrixd();
        // A kv head shared by a group adds up its query heads' gradients: the bounds of the
        // group's problems add, as sums of row norms do (attention_bounds.hpp).
        bounds.add(block(y[0], h), block(y[1], h / group_size), block(y[2], h / group_size),
                   grad_out != nullptr ? &g : nullptr, 1 / std::sqrt(static_cast<double>(head_dim)),
                   keep);
      }
    }
    scales.logits = std::max(scales.logits, bounds.logits);
    scales.length = std::max({scales.length, bounds.length, C});
    if (a.out_proj.empty()) {
      scales.out = std::hypot(scales.out, bounds.out);
    } else {
      const RowMatrixd Wo = matrix(a.out_proj + "weight");
      const bool out_bias = has(a.out_proj + "bias");  // GroupedQueryAttention's has none
      scales.out = spectral_norm(Wo) * bounds.out +
                   (out_bias ? std::sqrt(N) * vector(a.out_proj + "bias").norm() : 0.0);
      if (grad_out != nullptr) {
        scales.gradients.push_back(
            {a.out_proj + "weight", 0, Wo.size(), spectral_norm(R) * bounds.out});
        if (out_bias) {
          scales.gradients.push_back({a.out_proj + "bias", 0, Wo.rows(), R.rowwise().norm().sum()});
        }
      }
    }
    if (grad_out == nullptr) continue;
    const double weight_scale[3] = {
        std::min(bounds.grad_q * x_spectral, bounds.grad_q_rows * x_row),
        bounds.grad_k * std::min(x_spectral, x_row), bounds.grad_v * std::min(x_spectral, x_row)};
    const double bias_scale[3] = {bounds.grad_q_rows, bounds.grad_k, bounds.grad_v};
    const double frobenius_scale[3] = {bounds.grad_q, bounds.grad_k, bounds.grad_v};
    for (int r = 0; r < 3; ++r) {
      scales.grad_x += frobenius_scale[r] * spectral_norm(a.weight[r]);
      scales.gradients.push_back(
          {a.weight_name[r], a.weight_first[r], a.weight[r].size(), weight_scale[r]});
      if (a.has_bias) {
        scales.gradients.push_back({a.bias_name[r], a.bias_first[r], a.bias[r].size(),
                                    bias_scale[r], /*vanishing=*/r == 1});
      }
    }
  }
  if (wrapper_out_proj) {  // scales.out bounds ||[c_0 .. c_H]||_F so far
    const RowMatrixd Wo = matrix("out_proj.weight");
    const double context = scales.out;
    scales.out = spectral_norm(Wo) * context + std::sqrt(N) * vector("out_proj.bias").norm();
    scales.length = std::max(scales.length, Wo.cols());
    if (grad_out != nullptr) {
      scales.gradients.push_back({"out_proj.weight", 0, Wo.size(), spectral_norm(R) * context});
      scales.gradients.push_back({"out_proj.bias", 0, Wo.rows(), R.rowwise().norm().sum()});
    }
  }
  return scales;
}

}  // namespace detail
}  // namespace attn_test
