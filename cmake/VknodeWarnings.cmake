# One interface target with warnings and sanitizers; every vknode target links it privately.
add_library(vknode_options INTERFACE)
target_compile_options(vknode_options INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align -Wunused
  -Wno-missing-field-initializers)
if(VKNODE_SANITIZE)
  target_compile_options(vknode_options INTERFACE -fsanitize=${VKNODE_SANITIZE} -fno-omit-frame-pointer)
  target_link_options(vknode_options INTERFACE -fsanitize=${VKNODE_SANITIZE})
endif()
