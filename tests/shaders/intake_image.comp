#version 450
// SpirvIntakeTest: a storage image, which vknode does not bind.
layout(local_size_x = 8, local_size_y = 8) in;
layout(set = 0, binding = 0, r32f) uniform image2D img;
void main() {
  ivec2 p = ivec2(gl_GlobalInvocationID.xy);
  imageStore(img, p, imageLoad(img, p) * 2.0);
}
