import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const packagesDir = fileURLToPath(new URL('./packages/', import.meta.url));

/** Every vitest config imports @kiln packages from their sources, so tests need no build step. */
export const kilnAliases = readdirSync(packagesDir).map((name) => ({
  find: `@kiln/${name}`,
  replacement: `${packagesDir}${name}/src/index.ts`,
}));

/** Suites that need a WebGPU adapter; they run under vitest.webgpu.config.ts, once per driver. */
export const webgpuSuites = [
  'packages/*/test/parity-webgpu*.test.ts',
  'packages/*/test/webgpu*.test.ts',
  'packages/clip/test/text-model-reference.test.ts',
  'examples/test/backends.test.ts',
];
