#version 450
// SpirvIntakeTest: workgroup size and constants from specialization constants.
layout(local_size_x_id = 0, local_size_x = 32, local_size_y = 2) in;  // x defaults to 32
layout(constant_id = 1) const uint kRepeat = 4;
layout(constant_id = 2) const float kScale = 1.5;
layout(constant_id = 3) const bool kFlag = true;

layout(set = 0, binding = 0) buffer Data { float v[]; } data;

void main() {
  uint i = gl_GlobalInvocationID.x;
  float acc = data.v[i];
  for (uint r = 0; r < kRepeat; ++r) acc *= kScale;
  data.v[i] = kFlag ? acc : -acc;
}
