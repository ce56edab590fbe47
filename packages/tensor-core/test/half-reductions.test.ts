/**
 * Half-precision reductions on the cpu backend, through its fused kernels and through the op
 * layer's composites (the path every backend without those kernels takes).
 */
import { describe } from 'vitest';
import * as k from '@kiln/tensor-core';
import { FUSED_BACKWARD_KERNELS, hideKernels } from './fused-backward.js';
import { halfReductionSuite } from './half-reductions.js';

halfReductionSuite('cpu');

// A second cpu backend with its fused norm, softmax and attention kernels hidden.
k.registerBackend('cpu-composite', () => {
  const backend = new k.CpuBackend();
  Object.defineProperty(backend, 'name', { value: 'cpu-composite' });
  hideKernels(backend, ['softmax', 'layerNorm', 'groupNorm', 'attention', ...FUSED_BACKWARD_KERNELS]);
  return backend;
});

describe('composites', () => {
  halfReductionSuite('cpu-composite');
});
