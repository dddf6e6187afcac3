/* Linked into the test programs of ASan builds (tests/CMakeLists.txt): dlclose does nothing,
 * so the Vulkan loader's ICD and layer libraries stay mapped until exit. Without it,
 * memory those libraries keep in their own globals is reported as leaked once they
 * are unloaded (LeakSanitizer can no longer see the roots, and the stack shows only
 * "<unknown module>"). This hides no leak in vknode's code: our allocations are still
 * checked, and a library that is never unloaded is checked the same way. */
int dlclose(void* handle) {
  (void)handle;
  return 0;
}
