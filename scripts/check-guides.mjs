// Typechecks the code in the guides (docs/guides/*.md), so they cannot drift from the API.
// The ```ts blocks of one guide, in order, form one module (a guide builds its example up block by
// block); each becomes a file in a temporary project whose `@kiln/*` imports resolve to the
// packages' sources, and `tsc` checks them all. Exits non-zero on any type error, naming the guide.
//
//   node scripts/check-guides.mjs            # check
//   node scripts/check-guides.mjs --keep     # also print where the extracted files are
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const guidesDir = join(root, 'docs/guides');

/** The ```ts blocks of a markdown file, with the line each starts on. */
export function tsBlocks(markdown) {
  const blocks = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i])) continue;
    const start = i + 1;
    let j = start;
    while (j < lines.length && !/^```\s*$/.test(lines[j])) j++;
    blocks.push({ line: start + 1, code: lines.slice(start, j).join('\n') });
    i = j;
  }
  return blocks;
}

/** `paths` for every package entry (`@kiln/x`, `@kiln/x/node`, …) to its `kiln-source` file. */
function sourcePaths() {
  const paths = {};
  for (const dir of readdirSync(join(root, 'packages'))) {
    const pkgFile = join(root, 'packages', dir, 'package.json');
    if (!existsSync(pkgFile)) continue;
    const pkg = JSON.parse(readFileSync(pkgFile, 'utf8'));
    for (const [sub, target] of Object.entries(pkg.exports ?? {})) {
      const src = typeof target === 'object' && target ? target['kiln-source'] : undefined;
      if (src) paths[sub === '.' ? pkg.name : `${pkg.name}/${sub.slice(2)}`] = [join(root, 'packages', dir, src)];
    }
  }
  return paths;
}

/** `paths` for third-party packages a guide imports (zod, …): the copy the first package that depends on it has. */
function dependencyPaths(code) {
  const paths = {};
  for (const [, name] of code.matchAll(/from '((?:@[^/']+\/)?[^/'.][^/']*)/g)) {
    if (name.startsWith('@kiln/') || name.startsWith('node:')) continue;
    for (const dir of readdirSync(join(root, 'packages'))) {
      const candidate = join(root, 'packages', dir, 'node_modules', name);
      if (existsSync(candidate)) {
        paths[name] = [candidate];
        break;
      }
    }
  }
  return paths;
}

const guides = existsSync(guidesDir) ? readdirSync(guidesDir).filter((f) => f.endsWith('.md')) : [];
const out = mkdtempSync(join(tmpdir(), 'kiln-guides-'));
const files = [];
let allCode = '';
for (const guide of guides) {
  const blocks = tsBlocks(readFileSync(join(guidesDir, guide), 'utf8'));
  if (!blocks.length) continue;
  // One module per guide; a comment before each block maps errors back to the guide's line.
  const body = blocks.map((b) => `// ${guide}:${b.line}\n${b.code}`).join('\n\n');
  allCode += body;
  const file = join(out, guide.replace(/\.md$/, '.ts'));
  writeFileSync(file, `${body}\n\nexport {};\n`);
  files.push(file);
}
mkdirSync(out, { recursive: true });
writeFileSync(
  join(out, 'tsconfig.json'),
  JSON.stringify(
    {
      extends: join(root, 'tsconfig.base.json'),
      compilerOptions: {
        noEmit: true,
        noUnusedLocals: false,
        typeRoots: [join(root, 'node_modules/@types')],
        paths: { ...dependencyPaths(allCode), ...sourcePaths() },
      },
      files,
    },
    null,
    2,
  ),
);
console.log(`[kiln] guides: typechecking ${files.length} guide(s), ${guides.length} found`);
const r = spawnSync(join(root, 'node_modules/.bin/tsc'), ['-p', join(out, 'tsconfig.json')], { cwd: out, encoding: 'utf8' });
const report = `${r.stdout ?? ''}${r.stderr ?? ''}`.replaceAll(`${out}/`, 'docs/guides/(extracted) ');
if (report.trim()) console.error(report.trim());
if (process.argv.includes('--keep')) console.log(`[kiln] extracted guides in ${out}`);
else rmSync(out, { recursive: true, force: true });
process.exit(r.status === 0 ? 0 : 1);
