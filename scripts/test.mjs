// `npm test`: installs what is missing, typechecks every package, runs every test suite, and ends
// with one line `N passed, N failed, N skipped` summed over all suites.
//
// Suites that need a WebGPU driver or Chromium run when those are present; with
// KILN_REQUIRE_ALL_SUITES=1 (set by .ci/run) a missing one fails the run instead of being skipped.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { LINE_BUDGET, oversizeFiles } from './line-budget.mjs';
import { install, root, run } from './tooling.mjs';

const requireAll = process.env.KILN_REQUIRE_ALL_SUITES === '1';
/** What prettier formats (everything else, data and the wasm emitters, is in .prettierignore). */
export const FORMATTED = ['**/*.{ts,mts,cts,mjs,js}'];
install();

// Typecheck each package, the examples and the benchmarks.
const projects = [
  ...readdirSync(join(root, 'packages')).map((p) => `packages/${p}/tsconfig.json`),
  'examples/tsconfig.json',
  'examples/browser/tsconfig.json',
  'benchmarks/tsconfig.json',
].filter((p) => existsSync(join(root, p)));
let typeErrors = 0;
for (const p of projects) {
  console.log(`[kiln] typecheck ${p}`);
  if (run(join(root, 'node_modules/.bin/tsc'), ['-p', p]) !== 0) typeErrors++;
}

// The code in the guides (docs/guides/*.md) typechecks against the packages' sources.
console.log('[kiln] typecheck docs/guides');
if (run(process.execPath, [join(root, 'scripts/check-guides.mjs')]) !== 0) typeErrors++;

// Structure: no runtime import cycle, no code file over the line budget. Imported after install(),
// because the cycle check parses with the workspace's TypeScript.
console.log('[kiln] structure: import cycles, line budget');
const { importCycles } = await import('./import-cycles.mjs');
const cycles = importCycles();
for (const c of cycles) console.error(`[kiln] import cycle: ${c.join(' → ')}`);
const oversize = oversizeFiles();
for (const o of oversize) console.error(`[kiln] ${o.file}: ${o.lines} lines, over the budget of ${LINE_BUDGET}`);
const structureFailed = cycles.length > 0 || oversize.length > 0;

// Formatting: prettier, configured once (.prettierrc.json, .prettierignore); `pnpm format` fixes it.
console.log('[kiln] formatting (prettier --check)');
const formatFailed = run(join(root, 'node_modules/.bin/prettier'), ['--check', '--log-level', 'warn', ...FORMATTED]) !== 0;

// The API reference must build without warnings (typedoc.json: treatWarningsAsErrors), and every
// export has an @example (scripts/typedoc-require-examples.mjs).
console.log('[kiln] typedoc');
const docsFailed = run(join(root, 'node_modules/.bin/typedoc'), ['--logLevel', 'Warn']) !== 0;

const SWIFTSHADER = '/usr/lib/chromium/vk_swiftshader_icd.json';
const LAVAPIPE = '/usr/share/vulkan/icd.d/lvp_icd.json';
const suites = [{ name: 'node', config: 'vitest.config.ts', env: {} }];
const gpuSuites = [
  {
    name: 'webgpu (SwiftShader)',
    config: 'vitest.webgpu.config.ts',
    env: { VK_ICD_FILENAMES: SWIFTSHADER, KILN_WEBGPU_REQUIRED: '1' },
    needs: [SWIFTSHADER],
  },
  {
    name: 'webgpu (lavapipe)',
    config: 'vitest.webgpu.config.ts',
    env: { VK_ICD_FILENAMES: LAVAPIPE, KILN_WEBGPU_REQUIRED: '1' },
    needs: [LAVAPIPE],
  },
  { name: 'browser (Chromium)', config: 'vitest.browser.config.ts', env: {}, needs: ['/usr/bin/chromium'] },
];
const missing = [];
for (const s of gpuSuites) {
  if (!existsSync(join(root, s.config))) continue;
  const absent = s.needs.filter((f) => !existsSync(f));
  if (absent.length) missing.push(`${s.name}: missing ${absent.join(', ')}`);
  else suites.push(s);
}

const totals = { passed: 0, failed: 0, skipped: 0 };
const skippedNames = [];
const out = mkdtempSync(join(tmpdir(), 'kiln-test-'));
let crashed = 0;
for (const s of suites) {
  console.log(`\n[kiln] suite: ${s.name}`);
  const json = join(out, `${s.name.replace(/\W+/g, '-')}.json`);
  const status = run(
    join(root, 'node_modules/.bin/vitest'),
    ['run', '--config', s.config, '--reporter=default', '--reporter=json', `--outputFile.json=${json}`],
    s.env,
  );
  if (!existsSync(json)) {
    console.error(`[kiln] suite ${s.name} produced no report (exit ${status})`);
    crashed++;
    continue;
  }
  const report = JSON.parse(readFileSync(json, 'utf8'));
  totals.passed += report.numPassedTests;
  // A test file that fails to load has no test results: count it as one failure.
  const brokenFiles = report.testResults.filter(
    (f) => f.status === 'failed' && f.assertionResults.every((a) => a.status !== 'failed'),
  ).length;
  totals.failed += report.numFailedTests + brokenFiles;
  totals.skipped += report.numPendingTests + report.numTodoTests;
  for (const f of report.testResults) {
    for (const a of f.assertionResults) {
      if (a.status !== 'passed' && a.status !== 'failed') skippedNames.push(`${s.name}: ${relative(root, f.name)} > ${a.fullName}`);
    }
  }
  if (status !== 0 && report.numFailedTests === 0) crashed++;
}
rmSync(out, { recursive: true, force: true });

// Every package, built and packed, installs into an empty npm project and its README example runs
// there (a few minutes: it builds every package). KILN_SKIP_PACK_TEST=1 skips it locally.
let packFailed = false;
if (process.env.KILN_SKIP_PACK_TEST === '1') missing.push('packed packages: KILN_SKIP_PACK_TEST=1');
else {
  console.log('\n[kiln] suite: packed packages (scripts/pack-test.mjs)');
  packFailed = run(process.execPath, [join(root, 'scripts/pack-test.mjs')]) !== 0;
}

if (missing.length) {
  console.log(`\n[kiln] suites not run here: ${missing.join('; ')}`);
  if (requireAll) {
    console.error('[kiln] KILN_REQUIRE_ALL_SUITES=1: a suite that cannot run is a failure');
    crashed++;
  }
}
if (typeErrors) console.error(`[kiln] ${typeErrors} project(s) failed to typecheck`);
if (docsFailed) console.error('[kiln] typedoc failed to build the API reference');
if (packFailed) console.error('[kiln] the packed-package test failed (see [pack] lines above)');
if (formatFailed) console.error('[kiln] files are not formatted: run `pnpm format`');
if (structureFailed)
  console.error(`[kiln] structure: ${cycles.length} import cycle(s), ${oversize.length} file(s) over ${LINE_BUDGET} lines`);
if (skippedNames.length) console.log(`\n[kiln] skipped:\n${skippedNames.map((n) => `  - ${n}`).join('\n')}`);
console.log(`\n${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`);
process.exit(
  totals.failed || crashed || typeErrors || docsFailed || packFailed || formatFailed || structureFailed || (requireAll && totals.skipped)
    ? 1
    : 0,
);
