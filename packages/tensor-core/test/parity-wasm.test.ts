import { paritySuite } from './parity.js';

paritySuite('wasm');
