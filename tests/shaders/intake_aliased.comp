#version 450
// SpirvIntakeTest: two storage buffers aliasing one binding.
layout(local_size_x = 1) in;
layout(set = 0, binding = 0) buffer AsFloat { float f[]; } as_float;
layout(set = 0, binding = 0) buffer AsUint { uint u[]; } as_uint;
void main() { as_float.f[0] = 1.0; as_uint.u[1] = 2u; }
