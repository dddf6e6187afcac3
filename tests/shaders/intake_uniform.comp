#version 450
// SpirvIntakeTest: a uniform buffer, which vknode does not bind.
layout(local_size_x = 1) in;
layout(set = 0, binding = 0) uniform Settings { float scale; } settings;
layout(set = 0, binding = 1) buffer Data { float v[]; } data;
void main() { data.v[gl_GlobalInvocationID.x] *= settings.scale; }
