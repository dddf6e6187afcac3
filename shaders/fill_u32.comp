#version 450
// data[i] = value for i < count.
layout(local_size_x = 256) in;
layout(std430, set = 0, binding = 0) writeonly buffer Data { uint data[]; };
layout(push_constant) uniform Push { uint count; uint value; } pc;
void main() {
  for (uint i = gl_GlobalInvocationID.x; i < pc.count; i += gl_NumWorkGroups.x * 256u) data[i] = pc.value;
}
