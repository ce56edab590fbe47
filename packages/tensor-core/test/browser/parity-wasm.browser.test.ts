/**
 * The op-parity suite for the wasm backend in a real browser (vitest browser mode). Without
 * cross-origin isolation there is no SharedArrayBuffer, and the backend runs on one thread;
 * with it, the backend starts Web Workers over a shared memory.
 */
import { paritySuite } from '../parity.js';

paritySuite('wasm');
