import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalStorage, StoragePathError, keySegments } from '@kiln/jobs';
import { tempDir } from './world.js';

describe('LocalStorage: paths are confined to the root', () => {
  it.each([
    ['../outside', /"\.\.\/" is refused/],
    ['a/../../outside', /"\.\.\/" is refused/],
    ['a/..', /"\.\.\/" is refused/],
    ['/etc/passwd', /absolute paths are refused/],
    ['C:/Windows', /absolute paths are refused/],
    ['a\\..\\..\\b', /backslash/],
    ['a\0b', /NUL/],
    ['', /empty/],
  ])('refuses %j with a StoragePathError', async (key, why) => {
    const storage = new LocalStorage(tempDir('confine'));
    const e = await storage.resolve(key, 'config.instance_data_dir').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(StoragePathError);
    expect((e as StoragePathError).key).toBe(key);
    expect((e as Error).message).toMatch(/^config\.instance_data_dir = /);
    expect((e as Error).message).toMatch(why);
  });

  it('refuses a key that leaves through a symbolic link, and allows one that stays inside', async () => {
    const root = tempDir('links');
    const outside = tempDir('outside');
    writeFileSync(join(outside, 'secret'), 'x');
    mkdirSync(join(root, 'data'));
    symlinkSync(outside, join(root, 'data', 'escape'));
    symlinkSync(join(root, 'data'), join(root, 'alias'));
    const storage = new LocalStorage(root);
    await expect(storage.resolve('data/escape/secret')).rejects.toThrow(
      /leaves the storage root through a symbolic link \(data\/escape\/secret points outside/,
    );
    await expect(storage.resolve('data/escape/not-yet/file')).rejects.toBeInstanceOf(StoragePathError);
    await expect(storage.read('data/escape/secret')).rejects.toBeInstanceOf(StoragePathError);
    expect(await storage.resolve('alias/new/file.png')).toBe(join(storage.root, 'alias', 'new', 'file.png'));
  });

  it('normalises . and empty segments and resolves inside the root', async () => {
    const storage = new LocalStorage(tempDir('norm'));
    expect(keySegments('a//./b/')).toEqual(['a', 'b']);
    expect(await storage.resolve('a//./b')).toBe(join(storage.root, 'a', 'b'));
  });

  it('writes atomically, reads, lists and tells what exists', async () => {
    const storage = new LocalStorage(tempDir('io'));
    await storage.write('runs/dog/report.html', '<html>');
    await storage.write('runs/dog/a.bin', new Uint8Array([1, 2, 3]));
    expect(new TextDecoder().decode(await storage.read('runs/dog/report.html'))).toBe('<html>');
    expect(await storage.list('runs/dog')).toEqual(['runs/dog/a.bin', 'runs/dog/report.html']);
    expect(await storage.list('runs/none')).toEqual([]);
    expect(await storage.exists('runs/dog/a.bin')).toBe(true);
    expect(await storage.exists('runs/cat')).toBe(false);
    await expect(storage.write('../x', 'y')).rejects.toBeInstanceOf(StoragePathError);
  });
});
