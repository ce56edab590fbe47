/**
 * The WebGPU suites under Node (Dawn): the op-parity suite, the webgpu backend's own tests, the
 * CLIP text model against PyTorch and the training examples on webgpu. `scripts/test.mjs` runs this config once per Vulkan driver:
 *
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json KILN_WEBGPU_REQUIRED=1 npx vitest run --config vitest.webgpu.config.ts
 *   VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.json       KILN_WEBGPU_REQUIRED=1 npx vitest run --config vitest.webgpu.config.ts
 *
 * With `CI` or `KILN_WEBGPU_REQUIRED` set, a missing adapter fails the run instead of skipping.
 */
import { defineConfig } from 'vitest/config';
import { kilnAliases, webgpuSuites, serverConditions } from './vitest.shared.js';

export default defineConfig({
  resolve: { alias: kilnAliases },
  ssr: { resolve: { conditions: serverConditions } },
  test: {
    include: webgpuSuites,
    env: { KILN_TEST_BACKENDS: 'webgpu' },
    testTimeout: 300_000,
    pool: 'forks',
  },
});
