// src/attn_compiled.cpp: the float and double instantiations of attn's kernels and layers, built
// once into attn::compiled (ATTN_COMPILED makes the headers declare them extern template).
#include <attn/attn.hpp>
