#version 450
// SpirvIntakeTest: a realistic kernel. Bindings are declared out of order on purpose.
layout(local_size_x = 64) in;

layout(set = 0, binding = 2) buffer Out { float y[]; } out_buf;
layout(set = 0, binding = 0) readonly buffer InX { float x[]; } in_x;
layout(set = 0, binding = 1) buffer Scratch { float s[]; } scratch;

layout(push_constant) uniform Params {
  uint n;
  float a;
} params;

void main() {
  uint i = gl_GlobalInvocationID.x;
  if (i >= params.n) return;
  scratch.s[i] = in_x.x[i];
  out_buf.y[i] = params.a * in_x.x[i] + out_buf.y[i];
}
