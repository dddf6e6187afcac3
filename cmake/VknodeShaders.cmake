# vkn_embed_shaders(TARGET <lib> NAMESPACE <ns> SOURCES a.comp b.comp ...)
# Compiles each GLSL compute shader with glslc at build time and generates a header
# <lib>/<name>_spv.h holding `inline constexpr uint32_t k<Name>Spv[]` with its SPIR-V words.
function(vkn_embed_shaders)
  cmake_parse_arguments(ARG "" "TARGET" "SOURCES" ${ARGN})
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/generated)
  set(headers)
  foreach(src ${ARG_SOURCES})
    get_filename_component(name ${src} NAME_WE)
    # fill_u32 -> kFillU32Spv
    set(symbol "k")
    string(REPLACE "_" ";" parts ${name})
    foreach(part ${parts})
      string(SUBSTRING ${part} 0 1 p0)
      string(TOUPPER ${p0} p0)
      string(SUBSTRING ${part} 1 -1 p1)
      string(APPEND symbol "${p0}${p1}")
    endforeach()
    string(APPEND symbol "Spv")
    set(inc ${out_dir}/${ARG_TARGET}/${name}.spv.inc)
    set(hdr ${out_dir}/${ARG_TARGET}/${name}_spv.h)
    add_custom_command(
      OUTPUT ${inc}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}/${ARG_TARGET}
      COMMAND ${GLSLC} --target-env=vulkan1.2 -O -mfmt=c -o ${inc} ${CMAKE_CURRENT_SOURCE_DIR}/${src}
      DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${src}
      COMMENT "glslc ${src}"
      VERBATIM)
    file(WRITE ${hdr}.tmp "// Generated from ${src} by glslc; do not edit.\n#pragma once\n#include <cstdint>\ninline constexpr uint32_t ${symbol}[] =\n#include \"${name}.spv.inc\"\n;\n")
    configure_file(${hdr}.tmp ${hdr} COPYONLY)
    list(APPEND headers ${hdr} ${inc})
  endforeach()
  add_custom_target(${ARG_TARGET}_spv DEPENDS ${headers})
  add_library(${ARG_TARGET} INTERFACE)
  add_dependencies(${ARG_TARGET} ${ARG_TARGET}_spv)
  target_include_directories(${ARG_TARGET} INTERFACE ${out_dir})
endfunction()
