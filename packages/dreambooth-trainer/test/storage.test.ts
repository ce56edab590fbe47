import { describe } from 'vitest';
import { memoryStorage } from '../src/index.js';
import { nodeStorage } from '../src/node.js';
import { tempDir } from './helpers.js';
import { storageContract } from './storage-contract.js';

describe('nodeStorage', () => storageContract(async () => ({ storage: nodeStorage(), root: tempDir('storage') })));
describe('memoryStorage', () => storageContract(async () => ({ storage: memoryStorage(), root: 'work' })));
