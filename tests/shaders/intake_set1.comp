#version 450
// SpirvIntakeTest: a storage buffer outside descriptor set 0.
layout(local_size_x = 1) in;
layout(set = 1, binding = 0) buffer Data { float v[]; } data;
void main() { data.v[gl_GlobalInvocationID.x] += 1.0; }
