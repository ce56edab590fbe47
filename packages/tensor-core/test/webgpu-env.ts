/**
 * Whether the webgpu backend can start here. In CI (`CI` or `KILN_WEBGPU_REQUIRED` set) a missing
 * adapter is an error, so a skipped WebGPU suite can never pass silently; elsewhere the suites skip
 * with the reason.
 */
import * as k from '@kiln/tensor-core';

export const webgpuUnavailable: string | null = await k.initBackend('webgpu').then(
  () => null,
  (err: Error) => err.message,
);

const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
if (webgpuUnavailable !== null && (env.CI || env.KILN_WEBGPU_REQUIRED)) {
  throw new Error(
    `webgpu backend required (CI/KILN_WEBGPU_REQUIRED is set) but unavailable: ${webgpuUnavailable}. ` +
      'Set VK_ICD_FILENAMES to a Vulkan driver (lavapipe: /usr/share/vulkan/icd.d/lvp_icd.json, SwiftShader: /usr/lib/chromium/vk_swiftshader_icd.json).',
  );
}
if (webgpuUnavailable !== null) console.warn(`[kiln] skipping webgpu tests: ${webgpuUnavailable}`);
