# cuda.cmake — the CUDA backend, built whenever RUSTY_CUDA is ON and nvcc is found.
#
# Included by the top-level CMakeLists.txt after rusty_lib exists. Compiles
# src/backend/cuda/*.cu for sm_90 (Hopper) into librusty_cuda.so, a module next
# to the rusty executable that the core library's loader (cuda_loader.c) opens
# only when a GPU is asked for; the module carries its own copy of the core and
# dtype code it needs, the static CUDA runtime and a dynamic cuBLAS. The GPU
# tests and the kernel lab link the same objects directly. Tests (deferred
# until tests/ has been processed) carry the ctest label `cuda` and exit 77
# ("skipped") when no GPU is present, as in CI.
if(NOT RUSTY_CUDA)
  return()
endif()

include(CheckLanguage)
if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  message(STATUS "CUDA backend: nvcc not found, building without it")
  return()
endif()

# Plain sm_90 machine code: nothing here needs the sm_90a-only instructions
# (wgmma/setmaxnreg); files that do would add -gencode=arch=compute_90a,code=sm_90a.
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES 90)
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
message(STATUS "CUDA backend: nvcc ${CMAKE_CUDA_COMPILER_VERSION}, sm_${CMAKE_CUDA_ARCHITECTURES}")

file(GLOB RUSTY_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/backend/cuda/*.cu)
add_library(rusty_cuda_objs OBJECT ${RUSTY_CUDA_SOURCES})
target_include_directories(rusty_cuda_objs PUBLIC ${CMAKE_SOURCE_DIR}/src)
target_link_libraries(rusty_cuda_objs PUBLIC CUDA::cudart_static CUDA::cublas)

# The directory-wide C options (-Wall -Wextra -Wstrict-prototypes, sanitizers)
# are not nvcc options: restrict them to C, for rusty_lib and every target made
# after this point.
function(rusty_c_only_options kind name)
  get_property(opts ${kind} ${name} PROPERTY COMPILE_OPTIONS)
  set(wrapped "")
  foreach(o ${opts})
    if(o MATCHES "^\\$<")
      list(APPEND wrapped "${o}")
    else()
      list(APPEND wrapped "$<$<COMPILE_LANGUAGE:C>:${o}>")
    endif()
  endforeach()
  set_property(${kind} ${name} PROPERTY COMPILE_OPTIONS "${wrapped}")
endfunction()
rusty_c_only_options(DIRECTORY ${CMAKE_SOURCE_DIR})
rusty_c_only_options(TARGET rusty_lib)

# The C warning flags are not nvcc's: CUDA files get their own set. Sanitizer
# flags (ASan test builds) stay on the host compiler only.
set(RUSTY_CUDA_FLAGS -O3 -lineinfo -Xptxas=-warn-spills
                     -Xcompiler=-Wall,-Wno-unused-parameter,-fno-strict-aliasing)
if(RUSTY_WERROR)
  list(APPEND RUSTY_CUDA_FLAGS -Werror=all-warnings)
endif()
foreach(src ${RUSTY_CUDA_SOURCES})
  set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS "${RUSTY_CUDA_FLAGS}")
endforeach()
set_target_properties(rusty_cuda_objs PROPERTIES CUDA_ARCHITECTURES ${CMAKE_CUDA_ARCHITECTURES}
                                                 CUDA_SEPARABLE_COMPILATION OFF
                                                 POSITION_INDEPENDENT_CODE ON)
rusty_c_only_options(TARGET rusty_cuda_objs)

# The module: the CUDA objects plus the core/dtype code they call and the
# backend's own C (cuda_tune.c), position independent, self-contained (opened
# RTLD_LOCAL).
file(GLOB RUSTY_CUDA_CORE CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/core/*.c ${CMAKE_SOURCE_DIR}/src/dtype/*.c
     ${CMAKE_SOURCE_DIR}/src/backend/cuda/*.c)
add_library(rusty_cuda MODULE ${RUSTY_CUDA_CORE} $<TARGET_OBJECTS:rusty_cuda_objs>)
target_include_directories(rusty_cuda PRIVATE ${CMAKE_SOURCE_DIR}/src)
target_link_libraries(rusty_cuda PRIVATE CUDA::cudart_static CUDA::cublas m)
# EXPORT_COMPILE_COMMANDS OFF: these C files are rusty_lib's own, and a second
# entry per file in compile_commands.json makes clang-tidy analyse them twice
# (clang 14's analyzer then reports a false va_list finding in status.c).
set_target_properties(rusty_cuda PROPERTIES POSITION_INDEPENDENT_CODE ON
                                            EXPORT_COMPILE_COMMANDS OFF
                                            LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})
target_link_options(rusty_cuda PRIVATE -Wl,--no-undefined)
rusty_c_only_options(TARGET rusty_cuda)
add_dependencies(rusty rusty_cuda) # `make build` leaves the module beside build/rusty

# The kernel lab (bench/cuda_bench.cu): GB/s per matvec type, GEMM TFLOP/s,
# attention, and the whole Llama-2-7B-shaped decode step.
if(EXISTS ${CMAKE_SOURCE_DIR}/bench/cuda_bench.cu)
  add_executable(rusty_cuda_bench ${CMAKE_SOURCE_DIR}/bench/cuda_bench.cu)
  set_source_files_properties(${CMAKE_SOURCE_DIR}/bench/cuda_bench.cu PROPERTIES
                              COMPILE_OPTIONS "${RUSTY_CUDA_FLAGS}")
  target_link_libraries(rusty_cuda_bench PRIVATE rusty_lib rusty_cuda_objs CUDA::cublasLt)
endif()

# GPU tests: tests/cuda/test_*.c, one program each, label `cuda`. Added at the
# end of the top-level directory so include(CTest) and tests/ have been seen.
function(rusty_cuda_add_tests)
  if(NOT BUILD_TESTING OR RUSTY_FUZZ)
    return()
  endif()
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/cuda/test_*.c)
  if(NOT EXISTS ${CMAKE_SOURCE_DIR}/src/model/session.h)
    # the end-to-end test drives the model code, which this tree may not have yet
    list(FILTER srcs EXCLUDE REGEX "test_cuda_model\\.c$")
  endif()
  foreach(src ${srcs})
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name} ${src})
    target_link_libraries(${name} PRIVATE rusty_lib rusty_cuda_objs)
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES
      LABELS cuda
      SKIP_RETURN_CODE 77
      TIMEOUT 600
      ENVIRONMENT "RUSTY_SHARED=${RUSTY_SHARED_DIR}")
  endforeach()
endfunction()
cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL rusty_cuda_add_tests)
