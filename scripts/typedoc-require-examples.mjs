// A typedoc plugin: every exported symbol of every package (function, class, constant, interface,
// type, enum) must carry an `@example` block in its TSDoc. A missing one is a typedoc warning,
// which `treatWarningsAsErrors` (typedoc.json) turns into a failed `npm test`.
//
// `docs/missing-examples.json` lists the exports that had no example when the rule came in (a
// ratchet): they are not reported, a new export without an example is, and so is a listed one that
// has gained its example (delete it from the list), so the list only shrinks.
import { existsSync, readFileSync } from 'node:fs';
import { Converter, ReflectionKind } from 'typedoc';

const KINDS =
  ReflectionKind.Function |
  ReflectionKind.Class |
  ReflectionKind.Variable |
  ReflectionKind.Interface |
  ReflectionKind.TypeAlias |
  ReflectionKind.Enum;

const BASELINE = new URL('../docs/missing-examples.json', import.meta.url);

/** Whether the reflection's own comment or one of its signatures' has an `@example` block. */
function hasExample(reflection) {
  const comments = [reflection.comment, ...(reflection.signatures ?? []).map((s) => s.comment)];
  return comments.some((c) => c?.blockTags.some((t) => t.tag === '@example'));
}

/** @param {import('typedoc').Application} app */
export function load(app) {
  const baseline = existsSync(BASELINE) ? JSON.parse(readFileSync(BASELINE, 'utf8')) : {};
  const list = process.env.KILN_LIST_MISSING_EXAMPLES === '1';
  app.converter.on(Converter.EVENT_RESOLVE_END, (context) => {
    const pkg = context.project.packageName ?? context.project.name;
    const allowed = new Set(baseline[pkg] ?? []);
    const missing = [];
    for (const r of context.project.getReflectionsByKind(KINDS)) {
      // Top-level exports only: members are covered by their owner's example.
      if (!r.parent || !(r.parent.kindOf(ReflectionKind.Project) || r.parent.kindOf(ReflectionKind.Module))) continue;
      const name = r.getFullName();
      if (hasExample(r)) {
        if (allowed.has(name)) app.logger.warn(`${pkg}: ${name} has an @example now; remove it from docs/missing-examples.json`);
      } else if (list) console.log(`MISSING\t${pkg}\t${name}\t${ReflectionKind[r.kind]}`);
      else if (!allowed.has(name)) missing.push(name);
      allowed.delete(name);
    }
    for (const name of missing.sort()) app.logger.warn(`${pkg}: ${name} has no @example in its TSDoc`);
    for (const name of allowed) app.logger.warn(`${pkg}: ${name} is listed in docs/missing-examples.json but is not exported`);
  });
}
