import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const packagesDir = fileURLToPath(new URL('./packages/', import.meta.url));

/**
 * Every vitest config imports @kiln packages from their sources, so tests need no build step.
 * A subpath entry (`@kiln/nn/node`) maps to `src/node.ts`; it comes first, because a plain
 * `@kiln/nn` alias would also match the subpath's prefix.
 */
export const kilnAliases = [
  { find: /^@kiln\/([^/]+)\/([^/]+)$/, replacement: `${packagesDir}$1/src/$2.ts` },
  ...readdirSync(packagesDir).map((name) => ({
    find: new RegExp(`^@kiln/${name}$`),
    replacement: `${packagesDir}${name}/src/index.ts`,
  })),
];

/**
 * Resolve conditions: `kiln-source` first, so that packages' `#node-only` imports (package.json
 * `imports`) resolve to their sources too, then Vite's defaults (`defaultServerConditions`,
 * `defaultClientConditions`; vite itself is not a root dependency). In a browser the `browser`
 * condition maps `#node-only` to each package's throwing browser module.
 */
export const serverConditions = ['kiln-source', 'module', 'node', 'development|production'];
export const clientConditions = ['kiln-source', 'module', 'browser', 'development|production'];

/** Suites that need a WebGPU adapter; they run under vitest.webgpu.config.ts, once per driver. */
export const webgpuSuites = [
  'packages/*/test/parity-webgpu*.test.ts',
  'packages/*/test/webgpu*.test.ts',
  'packages/clip/test/text-model-reference.test.ts',
  'packages/unet/test/reference.test.ts',
  'packages/vae/test/reference.test.ts',
  'examples/test/backends.test.ts',
];
