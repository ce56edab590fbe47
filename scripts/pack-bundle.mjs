// The browser half of the packed-package test (called by scripts/pack-test.mjs): the packed
// tarballs of @kiln/tensor-core, @kiln/pipeline and @kiln/dreambooth-trainer (and the Kiln packages
// they depend on) installed into an empty npm project with Vite, at the version examples/browser
// pins, and an entry that imports all three whole bundled for the browser. It fails when the build
// errors, when Vite has to stub a Node builtin for the browser ("externalized for browser
// compatibility"), or when the bundle still imports a `node:` module: Node-only code must reach a
// browser bundle only through the packages' `browser` conditions (`#node-only`, `@kiln/nn/node`).
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The packages a browser app imports. */
export const BROWSER_PACKAGES = ['@kiln/tensor-core', '@kiln/pipeline', '@kiln/dreambooth-trainer'];

// Every export is kept (assigned to globalThis), so tree-shaking cannot hide a Node-only path.
const ENTRY = `import * as tensorCore from '@kiln/tensor-core';
import * as pipeline from '@kiln/pipeline';
import * as trainer from '@kiln/dreambooth-trainer';

globalThis.kiln = { tensorCore, pipeline, trainer };
await tensorCore.useBackend('cpu');
`;

/** `import … from 'node:x'`, `import 'node:x'`, `export … from 'node:x'` or `import('node:x')` with a literal specifier. */
export function nodeImports(code) {
  const found = new Set();
  for (const m of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)["'`](node:[\w/]+)["'`]/g)) found.add(m[1]);
  return [...found];
}

/**
 * Bundles the entry above from the installed tarballs; resolves to { ok, why?, seconds, bytes }.
 * `tgzs` are the tarballs to install (the three packages and their Kiln dependencies).
 */
export function bundleCheck({ root, work, tgzs, npmInstall, sh }) {
  const t0 = Date.now();
  const project = join(work, 'bundle');
  mkdirSync(project);
  const vite = JSON.parse(readFileSync(join(root, 'examples/browser/package.json'), 'utf8')).devDependencies.vite;
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'try-kiln-browser', private: true, type: 'module' }, null, 2));
  const install = npmInstall(project, [...tgzs, `vite@${vite}`]);
  if (!install.ok) return { ok: false, why: `npm install failed:\n${install.out.slice(-3000)}` };
  writeFileSync(join(project, 'index.html'), '<!doctype html>\n<script type="module" src="./entry.js"></script>\n');
  writeFileSync(join(project, 'entry.js'), ENTRY);
  writeFileSync(
    join(project, 'vite.config.js'),
    "export default { base: './', logLevel: 'warn', build: { target: 'es2022', outDir: 'dist', chunkSizeWarningLimit: 1e9 }, worker: { format: 'es' } };\n",
  );
  const build = sh(join(project, 'node_modules/.bin/vite'), ['build'], { cwd: project, timeout: 600_000 });
  if (!build.ok) return { ok: false, why: `vite build failed:\n${build.out.slice(-3000)}` };
  const problems = [];
  const externalized = [...build.out.matchAll(/Module "([^"]+)" has been externalized for browser compatibility/g)].map((m) => m[1]);
  if (externalized.length) problems.push(`Vite stubbed Node builtins for the browser: ${[...new Set(externalized)].join(', ')}`);
  const assets = join(project, 'dist/assets');
  let bytes = 0;
  for (const f of readdirSync(assets).filter((f) => f.endsWith('.js'))) {
    const code = readFileSync(join(assets, f), 'utf8');
    bytes += code.length;
    const found = nodeImports(code);
    if (found.length) problems.push(`${f} imports ${found.join(', ')}`);
    if (code.includes('__vite-browser-external')) problems.push(`${f} holds Vite's browser stub of a Node builtin`);
  }
  const seconds = (Date.now() - t0) / 1000;
  return problems.length ? { ok: false, why: problems.join('\n'), seconds } : { ok: true, seconds, bytes };
}
