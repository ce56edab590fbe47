import { lstat, mkdir, readdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { StoragePathError } from './errors.js';

/**
 * Where a job's files live: instance images, base models, checkpoints, trained models, images
 * and reports. Keys are relative, `/`-separated paths (`subjects/dog/images`); a key that would
 * leave the storage (`..`, an absolute path, a symlink pointing out) is a {@link StoragePathError}.
 *
 * Every worker of a pool must see the same storage: a shared volume (NFS, EFS, a CSI volume)
 * mounted at the same or another path on each machine, given as the root of a {@link LocalStorage}.
 *
 * @example
 * ```ts
 * async function readReport(storage: Storage, runKey: string): Promise<string> {
 *   return new TextDecoder().decode(await storage.read(`${runKey}/logs/report.html`));
 * }
 * ```
 */
export interface Storage {
  /** What this storage is, for logs (no secrets). */
  readonly description: string;
  /**
   * The local path of a key, checked to stay inside the storage; the trainer and the pipeline
   * read and write folders through it. `field` names the payload field in errors.
   */
  resolve(key: string, field?: string): Promise<string>;
  /** A file's bytes. */
  read(key: string): Promise<Uint8Array>;
  /** Writes a file atomically (a temporary name, then a rename), making its folders. */
  write(key: string, data: Uint8Array | string): Promise<void>;
  /** Whether a file or folder exists at the key. */
  exists(key: string): Promise<boolean>;
  /** The keys directly inside a folder key, sorted; empty when there is no such folder. */
  list(key: string): Promise<string[]>;
}

/** The most characters a key may have (deeper is a mistake or an attack, not a layout). */
const MAX_KEY_LENGTH = 1024;

/**
 * Checks a key's form and splits it into segments: relative, `/`-separated, no `..`, no NUL or
 * backslash (a backslash separates on Windows and would slip past a `/` split). `.` and empty
 * segments are dropped, so `a//./b` is `a/b`.
 *
 * @example
 * ```ts
 * keySegments('subjects//dog/./images'); // ['subjects', 'dog', 'images']
 * keySegments('../x', 'out'); // throws StoragePathError: out = "../x": leaves the storage root …
 * ```
 */
export function keySegments(key: unknown, field = 'key'): string[] {
  const fail = (why: string): never => {
    throw new StoragePathError(`${field} = ${JSON.stringify(key)}: ${why}`, String(key));
  };
  if (typeof key !== 'string') return fail('a storage key is a string');
  if (key.length === 0) fail('empty; a storage key names a file or folder under the storage root');
  if (key.length > MAX_KEY_LENGTH) fail(`longer than ${MAX_KEY_LENGTH} characters`);
  if (key.includes('\0')) fail('contains a NUL character');
  if (key.includes('\\')) fail('contains a backslash; storage keys use / between folders');
  if (key.startsWith('/') || isAbsolute(key) || /^[A-Za-z]:/.test(key))
    fail('absolute paths are refused; give a path relative to the storage root');
  const segments = key.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) fail('leaves the storage root ("../" is refused in storage keys)');
  return segments;
}

const inside = (root: string, p: string) => p === root || p.startsWith(root.endsWith(sep) ? root : root + sep);

/**
 * {@link Storage} on a local folder or a shared volume mounted on every worker. Keys are confined
 * to `root`: `..` and absolute keys are refused before touching the disk, and the deepest existing
 * folder of a key is resolved through symlinks and must still be inside the root, so a link
 * placed in the storage cannot lead a job out of it.
 *
 * @example
 * ```ts
 * const storage = new LocalStorage('/mnt/kiln');
 * await storage.resolve('subjects/dog/images'); // '/mnt/kiln/subjects/dog/images'
 * await storage.resolve('../etc/passwd');       // throws StoragePathError
 * ```
 */
export class LocalStorage implements Storage {
  readonly root: string;
  private real?: Promise<string>;

  constructor(root: string) {
    this.root = resolve(root);
  }

  get description(): string {
    return `local folder ${this.root}`;
  }

  private rootReal(): Promise<string> {
    this.real ??= mkdir(this.root, { recursive: true }).then(() => realpath(this.root));
    return this.real;
  }

  async resolve(key: string, field = 'key'): Promise<string> {
    const segments = keySegments(key, field);
    const root = await this.rootReal();
    const path = join(root, ...segments);
    // The deepest part of the path that exists decides where it really points.
    let existing = path;
    while (
      existing !== root &&
      !(await lstat(existing).then(
        () => true,
        () => false,
      ))
    )
      existing = dirname(existing);
    const real = await realpath(existing).catch(() => existing);
    if (!inside(root, real))
      throw new StoragePathError(
        `${field} = ${JSON.stringify(key)}: leaves the storage root through a symbolic link (${relative(root, existing) || '.'} points outside ${root})`,
        key,
      );
    return path;
  }

  async read(key: string): Promise<Uint8Array> {
    return new Uint8Array(await readFile(await this.resolve(key)));
  }

  async write(key: string, data: Uint8Array | string): Promise<void> {
    const path = await this.resolve(key);
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.${Date.now()}.tmp`;
    try {
      await writeFile(tmp, data);
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true }).catch(() => {});
      throw e;
    }
  }

  async exists(key: string): Promise<boolean> {
    return stat(await this.resolve(key)).then(
      () => true,
      () => false,
    );
  }

  async list(key: string): Promise<string[]> {
    const segments = keySegments(key);
    const names = await readdir(await this.resolve(key)).catch(() => [] as string[]);
    return names.sort().map((n) => [...segments, n].join('/'));
  }
}
