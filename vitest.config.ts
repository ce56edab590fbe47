import { configDefaults, defineConfig } from 'vitest/config';
import { kilnAliases, serverConditions } from './vitest.shared.js';

// The Node suite. WebGPU suites run under vitest.webgpu.config.ts (once per Vulkan driver) and
// browser suites under vitest.browser.config.ts; scripts/test.mjs runs all three.
export default defineConfig({
  resolve: { alias: kilnAliases },
  ssr: { resolve: { conditions: serverConditions } },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'examples/test/**/*.test.ts', 'scripts/test/**/*.test.mjs'],
    exclude: [
      ...configDefaults.exclude,
      'packages/*/test/browser/**',
      'packages/*/test/parity-webgpu*.test.ts',
      'packages/*/test/webgpu*.test.ts',
    ],
    testTimeout: 120_000,
    // Setup hooks write tiny models and images; on a loaded 2-core machine that outlasts the 10 s default.
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
