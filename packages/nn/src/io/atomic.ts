// Node only: reached through `@kiln/nn/node`.
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** One write is at most 1 GiB: Node caps a single write well below multi-GB tensors. */
const CHUNK = 1 << 30;

/** Writes all of `bytes` at `position`, in chunks. */
export async function writeAll(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.length;) {
    const { bytesWritten } = await fh.write(bytes, done, Math.min(CHUNK, bytes.length - done), position + done);
    done += bytesWritten;
  }
}

/**
 * Creates `path` atomically: `write` fills a temporary file next to it (`.<name>.<random>.tmp`,
 * in the same folder so that the rename cannot cross filesystems), which is fsynced and renamed
 * over `path` only when `write` succeeded. On any error the temporary file is removed and `path`
 * is untouched, so readers see the old file or the complete new one, never half of it. Parent
 * folders are created.
 *
 * @example
 * ```ts
 * await writeAtomic('out/blob.bin', async (fh) => { await fh.write(bytes, 0, bytes.length, 0); });
 * ```
 */
export async function writeAtomic(path: string, write: (fh: FileHandle) => Promise<void>): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'wx');
    await write(fh);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, path);
  } catch (err) {
    await fh?.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  // Make the rename itself durable where the platform allows syncing a folder (not on Windows).
  const d = await open(dir, 'r').catch(() => undefined);
  await d?.sync().catch(() => undefined);
  await d?.close().catch(() => undefined);
}

/**
 * Writes a text or binary file atomically (see {@link writeAtomic}): write, fsync, rename.
 *
 * @example
 * ```ts
 * await writeFileAtomic('out/config.json', `${JSON.stringify(config, null, 2)}\n`);
 * ```
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  await writeAtomic(path, (fh) => writeAll(fh, bytes, 0));
}
