// What the trainer needs of a TrainerStorage, checked on each implementation: nodeStorage and
// memoryStorage in Node (storage.test.ts), opfsStorage in Chromium (browser/opfs-storage.browser.test.ts).
import { expect, it } from 'vitest';
import type { TrainerStorage } from '../src/index.js';

const text = (b: Uint8Array) => new TextDecoder().decode(b);
const codeOf = async (p: Promise<unknown>) => ((await p.then(() => null).catch((e) => e)) as { code?: string } | null)?.code;

/** Registers the contract's tests for the storage `make` returns, under a fresh folder `root`. */
export function storageContract(make: () => Promise<{ storage: TrainerStorage; root: string }>): void {
  it('writes (creating parent folders), reads, lists and tells files from folders', async () => {
    const { storage: s, root } = await make();
    await s.write(s.join(root, 'a', 'b', 'x.txt'), 'hello');
    await s.write(s.join(root, 'a', 'y.bin'), new Uint8Array([1, 2, 3]));
    expect(text(await s.read(s.join(root, 'a', 'b', 'x.txt')))).toBe('hello');
    expect(new Uint8Array(await (await s.blob(s.join(root, 'a', 'y.bin'))).arrayBuffer())).toEqual(new Uint8Array([1, 2, 3]));
    expect((await s.list(s.join(root, 'a'))).sort()).toEqual(['b', 'y.bin']);
    expect(await s.kind(s.join(root, 'a'))).toBe('folder');
    expect(await s.kind(s.join(root, 'a', 'y.bin'))).toBe('file');
    expect(await s.kind(s.join(root, 'nothing'))).toBeNull();
    await s.write(s.join(root, 'a', 'y.bin'), 'replaced');
    expect(text(await s.read(s.join(root, 'a', 'y.bin')))).toBe('replaced');
  });

  it('names a missing file or folder with code ENOENT', async () => {
    const { storage: s, root } = await make();
    expect(await codeOf(s.read(s.join(root, 'missing.txt')))).toBe('ENOENT');
    expect(await codeOf(s.list(s.join(root, 'missing')))).toBe('ENOENT');
  });

  it('renames a folder with its content, and removes folders recursively (a missing path is fine)', async () => {
    const { storage: s, root } = await make();
    await s.write(s.join(root, '.ck.tmp', 'unet', 'w.bin'), new Uint8Array([7]));
    await s.write(s.join(root, '.ck.tmp', 'state.json'), '{}');
    await s.rename(s.join(root, '.ck.tmp'), s.join(root, 'checkpoint-2'));
    expect(await s.kind(s.join(root, '.ck.tmp'))).toBeNull();
    expect(await s.read(s.join(root, 'checkpoint-2', 'unet', 'w.bin'))).toEqual(new Uint8Array([7]));
    expect(text(await s.read(s.join(root, 'checkpoint-2', 'state.json')))).toBe('{}');
    await s.mkdir(s.join(root, 'empty', 'deep'));
    expect(await s.list(s.join(root, 'empty', 'deep'))).toEqual([]);
    await s.remove(s.join(root, 'checkpoint-2'));
    await s.remove(s.join(root, 'never-was'));
    expect((await s.list(root)).sort()).toEqual(['empty']);
  });
}
