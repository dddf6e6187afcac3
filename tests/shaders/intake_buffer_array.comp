#version 450
// SpirvIntakeTest: an array of storage buffers under one binding.
layout(local_size_x = 1) in;
layout(set = 0, binding = 0) buffer Parts { float v[]; } parts[2];
void main() { parts[0].v[0] = parts[1].v[0]; }
