// Runtime import cycles among the repo's TypeScript sources, found with TypeScript's own parser.
// An edge is a static `import`/`export … from` that stays in the emitted JavaScript: `import type`,
// `export type` and imports whose every name is `type` are erased, and `import()` is lazy, so none
// of those can make modules see each other half-initialised. `@kiln/x[/sub]` resolves through the
// package's `kiln-source` export, so cycles across packages count too.
//
//   node scripts/import-cycles.mjs   # prints every cycle, exits 1 if there is one
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { root, trackedFiles } from './tooling.mjs';

/**
 * Cycles allowed, each a set of files, with the reason. A cycle is allowed only when every file in
 * it belongs to one entry, and only while no file of the entry uses a name imported from another
 * at module load (outside a function body), so that load order cannot matter; both are checked.
 */
const ALLOWED = [
  {
    // Each primitive op keeps its gradient rule beside it (DESIGN decision 3), and those rules are
    // mutually recursive: sum's gradient is an expand and expand's a sum, a broadcast binary op's
    // gradient is a sum, max's an eq/mul/div, a half sum widens with cast. Moving the rules into
    // one table that autograd looks up by op name (tinygrad's gradient.py, jax-js's jvpRules)
    // would remove this entry.
    files: ['elementwise.ts', 'view.ts', 'reduce.ts', 'accumulate.ts'].map((f) => join(root, 'packages/tensor-core/src/ops', f)),
  },
];

/** The modules a file needs at run time, as specifiers. */
function runtimeImports(file) {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out = [];
  for (const node of source.statements) {
    if (ts.isImportDeclaration(node)) {
      const clause = node.importClause;
      if (clause?.isTypeOnly) continue;
      const named = clause?.namedBindings;
      const onlyTypes =
        clause &&
        !clause.name &&
        named &&
        ts.isNamedImports(named) &&
        named.elements.length > 0 &&
        named.elements.every((e) => e.isTypeOnly);
      if (!onlyTypes) out.push(node.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && !node.isTypeOnly) {
      const named = node.exportClause;
      const onlyTypes = named && ts.isNamedExports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly);
      if (!onlyTypes) out.push(node.moduleSpecifier.text);
    }
  }
  return out;
}

/** Names `file` imports from `targets` and uses while it loads (outside any function body). */
function loadTimeUses(file, targets, resolveSpec) {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const names = new Set();
  for (const node of source.statements) {
    if (!ts.isImportDeclaration(node) || node.importClause?.isTypeOnly || !targets.has(resolveSpec(node.moduleSpecifier.text))) continue;
    const clause = node.importClause;
    if (clause?.name) names.add(clause.name.text);
    const named = clause?.namedBindings;
    if (named && ts.isNamespaceImport(named)) names.add(named.name.text);
    if (named && ts.isNamedImports(named)) for (const e of named.elements) if (!e.isTypeOnly) names.add(e.name.text);
  }
  const used = new Set();
  const visit = (node) => {
    if (ts.isFunctionLike(node) || ts.isImportDeclaration(node) || ts.isTypeNode(node)) return; // bodies run later; types are erased
    if (ts.isIdentifier(node) && names.has(node.text)) used.add(node.text);
    ts.forEachChild(node, visit);
  };
  ts.forEachChild(source, visit);
  return [...used];
}

/** `@kiln/x` and `@kiln/x/sub` → the file its `kiln-source` condition names. */
function packageEntry(specifier) {
  const m = /^@kiln\/([^/]+)(\/.*)?$/.exec(specifier);
  if (!m) return null;
  const pkgDir = join(root, 'packages', m[1]);
  const pkgJson = join(pkgDir, 'package.json');
  if (!existsSync(pkgJson)) return null;
  const entry = JSON.parse(readFileSync(pkgJson, 'utf8')).exports?.[m[2] ? `.${m[2]}` : '.'];
  const target = typeof entry === 'object' ? entry['kiln-source'] : null;
  return target ? join(pkgDir, target) : null;
}

/** A relative specifier (`./x.js` as TypeScript writes it) → the source file, if it is one of ours. */
function resolveRelative(from, specifier) {
  const base = resolve(dirname(from), specifier);
  const stem = base.replace(/\.(m?js)$/, '');
  for (const candidate of [base, `${stem}.ts`, `${stem}.mts`, `${stem}.tsx`, join(base, 'index.ts')]) {
    if (existsSync(candidate) && /\.(m?ts|tsx)$/.test(candidate)) return candidate;
  }
  return null;
}

/** Every cycle's files (strongly connected components of the runtime import graph with > 1 file, or a self-import). */
export function importCycles(files = trackedFiles(/\.(m?ts|tsx)$/).filter((f) => !f.endsWith('.d.ts'))) {
  const graph = new Map();
  const resolver = (file) => (spec) => (spec.startsWith('.') ? resolveRelative(file, spec) : packageEntry(spec));
  for (const file of files) {
    graph.set(file, runtimeImports(file).map(resolver(file)).filter(Boolean));
  }
  // Tarjan's algorithm, iterative (deep import chains must not overflow the stack).
  const index = new Map();
  const low = new Map();
  const onStack = new Set();
  const stack = [];
  const cycles = [];
  let next = 0;
  for (const start of graph.keys()) {
    if (index.has(start)) continue;
    const work = [[start, 0]];
    index.set(start, next);
    low.set(start, next++);
    stack.push(start);
    onStack.add(start);
    while (work.length) {
      const frame = work[work.length - 1];
      const [v] = frame;
      const deps = graph.get(v) ?? [];
      if (frame[1] < deps.length) {
        const w = deps[frame[1]++];
        if (!index.has(w)) {
          index.set(w, next);
          low.set(w, next++);
          stack.push(w);
          onStack.add(w);
          work.push([w, 0]);
        } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), index.get(w)));
        continue;
      }
      work.pop();
      if (work.length) {
        const parent = work[work.length - 1][0];
        low.set(parent, Math.min(low.get(parent), low.get(v)));
      }
      if (low.get(v) === index.get(v)) {
        const component = [];
        let w;
        do {
          w = stack.pop();
          onStack.delete(w);
          component.push(w);
        } while (w !== v);
        if (component.length > 1 || (graph.get(v) ?? []).includes(v)) {
          const allowed = ALLOWED.find((a) => component.every((f) => a.files.includes(f)));
          if (!allowed) cycles.push(witness(graph, new Set(component)));
          else {
            const group = new Set(allowed.files);
            for (const f of component) {
              const uses = loadTimeUses(f, group, resolver(f));
              if (uses.length) cycles.push([`${relative(root, f)} uses ${uses.join(', ')} while loading, inside an allowed cycle`]);
            }
          }
        }
      }
    }
  }
  return cycles;
}

/** One concrete loop through a cycle's files, for the message: a → b → … → a. */
function witness(graph, component) {
  const first = [...component].sort()[0];
  // Breadth-first from `first` back to itself inside the component.
  const prev = new Map([[first, null]]);
  const queue = [first];
  while (queue.length) {
    const v = queue.shift();
    for (const w of graph.get(v) ?? []) {
      if (!component.has(w)) continue;
      if (w === first) {
        const path = [v];
        for (let p = prev.get(v); p !== null && p !== undefined; p = prev.get(p)) path.unshift(p);
        return [...path, first].map((f) => relative(root, f));
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [...component].map((f) => relative(root, f));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const cycles = importCycles();
  for (const c of cycles) console.error(`[kiln] import cycle: ${c.join(' → ')}`);
  console.log(`[kiln] import cycles: ${cycles.length}`);
  process.exit(cycles.length ? 1 : 0);
}
