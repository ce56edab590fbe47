import * as k from '@kiln/tensor-core';
import type { BackendChoice } from './protocol.js';

/** WebGPU where `navigator.gpu` gives an adapter, else wasm (threaded when the page is cross-origin isolated). */
export async function pickBackend(choice: BackendChoice): Promise<{ name: string; detail: string }> {
  if (choice === 'auto' || choice === 'webgpu') {
    const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
    const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
    if (adapter) {
      await k.useBackend('webgpu');
      return { name: 'webgpu', detail: 'navigator.gpu adapter' };
    }
    if (choice === 'webgpu') throw new Error('WebGPU was asked for, but navigator.gpu gives no adapter here');
  }
  if (choice === 'cpu') {
    await k.useBackend('cpu');
    return { name: 'cpu', detail: 'plain JavaScript' };
  }
  const wasm = (await k.useBackend('wasm')) as k.WasmBackend;
  const isolated = (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true;
  return {
    name: 'wasm',
    detail:
      wasm.threads > 1
        ? `${wasm.threads} threads (cross-origin isolated)`
        : `single-threaded${isolated ? '' : ' (page not cross-origin isolated)'}`,
  };
}
