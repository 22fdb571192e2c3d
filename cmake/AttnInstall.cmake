# Install rules: headers, the exported targets (attn::attn and the components built: attn::io,
# attn::viz, attn::text, attn::compiled), a CMake package (config + version file) for
# find_package(attn [COMPONENTS ...]), a build-tree export, and one pkg-config file per target;
# with attn::text, GPT-2's tokenizer tables (data/gpt2) under <datadir>/attn/gpt2.
include(CMakePackageConfigHelpers)

# With attn::compiled the package holds an architecture-specific library: its CMake and
# pkg-config files then go under lib/, as for any compiled library; header-only, under share/.
if(ATTN_COMPILED)
  set(_attn_package_root "${CMAKE_INSTALL_LIBDIR}")
else()
  set(_attn_package_root "${CMAKE_INSTALL_DATADIR}")
endif()
set(ATTN_INSTALL_CMAKEDIR "${_attn_package_root}/cmake/attn"
    CACHE STRING "Where attnConfig.cmake is installed, relative to the prefix")
set(ATTN_INSTALL_PKGCONFIGDIR "${_attn_package_root}/pkgconfig"
    CACHE STRING "Where attn's .pc files are installed, relative to the prefix")

# `cmake --install` copies what the build made: said plainly, before anything is copied, when
# attn::compiled was configured but not built (a lean configure-then-install).
if(TARGET attn_compiled)
  install(CODE "
    if(NOT EXISTS \"$<TARGET_FILE:attn_compiled>\")
      message(FATAL_ERROR \"attn: $<TARGET_FILE_NAME:attn_compiled> has not been built yet; \"
        \"build first (cmake --build ${PROJECT_BINARY_DIR}), then install\")
    endif()")
endif()
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/attn" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")

set(_attn_export_targets attn)
set(ATTN_EXPORTED_COMPONENTS "")
foreach(_component io viz text compiled)
  if(TARGET attn_${_component})
    list(APPEND _attn_export_targets attn_${_component})
    list(APPEND ATTN_EXPORTED_COMPONENTS ${_component})
  endif()
endforeach()
install(TARGETS ${_attn_export_targets} EXPORT attnTargets
  ARCHIVE DESTINATION "${CMAKE_INSTALL_LIBDIR}")
install(EXPORT attnTargets NAMESPACE attn:: DESTINATION "${ATTN_INSTALL_CMAKEDIR}")

# GPT-2's tables (and their licence) go with attn::text; attnConfig.cmake and attn-text.pc say
# where (the target property ATTN_GPT2_DATA_DIR, the pkg-config variable gpt2datadir).
set(ATTN_INSTALL_GPT2DIR "${CMAKE_INSTALL_DATADIR}/attn/gpt2")
if(TARGET attn_text)
  install(FILES "${PROJECT_SOURCE_DIR}/data/gpt2/encoder.json"
                "${PROJECT_SOURCE_DIR}/data/gpt2/vocab.bpe"
                "${PROJECT_SOURCE_DIR}/data/gpt2/LICENSE"
                "${PROJECT_SOURCE_DIR}/data/gpt2/README.md"
          DESTINATION "${ATTN_INSTALL_GPT2DIR}")
endif()

# What attnConfig.cmake needs to know about this build.
set(ATTN_COMPILED_WITH_OPENMP OFF)
if(TARGET attn_compiled AND ATTN_WITH_OPENMP)
  set(ATTN_COMPILED_WITH_OPENMP ON)
endif()
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/attnConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/attnConfig.cmake"
  INSTALL_DESTINATION "${ATTN_INSTALL_CMAKEDIR}"
  PATH_VARS ATTN_INSTALL_GPT2DIR)
# While attn is 0.x, a minor release may break the API: accept only the same minor version.
# Header-only, the package suits any architecture; with attn::compiled, only its own.
set(_attn_arch_independent ARCH_INDEPENDENT)
if(TARGET attn_compiled)
  set(_attn_arch_independent "")
endif()
write_basic_package_version_file("${PROJECT_BINARY_DIR}/attnConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion
  ${_attn_arch_independent})
install(FILES "${PROJECT_BINARY_DIR}/attnConfig.cmake" "${PROJECT_BINARY_DIR}/attnConfigVersion.cmake"
        DESTINATION "${ATTN_INSTALL_CMAKEDIR}")

# The build tree is a usable package too: point attn_DIR at the build directory.
export(EXPORT attnTargets NAMESPACE attn:: FILE "${PROJECT_BINARY_DIR}/attnTargets.cmake")

# pkg-config: the same targets under the same rules (attn.pc needs eigen3 only). The prefix is
# found from the .pc file's own place, so an installed tree can be moved.
if(IS_ABSOLUTE "${ATTN_INSTALL_PKGCONFIGDIR}")
  set(ATTN_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _attn_pc_up "/attn-root/${ATTN_INSTALL_PKGCONFIGDIR}" "/attn-root")
  string(REGEX REPLACE "/$" "" _attn_pc_up "${_attn_pc_up}")
  set(ATTN_PC_PREFIX "\${pcfiledir}/${_attn_pc_up}")
endif()
foreach(_dir INCLUDEDIR LIBDIR DATADIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${_dir}}")
    set(ATTN_PC_${_dir} "${CMAKE_INSTALL_${_dir}}")
  else()
    set(ATTN_PC_${_dir} "\${prefix}/${CMAKE_INSTALL_${_dir}}")
  endif()
endforeach()

set(ATTN_PC_REQUIRES "eigen3")
set(ATTN_PC_CFLAGS "")
if(ATTN_CBLAS)
  # The headers call cblas_* in the user's own objects: BLAS is a public dependency.
  string(APPEND ATTN_PC_REQUIRES " blas")
  string(APPEND ATTN_PC_CFLAGS " -DATTN_USE_CBLAS")
endif()
set(ATTN_PC_COMPILED_FLAGS "")
if(ATTN_COMPILED_WITH_OPENMP)
  # The flag of the compiler attn::compiled was built with (g++: -fopenmp).
  string(REPLACE ";" " " ATTN_PC_COMPILED_FLAGS " ${OpenMP_CXX_FLAGS}")
endif()

set(_attn_pc_files attn)
foreach(_component IN LISTS ATTN_EXPORTED_COMPONENTS)
  list(APPEND _attn_pc_files attn-${_component})
endforeach()
foreach(_pc IN LISTS _attn_pc_files)
  configure_file("${PROJECT_SOURCE_DIR}/cmake/${_pc}.pc.in" "${PROJECT_BINARY_DIR}/${_pc}.pc" @ONLY)
  install(FILES "${PROJECT_BINARY_DIR}/${_pc}.pc" DESTINATION "${ATTN_INSTALL_PKGCONFIGDIR}")
endforeach()
