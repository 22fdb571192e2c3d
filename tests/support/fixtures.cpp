// The parts of the test support that are compiled once for the whole suite rather than in every
// test file: reading fixture files (nlohmann-json's parser) and the spectral norm (Eigen's SVD).
#include "support/fixtures.hpp"

#include <Eigen/SVD>

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

}  // namespace detail
}  // namespace attn_test
