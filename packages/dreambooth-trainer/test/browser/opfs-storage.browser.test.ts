// opfsStorage against the storage contract in Chromium, with the browser's `move()` for folder
// renames and with the copy-then-remove path browsers without it take.
import { afterAll, describe } from 'vitest';
import { opfsStorage } from '../../src/index.js';
import { storageContract } from '../storage-contract.js';

const made: string[] = [];
let n = 0;
const fresh = async () => {
  const storage = await opfsStorage();
  const root = `kiln-storage-test-${Date.now()}-${n++}`;
  made.push(root);
  await storage.mkdir(root);
  return { storage, root };
};
afterAll(async () => {
  const storage = await opfsStorage();
  for (const root of made) await storage.remove(root);
});

describe('opfsStorage', () => storageContract(fresh));

describe('opfsStorage without FileSystemHandle.move', () => {
  const proto = FileSystemHandle.prototype as { move?: unknown };
  const saved = Object.getOwnPropertyDescriptor(proto, 'move');
  storageContract(async () => {
    Object.defineProperty(proto, 'move', { value: undefined, configurable: true, writable: true });
    return fresh();
  });
  afterAll(() => {
    if (saved) Object.defineProperty(proto, 'move', saved);
    else delete proto.move;
  });
});
