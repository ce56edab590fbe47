import * as k from '@kiln/tensor-core';
import { parameter } from './parameter.js';
import type { Parameter } from './parameter.js';
import { deferred, initSkipped, isPlaceholder, markLoaded, placeholder } from './skip-init.js';
import { checkLoad, entriesOf, nullRecord } from './state-dict.js';
import type { Described, KeyPattern, LoadStateDictResult, StateDict } from './state-dict.js';

export type { StateDict, LoadStateDictResult } from './state-dict.js';

/** A module whose forward maps one tensor to one tensor (what `Sequential` chains). @example const layers: UnaryModule[] = [new Linear(4, 8), new SiLU()]; // what Sequential chains */
export interface UnaryModule extends Module {
  forward(x: k.Tensor): k.Tensor;
}

/**
 * A module attached to another with {@link Module.addAdapter} (LoRA, and later methods): it sees
 * the host's input and output and returns the adapted output. Its parameters belong to the tree
 * (optimizers, `to`, `toBackend`, checkpointing see them) but not to the host's state dict.
 *
 * @example
 * ```ts
 * // A LoraLayer is a ModuleAdapter: its layer's output becomes adapt(input, output).
 * const adapter = injectLora(unet, { targets: LORA_TARGETS.unetAttention });
 * ```
 */
export interface ModuleAdapter extends Module {
  adapt(input: k.Tensor, output: k.Tensor): k.Tensor;
}

const NAME = /^[^.]+$/;

/**
 * The base of every layer and model: a tree of named submodules, parameters and buffers whose
 * dotted paths are the state-dict keys. Names are given explicitly when registering, because
 * upstream keys are snake_case (`self_attn`, `conv_in`, `linear_1`) while JS fields are camelCase
 * and no mechanical conversion gets every upstream name right. The register methods return what
 * they register, so a field and its key are declared on one line:
 *
 * ```ts
 * class Block extends Module {
 *   readonly selfAttn = this.registerModule('self_attn', new Attention(768));
 *   readonly scale = this.registerParameter('scale', k.ones([768]));
 * }
 * ```
 *
 * Modules are called through `forward` (JS objects cannot be made callable without a Proxy).
 * `to(dtype)` and `toBackend(name)` replace parameter tensors (a tensor's dtype and backend are
 * fixed) and re-point the module's own fields that held the old ones; build the optimizer after
 * them. Everything else (`loadStateDict`, optimizer steps) updates tensors in place.
 *
 * @example
 * ```ts
 * class Mlp extends Module {
 *   readonly fc1 = this.registerModule('fc1', new Linear(4, 8));
 *   readonly fc2 = this.registerModule('fc2', new Linear(8, 2));
 *   forward(x: k.Tensor): k.Tensor {
 *     return this.fc2.forward(k.silu(this.fc1.forward(x)));
 *   }
 * }
 * const mlp = new Mlp();
 * Object.keys(mlp.stateDict()); // ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']
 * ```
 */
export abstract class Module {
  /** Training mode (dropout active); set with `train()` / `eval()`. */
  training = true;
  readonly #modules = new Map<string, Module>();
  readonly #parameters = new Map<string, Parameter>();
  readonly #buffers = new Map<string, k.Tensor>();
  readonly #nonPersistent = new Set<string>();
  readonly #adapters = new Set<string>();

  // Registration ------------------------------------------------------------------------------

  #checkName(name: string, kind: string): void {
    if (!NAME.test(name))
      throw new k.ArgumentError(`${this.constructor.name}: ${kind} name '${name}' must be non-empty and contain no '.'`);
    const taken = this.#modules.has(name) || this.#parameters.has(name) || this.#buffers.has(name);
    if (taken) throw new k.ArgumentError(`${this.constructor.name}: '${name}' is already registered`);
  }

  /**
   * Adds a child module under `name` (its key prefix) and returns it.
   *
   * @example
   * ```ts
   * readonly selfAttn = this.registerModule('self_attn', new Attention(768));
   * ```
   */
  registerModule<M extends Module>(name: string, module: M): M {
    this.#checkName(name, 'module');
    this.#modules.set(name, module);
    return module;
  }

  /**
   * Adds a trainable tensor under `name` and returns it as a {@link Parameter} (a leaf that
   * requires grad and is kept out of `k.tidy` scopes).
   *
   * @example
   * ```ts
   * readonly classEmbedding = this.registerParameter('class_embedding', k.randn([768], { seed: 0 }));
   * ```
   */
  registerParameter(name: string, tensor: k.Tensor, options: { requiresGrad?: boolean } = {}): Parameter {
    this.#checkName(name, 'parameter');
    const p = parameter(initSkipped() ? deferred(tensor) : tensor, options);
    this.#parameters.set(name, p);
    return p;
  }

  /**
   * Adds a non-trainable tensor (e.g. `position_ids`). Persistent buffers (the default) are part
   * of the state dict; non-persistent ones are not, matching `register_buffer(persistent=False)`.
   *
   * @example
   * ```ts
   * readonly positionIds = this.registerBuffer('position_ids', k.arange(77).reshape([1, 77]), { persistent: false });
   * ```
   */
  registerBuffer(name: string, tensor: k.Tensor, options: { persistent?: boolean } = {}): k.Tensor {
    this.#checkName(name, 'buffer');
    // Persistent buffers are loaded with the weights; computed (non-persistent) ones keep their value.
    const t = initSkipped() && options.persistent !== false ? deferred(tensor) : tensor;
    this.#buffers.set(name, k.keep(t));
    if (options.persistent === false) this.#nonPersistent.add(name);
    return t;
  }

  /**
   * Attaches `adapter` under `name` after construction: layers that support adapters
   * (`Linear`, `Conv2d`) pass their output through every attached adapter, in order. The adapter
   * is a child for traversal (its parameters are trained, moved and cast with the model) but is
   * left out of `stateDict()` and `loadStateDict()`, so the base keys and files are unchanged.
   *
   * @example
   * ```ts
   * linear.addAdapter('lora_default', new LoraLayer(linear, { rank: 4 }));
   * ```
   */
  addAdapter<A extends ModuleAdapter>(name: string, adapter: A): A {
    this.#checkName(name, 'adapter');
    this.#modules.set(name, adapter);
    this.#adapters.add(name);
    return adapter;
  }

  /**
   * Detaches the adapter registered under `name` and returns it (not disposed).
   *
   * @example
   * ```ts
   * linear.removeAdapter('lora_default').dispose();
   * ```
   */
  removeAdapter(name: string): ModuleAdapter {
    const adapter = this.#modules.get(name);
    if (!adapter || !this.#adapters.has(name)) throw new k.ArgumentError(`${this.constructor.name}: no adapter named '${name}'`);
    this.#modules.delete(name);
    this.#adapters.delete(name);
    return adapter as ModuleAdapter;
  }

  /**
   * The adapters attached to this module (not its descendants), in application order.
   *
   * @example
   * ```ts
   * linear.namedAdapters().map(([n]) => n); // ['lora_default']
   * ```
   */
  namedAdapters(): [string, ModuleAdapter][] {
    return [...this.#adapters].map((name) => [name, this.#modules.get(name) as ModuleAdapter]);
  }

  /** Runs `output` through the attached adapters; layers call this at the end of `forward`. */
  protected applyAdapters(input: k.Tensor, output: k.Tensor): k.Tensor {
    let y = output;
    for (const name of this.#adapters) y = (this.#modules.get(name) as ModuleAdapter).adapt(input, y);
    return y;
  }

  // Traversal ---------------------------------------------------------------------------------

  /**
   * Direct children with their names.
   *
   * @example
   * ```ts
   * new Sequential([new Linear(2, 2), new SiLU()]).namedChildren().map(([n]) => n); // ['0', '1']
   * ```
   */
  namedChildren(): [string, Module][] {
    return [...this.#modules];
  }

  /**
   * This module and every descendant, pre-order, with dotted paths ('' for this one). Each module
   * object appears once even if it is registered under several names.
   *
   * @example
   * ```ts
   * for (const [path, m] of model.namedModules()) if (m instanceof Dropout) console.log(path);
   * ```
   */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [];
    const seen = new Set<Module>();
    const visit = (m: Module, path: string): void => {
      if (seen.has(m)) return;
      seen.add(m);
      out.push([path, m]);
      for (const [name, child] of m.#modules) visit(child, path ? `${path}.${name}` : name);
    };
    visit(this, prefix);
    return out;
  }

  /**
   * Parameters with their state-dict keys. A parameter shared by several modules (tied weights)
   * is listed once, under its first key, so optimizers do not update it twice.
   *
   * @example
   * ```ts
   * new Linear(3, 2).namedParameters().map(([n, p]) => `${n} ${p.shape}`); // ['weight 2,3', 'bias 2']
   * ```
   */
  namedParameters(options: { prefix?: string; recurse?: boolean } = {}): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    const seen = new Set<k.Tensor>();
    const modules = options.recurse === false ? ([[options.prefix ?? '', this]] as [string, Module][]) : this.namedModules(options.prefix);
    for (const [path, m] of modules) {
      for (const [name, p] of m.#parameters) {
        if (seen.has(p)) continue;
        seen.add(p);
        out.push([path ? `${path}.${name}` : name, p]);
      }
    }
    return out;
  }

  /**
   * The parameters of this module and its descendants (each once), e.g. for an optimizer.
   *
   * @example
   * ```ts
   * const opt = new AdamW(model.parameters(), { lr: 1e-4 });
   * ```
   */
  parameters(options: { recurse?: boolean } = {}): Parameter[] {
    return this.namedParameters(options).map(([, p]) => p);
  }

  /**
   * Buffers (persistent or not) with their dotted paths.
   *
   * @example
   * ```ts
   * model.namedBuffers().map(([n]) => n); // ['text_model.embeddings.position_ids']
   * ```
   */
  namedBuffers(): [string, k.Tensor][] {
    const out: [string, k.Tensor][] = [];
    for (const [path, m] of this.namedModules()) {
      for (const [name, b] of m.#buffers) out.push([path ? `${path}.${name}` : name, b]);
    }
    return out;
  }

  /**
   * The submodule at a dotted path (`''` is this module).
   *
   * @example
   * ```ts
   * unet.getSubmodule('down_blocks.0.resnets.1');
   * ```
   */
  getSubmodule(path: string): Module {
    let m: Module = this;
    if (path === '') return m;
    for (const part of path.split('.')) {
      const next = m.#modules.get(part);
      if (!next) throw new k.ArgumentError(`${this.constructor.name} has no submodule '${path}' ('${part}' not found)`);
      m = next;
    }
    return m;
  }

  // State dict --------------------------------------------------------------------------------

  /**
   * Parameters and persistent buffers under their upstream keys, in registration order
   * (own tensors, then children's). Values are the live tensors, not copies: they follow training,
   * and must not be disposed; clone them for a snapshot. Tied weights appear under every key, as
   * in PyTorch. The record has no prototype, so any key (even `__proto__`) is plain data.
   *
   * @example
   * ```ts
   * await saveSafetensors('unet.safetensors', unet.stateDict());
   * ```
   */
  stateDict(): StateDict {
    const out: StateDict = nullRecord();
    const visit = (m: Module, prefix: string): void => {
      for (const [name, p] of m.#parameters) out[prefix + name] = p;
      for (const [name, b] of m.#buffers) if (!m.#nonPersistent.has(name)) out[prefix + name] = b;
      for (const [name, child] of m.#modules) if (!m.#adapters.has(name)) visit(child, `${prefix}${name}.`);
    };
    visit(this, '');
    return out;
  }

  /**
   * Copies `dict`'s tensors into this module's parameters and buffers, in place (optimizers that
   * hold the parameters see the new values), converting each to the target's dtype. Nothing is
   * loaded unless everything checks out: mis-shaped keys always fail, and with `strict` (the
   * default) so do missing and unexpected keys, all listed in one `StateDictError`, as do
   * values that are not live tensors (`null`, a number, a disposed tensor). Keys matching
   * `ignoreUnexpected` are dropped silently; `file` is named in the error. Tensors must be on the
   * module's backend. To load from a file without holding the whole dict, use `loadWeights`.
   *
   * @example
   * ```ts
   * model.loadStateDict(await loadSafetensors('model.safetensors'));
   * const { missingKeys } = model.loadStateDict(partial, { strict: false });
   * ```
   */
  loadStateDict(
    dict: StateDict | ReadonlyMap<string, k.Tensor>,
    options: { strict?: boolean; ignoreUnexpected?: readonly KeyPattern[]; file?: string } = {},
  ): LoadStateDictResult {
    const source = new Map<string, unknown>(entriesOf<unknown>(dict));
    const expected = new Map(entriesOf(this.stateDict()));
    const describe = (key: string): Described => {
      const value = source.get(key);
      if (!(value instanceof k.Tensor)) return { invalid: `is ${value === null ? 'null' : typeof value}, not a tensor` };
      if (value.isDisposed) return { invalid: 'was disposed' };
      return value;
    };
    const result = checkLoad(expected, [...source.keys()], describe, {
      strict: options.strict ?? true,
      module: this.constructor.name,
      file: options.file,
      ignoreUnexpected: options.ignoreUnexpected,
    });
    const loads = [...expected]
      .filter(([key]) => source.has(key))
      .map(([key, target]) => [key, target, source.get(key) as k.Tensor] as const);
    for (const [key, target, value] of loads) {
      if (value.device !== target.device) {
        throw new k.BackendError(
          `loadStateDict: '${key}' is on backend ${value.device}, the module is on ${target.device}; move one with toBackend()`,
        );
      }
    }
    k.noGrad(() =>
      k.tidy(() => {
        for (const [, target, value] of loads) {
          // A fresh copy, so the module never shares storage with the caller's tensor: in-place
          // optimizer kernels would otherwise write through into the dict.
          const converted = value.dtype === target.dtype ? k.clone(value) : k.cast(value, target.dtype);
          target.assign_(converted);
          markLoaded(target);
        }
      }),
    );
    return result;
  }

  // Modes -------------------------------------------------------------------------------------

  /**
   * Sets training mode on this module and every descendant. Returns this.
   *
   * @example
   * ```ts
   * model.train(); // dropout on
   * ```
   */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  /**
   * Evaluation mode (`train(false)`): dropout off.
   *
   * @example
   * ```ts
   * vae.eval();
   * ```
   */
  eval(): this {
    return this.train(false);
  }

  /**
   * Freezes (`false`) or unfreezes every parameter of this subtree. Returns this.
   *
   * @example
   * ```ts
   * textEncoder.requiresGrad_(false); // train only the UNet
   * ```
   */
  requiresGrad_(requiresGrad = true): this {
    for (const p of this.parameters()) p.requiresGrad_(requiresGrad);
    return this;
  }

  /**
   * Number of parameter elements (each shared parameter once); `trainableOnly` counts those that
   * require grad.
   *
   * @example
   * ```ts
   * new Linear(3, 2).numParameters(); // 8
   * ```
   */
  numParameters(options: { trainableOnly?: boolean } = {}): number {
    return this.parameters()
      .filter((p) => !options.trainableOnly || p.requiresGrad)
      .reduce((n, p) => n + p.numel(), 0);
  }

  /**
   * Frees every parameter's gradient and sets it to null (PyTorch's `set_to_none=True`).
   *
   * @example
   * ```ts
   * model.zeroGrad();
   * ```
   */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  // Conversion --------------------------------------------------------------------------------

  /**
   * Casts every floating-point parameter and buffer to `dtype` (integer buffers are left alone,
   * as in PyTorch). Parameters are replaced: build optimizers after calling this. Returns this.
   *
   * @example
   * ```ts
   * unet.to('float16');
   * ```
   */
  to(dtype: k.DType): this {
    this.#replaceAll((t) => {
      if (!k.isFloat(t.dtype) || t.dtype === dtype) return t;
      // A skipInit placeholder stays one (casting it would allocate the full tensor).
      return isPlaceholder(t) ? placeholder(t.shape, { dtype, device: t.device }) : k.noGrad(() => k.cast(t, dtype));
    });
    return this;
  }

  /**
   * Moves every parameter and buffer to another (initialised) backend. Parameters are replaced:
   * build optimizers after calling this. Async because it reads the data.
   *
   * @example
   * ```ts
   * await k.initBackend('wasm');
   * await model.toBackend('wasm');
   * ```
   */
  async toBackend(name: string): Promise<this> {
    const moved = new Map<k.Tensor, k.Tensor>();
    for (const t of [...this.parameters(), ...this.namedBuffers().map(([, b]) => b)]) {
      if (moved.has(t) || t.device === name) continue;
      moved.set(t, k.keep(isPlaceholder(t) ? placeholder(t.shape, { dtype: t.dtype, device: name }) : await t.toBackend(name)));
    }
    this.#replaceAll((t) => moved.get(t) ?? t);
    return this;
  }

  /** Applies `convert` to every parameter and buffer of the tree, keeping tied tensors tied. */
  #replaceAll(convert: (t: k.Tensor) => k.Tensor): void {
    const replaced = new Map<k.Tensor, k.Tensor>();
    const swap = (old: k.Tensor, isParam: boolean): k.Tensor => {
      let next = replaced.get(old);
      if (!next) {
        next = convert(old);
        if (next !== old) next = isParam ? parameter(next, { requiresGrad: old.requiresGrad }) : k.keep(next);
        replaced.set(old, next);
      }
      return next;
    };
    for (const [, m] of this.namedModules()) {
      for (const [name, p] of m.#parameters) m.#parameters.set(name, swap(p, true));
      for (const [name, b] of m.#buffers) m.#buffers.set(name, swap(b, false));
    }
    for (const [, m] of this.namedModules()) {
      // Re-point fields such as `this.weight` that still hold a replaced tensor.
      const fields = m as unknown as Record<string, unknown>;
      for (const key of Object.keys(fields)) {
        const value = fields[key];
        if (value instanceof k.Tensor) {
          const next = replaced.get(value);
          if (next && next !== value) fields[key] = next;
        }
      }
    }
    for (const [old, next] of replaced) {
      if (old === next) continue;
      old.grad?.dispose();
      old.grad = null;
      old.dispose();
    }
  }

  /**
   * Frees every parameter, buffer and gradient of the tree; the module is unusable afterwards.
   *
   * @example
   * ```ts
   * using model = new Mlp(); // disposed at the end of the block
   * ```
   */
  dispose(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
      p.dispose();
    }
    for (const [, b] of this.namedBuffers()) b.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
