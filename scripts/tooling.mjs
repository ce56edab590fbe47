// Shared by the README's two commands: make sure pnpm and the workspace's packages are there.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('..', import.meta.url));
export const PNPM_VERSION = '12.21.0';

/** Runs a command in the repo root, streaming its output; returns its exit status. */
export function run(cmd, args, env = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

function hasPnpm() {
  const r = spawnSync('pnpm', ['--version'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() === PNPM_VERSION;
}

/** pnpm at the pinned version: the one on PATH, else installed globally, else through npx. */
export function pnpm() {
  if (hasPnpm()) return ['pnpm'];
  console.log(`[kiln] installing pnpm@${PNPM_VERSION}`);
  if (spawnSync('npm', ['install', '-g', `pnpm@${PNPM_VERSION}`], { stdio: 'inherit' }).status === 0 && hasPnpm()) return ['pnpm'];
  return ['npx', '--yes', `pnpm@${PNPM_VERSION}`];
}

/** Installs the workspace exactly as the lockfile says (fast when already installed). */
export function install() {
  const [cmd, ...pre] = pnpm();
  const status = run(cmd, [...pre, 'install', '--frozen-lockfile']);
  if (status !== 0) process.exit(status);
  if (!existsSync(`${root}/node_modules/.bin/vitest`)) {
    console.error('[kiln] install finished but vitest is missing');
    process.exit(1);
  }
}

/** Absolute paths of the repo's files that git tracks or would add (not ignored), matching `pattern`. */
export function trackedFiles(pattern) {
  const r = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`git ls-files failed: ${r.stderr || r.error?.message}`);
  return r.stdout
    .split('\0')
    .filter((f) => f && pattern.test(f) && existsSync(join(root, f)))
    .map((f) => join(root, f));
}
