/**
 * Compiled compute pipelines, one per kernel variant (op, dtypes, contiguity, compile-time
 * constants), never per shape: shapes travel in the metadata arena. Bind-group layouts are shared
 * by every kernel with the same access pattern.
 */
import type {} from 'webgpu';

export interface Compiled {
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
}

export class PipelineCache {
  private pipelines = new Map<string, Compiled>();
  private layouts = new Map<string, { bgl: GPUBindGroupLayout; pl: GPUPipelineLayout }>();

  /** `onCompileError` hears WGSL compile errors, which the device reports asynchronously. */
  constructor(
    private readonly device: GPUDevice,
    private readonly onCompileError: (message: string) => void,
  ) {}

  get size(): number {
    return this.pipelines.size;
  }

  /** `accesses`: one char per binding including the metadata at 0, 'r' (read-only) or 'w'. */
  private layout(accesses: string): { bgl: GPUBindGroupLayout; pl: GPUPipelineLayout } {
    let l = this.layouts.get(accesses);
    if (!l) {
      const entries: GPUBindGroupLayoutEntry[] = [...accesses].map((a, i) => ({
        binding: i,
        visibility: 4, // GPUShaderStage.COMPUTE
        buffer: { type: a === 'r' ? 'read-only-storage' : 'storage' },
      }));
      const bgl = this.device.createBindGroupLayout({ entries });
      l = { bgl, pl: this.device.createPipelineLayout({ bindGroupLayouts: [bgl] }) };
      this.layouts.set(accesses, l);
    }
    return l;
  }

  /** The pipeline for `key`, compiling `source()` the first time. */
  get(key: string, accesses: string, source: () => string): Compiled {
    let p = this.pipelines.get(key);
    if (!p) {
      const code = source();
      const module = this.device.createShaderModule({ code, label: key });
      if (typeof module.getCompilationInfo === 'function') {
        void module.getCompilationInfo().then((info) => {
          const errors = info.messages.filter((m) => m.type === 'error');
          if (errors.length) {
            const text = errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('\n');
            this.onCompileError(`WGSL compile error in kernel ${key}:\n${text}`);
            if (typeof process !== 'undefined' && process.env?.KILN_WEBGPU_DEBUG) console.error(code, text);
          }
        });
      }
      const { bgl, pl } = this.layout(accesses);
      p = { pipeline: this.device.createComputePipeline({ layout: pl, compute: { module, entryPoint: 'main' }, label: key }), layout: bgl };
      this.pipelines.set(key, p);
    }
    return p;
  }
}
