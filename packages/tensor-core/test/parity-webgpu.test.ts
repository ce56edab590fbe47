import { describe, it } from 'vitest';
import { paritySuite } from './parity.js';
import { webgpuUnavailable } from './webgpu-env.js';

if (webgpuUnavailable === null) {
  paritySuite('webgpu');
  // float16 storage with f32 math: `array<f16>` where the device has shader-f16, packed u16 bits otherwise.
  paritySuite('webgpu', { dtype: 'float16' });
} else {
  describe.skip(`op parity: webgpu (${webgpuUnavailable})`, () => {
    it('needs a WebGPU adapter', () => {});
  });
}
