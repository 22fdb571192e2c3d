# Install rules: headers, the exported attn::attn target, a CMake package (config + version
# file) for find_package(attn), a build-tree export, and a pkg-config file.
include(CMakePackageConfigHelpers)

set(ATTN_INSTALL_CMAKEDIR "${CMAKE_INSTALL_DATADIR}/cmake/attn"
    CACHE STRING "Where attnConfig.cmake is installed, relative to the prefix")

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/attn" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}")
install(TARGETS attn EXPORT attnTargets)
install(EXPORT attnTargets NAMESPACE attn:: DESTINATION "${ATTN_INSTALL_CMAKEDIR}")

configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/attnConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/attnConfig.cmake"
  INSTALL_DESTINATION "${ATTN_INSTALL_CMAKEDIR}")
# While attn is 0.x, a minor release may break the API: accept only the same minor version.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/attnConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion
  ARCH_INDEPENDENT)
install(FILES "${PROJECT_BINARY_DIR}/attnConfig.cmake" "${PROJECT_BINARY_DIR}/attnConfigVersion.cmake"
        DESTINATION "${ATTN_INSTALL_CMAKEDIR}")

# The build tree is a usable package too: point attn_DIR at the build directory.
export(EXPORT attnTargets NAMESPACE attn:: FILE "${PROJECT_BINARY_DIR}/attnTargets.cmake")

configure_file("${PROJECT_SOURCE_DIR}/cmake/attn.pc.in" "${PROJECT_BINARY_DIR}/attn.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/attn.pc" DESTINATION "${CMAKE_INSTALL_DATADIR}/pkgconfig")
