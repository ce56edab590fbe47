// The packed-package test: every package, built and packed as it would be published, installs
// into an empty npm project (no workspace, no links) and the example in its README runs there.
//
//   node scripts/pack-test.mjs              # all packages
//   node scripts/pack-test.mjs nn vae       # some (only they and the Kiln packages they need are built)
//
// For each package: `tsup` build, `pnpm pack` (which rewrites `workspace:*` to versions), a check
// of the packed package.json (fields, exports with types, every exported file inside the tarball)
// and of its dependencies (every package the built code imports is declared). Then the tarballs
// are installed with npm into one empty project (third-party packages come from npm's cache when
// there, else the registry) and each README example is typechecked against the installed `.d.ts`
// files and run in Node. The example is the fenced `js` block after `<!-- packed-example -->` in
// the package's README; `<!-- packed-example needs: redis-server -->` runs it with a throwaway
// redis-server on a free port, its URL in `KILN_REDIS_URL`. `--isolated` installs each package, with only the Kiln packages it depends
// on, into a project of its own instead (slower: one copy of Dawn's binaries per package). Last,
// the packages a browser app imports are bundled for the browser with Vite (scripts/pack-bundle.mjs).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BROWSER_PACKAGES, bundleCheck } from './pack-bundle.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
/** The repository every package.json points at (one value, checked below). */
export const REPOSITORY = 'git+https://github.com/kiln-ml/kiln.git';
/** Packages whose README example cannot run yet, with why (printed as skipped; keep this short). */
const PENDING = {};
const REQUIRED_FIELDS = ['name', 'version', 'description', 'type', 'license', 'repository', 'engines', 'sideEffects', 'exports', 'files'];

function sh(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: options.timeout ?? 300_000, ...options });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

/** Runs a command without blocking the event loop; resolves like `sh`. */
function shAsync(cmd, args, options) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d) => (out += d));
    p.on('error', (e) => (out += String(e)));
    p.on('close', (code, signal) => resolve({ ok: code === 0, out: signal ? `${out}\n(killed by ${signal})` : out }));
  });
}

/** A throwaway redis-server on a free port (persistence off), for examples that need one. */
async function startRedis(dir) {
  mkdirSync(dir, { recursive: true });
  const port = await new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
  const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`redis-server did not start in 15 s: ${out}`)), 15_000);
    p.on('error', (e) => reject(e));
    p.on('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
    p.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      if (out.includes('Ready to accept connections')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return {
    url: `redis://127.0.0.1:${port}`,
    stop: () =>
      new Promise((resolve) => {
        if (p.exitCode !== null) return resolve();
        p.once('exit', resolve);
        p.kill('SIGTERM');
      }),
  };
}

/** The README's packed example, its `npm install` line and the servers it needs (`needs: redis-server`). */
export function readmeExample(readme) {
  const marker = /<!-- packed-example(?: needs: ([\w-]+(?:, *[\w-]+)*))? -->/.exec(readme);
  if (!marker) return null;
  const at = marker.index;
  const code = /```js\n([\s\S]*?)\n```/.exec(readme.slice(at));
  const install = [...readme.slice(0, at).matchAll(/^npm install (.+)$/gm)].pop();
  const needs = marker[1] ? marker[1].split(/, */) : [];
  return code ? { code: code[1], packages: install ? install[1].trim().split(/\s+/) : [], needs } : null;
}

/** Problems with a packed package.json and the tarball's file list. */
export function checkManifest(pkg, files, dir) {
  const problems = REQUIRED_FIELDS.filter((f) => pkg[f] === undefined).map((f) => `package.json has no "${f}"`);
  if (pkg.repository && (pkg.repository.url !== REPOSITORY || pkg.repository.directory !== `packages/${dir}`))
    problems.push(`repository should be { url: ${REPOSITORY}, directory: packages/${dir} }`);
  if (pkg.engines && !pkg.engines.node) problems.push('engines has no "node"');
  for (const [name, version] of Object.entries({ ...pkg.dependencies, ...pkg.peerDependencies }))
    if (String(version).startsWith('workspace:')) problems.push(`dependency ${name} is still ${version} after packing`);
  for (const [sub, target] of Object.entries(pkg.exports ?? {})) {
    if (typeof target !== 'object' || !target.types || !target.import) {
      problems.push(`exports["${sub}"] needs "types" and "import"`);
      continue;
    }
    for (const f of [target.types, target.import])
      if (!files.has(f.replace(/^\.\//, ''))) problems.push(`exports["${sub}"] → ${f} is not in the tarball`);
  }
  // Nested conditions (`browser` builds) and `imports` (`#node-only`) must point into the tarball too.
  const targets = (where, t) =>
    typeof t === 'string'
      ? [[where, t]]
      : Object.entries(t ?? {}).flatMap(([c, v]) => (c === 'kiln-source' ? [] : targets(`${where}.${c}`, v)));
  const conditional = [
    ...Object.entries(pkg.exports ?? {}).flatMap(([sub, t]) =>
      Object.entries(t).flatMap(([c, v]) => (typeof v === 'object' ? targets(`exports["${sub}"].${c}`, v) : [])),
    ),
    ...Object.entries(pkg.imports ?? {}).flatMap(([sub, t]) => targets(`imports["${sub}"]`, t)),
  ];
  for (const [where, f] of conditional) if (!files.has(f.replace(/^\.\//, ''))) problems.push(`${where} → ${f} is not in the tarball`);
  for (const bin of Object.values(typeof pkg.bin === 'string' ? { bin: pkg.bin } : (pkg.bin ?? {})))
    if (!files.has(bin.replace(/^\.\//, ''))) problems.push(`bin ${bin} is not in the tarball`);
  if (!files.has('README.md')) problems.push('README.md is not in the tarball');
  return problems;
}

const isolated = process.argv.includes('--isolated');
/** Packages the built code imports (`import … from 'x'`, `import('x')`) that package.json does not declare. */
export function undeclaredImports(pkg, sources) {
  const declared = new Set([pkg.name, ...Object.keys({ ...pkg.dependencies, ...pkg.peerDependencies, ...pkg.optionalDependencies })]);
  const missing = new Set();
  for (const code of sources) {
    for (const [, spec] of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["']([^"'./][^"']*)["']/g)) {
      if (spec.startsWith('node:') || builtinModules.includes(spec)) continue;
      if (!/^(@[a-z0-9-~][\w.~-]*\/)?[a-z0-9-~][\w.~-]*(\/[\w.~/-]*)?$/.test(spec)) continue; // not a package name (text in a string)
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
      if (!declared.has(name)) missing.add(name);
    }
  }
  return [...missing];
}

const only = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const dirs = readdirSync(join(root, 'packages')).filter(
  (d) => existsSync(join(root, 'packages', d, 'package.json')) && (!only.length || only.includes(d)),
);
/** Folders to build and pack: every package, or those named and the Kiln packages they and their examples need. */
function toBuild() {
  const all = readdirSync(join(root, 'packages')).filter((d) => existsSync(join(root, 'packages', d, 'package.json')));
  if (!only.length) return all;
  const manifest = (d) => JSON.parse(readFileSync(join(root, 'packages', d, 'package.json'), 'utf8'));
  const dirOf = new Map(all.map((d) => [manifest(d).name, d]));
  const seen = new Set();
  const visit = (d) => {
    if (!d || seen.has(d)) return;
    seen.add(d);
    for (const dep of Object.keys(manifest(d).dependencies ?? {})) visit(dirOf.get(dep));
  };
  for (const d of dirs) {
    visit(d);
    const readme = join(root, 'packages', d, 'README.md');
    for (const name of existsSync(readme) ? (readmeExample(readFileSync(readme, 'utf8'))?.packages ?? []) : []) visit(dirOf.get(name));
  }
  return all.filter((d) => seen.has(d));
}
const work = mkdtempSync(join(tmpdir(), 'kiln-pack-'));
const tarballs = join(work, 'tarballs');
mkdirSync(tarballs);
const started = Date.now();
const results = [];
const fail = (dir, why) => results.push({ dir, ok: false, why });

// 1. Build and pack every package (the examples need their Kiln dependencies packed too).
const manifests = new Map();
for (const dir of toBuild()) {
  const src = join(root, 'packages', dir);
  // Pending packages are packed too (others may depend on them); only their example is skipped.
  if (!existsSync(join(src, 'package.json'))) continue;
  const t0 = Date.now();
  // `--no-build` reuses an existing dist/ (for iterating on examples; npm test always builds).
  const reuse = process.argv.includes('--no-build') && existsSync(join(src, 'dist'));
  // tsup's declaration build takes minutes on a busy 2-core machine.
  const build = reuse ? { ok: true, out: '' } : sh('pnpm', ['run', 'build'], { cwd: src, timeout: 900_000 });
  if (!build.ok) {
    if (PENDING[dir]) console.log(`[pack] ${dir}: build failed (pending package, not counted):\n${build.out.slice(-1500)}`);
    else fail(dir, `build failed:\n${build.out.slice(-3000)}`);
    continue;
  }
  const pack = sh('pnpm', ['pack', '--pack-destination', tarballs, '--json'], { cwd: src });
  if (!pack.ok) {
    fail(dir, `pnpm pack failed:\n${pack.out.slice(-3000)}`);
    continue;
  }
  const info = JSON.parse(pack.out.slice(pack.out.indexOf('{')));
  const tgz = info.filename.startsWith('/') ? info.filename : join(tarballs, info.filename);
  const listed = sh('tar', ['-xzOf', tgz, 'package/package.json']);
  const pkg = JSON.parse(listed.out);
  const files = new Set(
    sh('tar', ['-tzf', tgz])
      .out.split('\n')
      .filter(Boolean)
      .map((f) => f.replace(/^package\//, '')),
  );
  const dist = join(src, 'dist');
  const sources = readdirSync(dist)
    .filter((f) => f.endsWith('.js'))
    .map((f) => readFileSync(join(dist, f), 'utf8'));
  manifests.set(pkg.name, { dir, pkg, files, tgz, undeclared: undeclaredImports(pkg, sources) });
  console.log(`[pack] ${pkg.name}: built and packed in ${((Date.now() - t0) / 1000).toFixed(0)} s (${files.size} files)`);
}

const npmInstall = (project, tgzs) =>
  sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', ...tgzs], { cwd: project, timeout: 900_000 });
let shared;
/** One empty project with every packed package installed (null when npm fails). */
function sharedProject() {
  const project = join(work, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'try-kiln', private: true, type: 'module' }, null, 2));
  const t0 = Date.now();
  // Only packages whose Kiln dependencies all packed; the others fail on their own below.
  const installable = [...manifests.keys()].filter((name) => missingKilnDeps(name).length === 0);
  const install = npmInstall(
    project,
    installable.map((name) => manifests.get(name).tgz),
  );
  if (!install.ok) {
    console.error(`[pack] npm install failed:\n${install.out.slice(-3000)}`);
    return null;
  }
  console.log(`[pack] installed ${manifests.size} tarballs into an empty project in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return project;
}

/** Kiln packages `name` depends on (directly or not) that did not build or pack. */
function missingKilnDeps(name, seen = new Set()) {
  if (seen.has(name)) return [];
  seen.add(name);
  const m = manifests.get(name);
  if (!m) return [name];
  return Object.keys(m.pkg.dependencies ?? {})
    .filter((d) => d.startsWith('@kiln/'))
    .flatMap((d) => missingKilnDeps(d, seen));
}

/** The tarballs of `names` and every Kiln package they depend on. */
function closure(names) {
  const seen = new Set();
  const visit = (name) => {
    if (seen.has(name) || !manifests.has(name)) return;
    seen.add(name);
    for (const dep of Object.keys(manifests.get(name).pkg.dependencies ?? {})) visit(dep);
  };
  names.forEach(visit);
  return [...seen].map((n) => manifests.get(n).tgz);
}

// 2. Per package: manifest checks, the project to try it in, and its README example written there.
const prepared = [];
for (const dir of dirs) {
  if (PENDING[dir] && !only.includes(dir)) {
    results.push({ dir, ok: true, skipped: PENDING[dir] });
    continue;
  }
  const entry = [...manifests.values()].find((m) => m.dir === dir);
  if (!entry) continue; // build or pack failed, reported above
  const t0 = Date.now();
  const problems = checkManifest(entry.pkg, entry.files, dir);
  if (entry.undeclared.length) problems.push(`the built code imports ${entry.undeclared.join(', ')}, not in dependencies`);
  const example = readmeExample(readFileSync(join(root, 'packages', dir, 'README.md'), 'utf8'));
  if (!example) problems.push('README.md has no `<!-- packed-example -->` js block');
  if (problems.length) {
    fail(dir, problems.join('\n'));
    continue;
  }
  const needed = [...new Set([entry.pkg.name, ...example.packages])];
  const unpacked = [...new Set(needed.flatMap((n) => missingKilnDeps(n)))];
  if (unpacked.length) {
    fail(dir, `depends on ${unpacked.join(', ')}, which did not build or pack`);
    continue;
  }
  const unknown = needed.filter((n) => !manifests.has(n));
  if (unknown.length) {
    fail(dir, `README installs ${unknown.join(', ')}, which is not a packed Kiln package`);
    continue;
  }
  if (!isolated && shared === undefined) shared = sharedProject();
  const project = isolated ? join(work, `project-${dir}`) : shared;
  if (!project) {
    fail(dir, 'npm install of the packed packages failed (above)');
    continue;
  }
  if (isolated) {
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: `try-${dir}`, private: true, type: 'module' }, null, 2));
    const install = npmInstall(project, closure(needed));
    if (!install.ok) {
      fail(dir, `npm install failed:\n${install.out.slice(-3000)}`);
      continue;
    }
  }
  const exampleFile = `example-${dir}.mjs`;
  writeFileSync(join(project, exampleFile), `${example.code}\n`);
  prepared.push({ dir, project, exampleFile, t0, needs: example.needs });
}

// 3. Typecheck the examples against the installed declarations (one tsc per project: every import
// must resolve to its types), then run each that passes, in a folder of its own (they write files).
for (const project of new Set(prepared.map((p) => p.project))) {
  const mine = prepared.filter((p) => p.project === project);
  writeFileSync(
    join(project, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        allowJs: true,
        checkJs: true,
        noEmit: true,
        noImplicitAny: true,
        skipLibCheck: true,
        lib: ['es2023', 'dom'],
        typeRoots: [join(root, 'node_modules/@types')],
        types: ['node'],
      },
      files: mine.map((p) => p.exampleFile),
    }),
  );
  const types = sh(join(root, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json'], { cwd: project });
  for (const { dir, exampleFile, t0, needs } of mine) {
    const errors = types.out.split('\n').filter((line) => line.startsWith(`${exampleFile}(`));
    if (!types.ok && (errors.length || !types.out.includes('.mjs('))) {
      fail(dir, `the README example does not typecheck against the installed types:\n${(errors.join('\n') || types.out).slice(-3000)}`);
      continue;
    }
    const cwd = join(project, `run-${dir}`);
    mkdirSync(cwd);
    let redis = null;
    if (needs.includes('redis-server')) {
      try {
        redis = await startRedis(join(work, `redis-${dir}`));
      } catch (e) {
        fail(dir, `its README example needs a redis-server (apt-get install redis-server; .ci/run does): ${e.message}`);
        continue;
      }
    }
    const env = redis ? { ...process.env, KILN_REDIS_URL: redis.url } : process.env;
    // Asynchronous, so that the event loop is free to watch the redis-server beside it.
    const runIt = await shAsync(process.execPath, [join(project, exampleFile)], { cwd, env, timeout: 240_000 });
    await redis?.stop();
    if (!runIt.ok) {
      fail(dir, `the README example failed in Node:\n${runIt.out.slice(-3000)}`);
      continue;
    }
    results.push({ dir, ok: true, seconds: (Date.now() - t0) / 1000, output: runIt.out.trim().split('\n').slice(-2).join(' | ') });
  }
}

// 4. The browser side: the packed packages a browser app imports, bundled by Vite for the browser.
if (BROWSER_PACKAGES.every((name) => manifests.has(name) && missingKilnDeps(name).length === 0)) {
  const bundle = bundleCheck({ root, work, tgzs: closure(BROWSER_PACKAGES), npmInstall, sh });
  if (bundle.ok)
    results.push({
      dir: 'browser bundle',
      ok: true,
      seconds: bundle.seconds,
      output: `${(bundle.bytes / 1e6).toFixed(1)} MB of JS, no node: imports`,
    });
  else fail('browser bundle', bundle.why);
} else if (!only.length) fail('browser bundle', `needs ${BROWSER_PACKAGES.join(', ')} packed`);

for (const r of results) {
  if (r.skipped) console.log(`[pack] ${r.dir}: skipped (${r.skipped})`);
  else if (r.ok) console.log(`[pack] ${r.dir}: ok in ${r.seconds.toFixed(0)} s → ${r.output}`);
  else console.error(`[pack] ${r.dir}: FAILED\n${r.why}`);
}
const failed = results.filter((r) => !r.ok);
const skipped = results.filter((r) => r.skipped).length;
console.log(
  `[pack] ${results.length - failed.length - skipped} of ${results.length} packages ok, ${skipped} skipped, ${failed.length} failed, in ${((Date.now() - started) / 1000).toFixed(0)} s`,
);
if (process.env.KILN_KEEP_PACK_DIR === '1') console.log(`[pack] work folder: ${work}`);
else rmSync(work, { recursive: true, force: true });
process.exit(failed.length ? 1 : 0);
