# CUDA detection. AUTO compiles CUDA when nvcc is found; ON requires it; OFF never.
# Architectures are explicit (SIEVE_CUDA_ARCHITECTURES, default 90): CI has nvcc but no GPU,
# so 'native' would fail there.
set(SIEVE_HAS_CUDA OFF)
if(NOT SIEVE_ENABLE_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(SIEVE_CUDA_ARCHITECTURES MATCHES "native")
      message(FATAL_ERROR "SIEVE_CUDA_ARCHITECTURES must be explicit (e.g. 90), not 'native'")
    endif()
    set(CMAKE_CUDA_ARCHITECTURES ${SIEVE_CUDA_ARCHITECTURES})
    enable_language(CUDA)
    # CMake 3.25 does not know nvcc 13's C++20 dialect flag, so pass it directly.
    string(APPEND CMAKE_CUDA_FLAGS " -std=c++20")
    find_package(CUDAToolkit REQUIRED)
    set(SIEVE_HAS_CUDA ON)
  elseif(SIEVE_ENABLE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "SIEVE_ENABLE_CUDA=ON but no CUDA compiler was found")
  endif()
endif()
