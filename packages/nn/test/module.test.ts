import * as k from '@kiln/tensor-core';
import { describe, expect, it } from 'vitest';
import {
  AdamW,
  Conv2d,
  Dropout,
  GroupNorm,
  LayerNorm,
  Linear,
  Module,
  ModuleList,
  Sequential,
  SiLU,
  StateDictError,
  isParameter,
} from '../src/index.js';
import { maxAbsDiff, secondBackend, values } from './helpers.js';

class Attention extends Module {
  readonly qProj = this.registerModule('q_proj', new Linear(8, 8));
  readonly kProj = this.registerModule('k_proj', new Linear(8, 8));
  forward(x: k.Tensor): k.Tensor {
    return this.qProj.forward(x).add(this.kProj.forward(x));
  }
}

class EncoderLayer extends Module {
  readonly selfAttn = this.registerModule('self_attn', new Attention());
  readonly layerNorm1 = this.registerModule('layer_norm1', new LayerNorm(8));
  readonly drop = this.registerModule('dropout', new Dropout(0.1));
  forward(x: k.Tensor): k.Tensor {
    return this.drop.forward(this.selfAttn.forward(this.layerNorm1.forward(x)));
  }
}

class TextModel extends Module {
  readonly layers: ModuleList<EncoderLayer>;
  readonly positionIds: k.Tensor;
  readonly scratch: k.Tensor;
  constructor(n = 4) {
    super();
    const encoder = this.registerModule('encoder', new (class Encoder extends Module {})());
    this.layers = encoder.registerModule('layers', new ModuleList(Array.from({ length: n }, () => new EncoderLayer())));
    this.positionIds = this.registerBuffer('position_ids', k.arange(0, 5).reshape([1, 5]));
    this.scratch = this.registerBuffer('scratch', k.zeros([2]), { persistent: false });
  }
}

class ClipText extends Module {
  readonly textModel = this.registerModule('text_model', new TextModel());
}

describe('Module naming', () => {
  it('gives state-dict keys exactly in the upstream (transformers) form', () => {
    k.manualSeed(0);
    const m = new ClipText();
    const keys = Object.keys(m.stateDict());
    expect(keys).toContain('text_model.encoder.layers.3.self_attn.q_proj.weight');
    expect(keys).toContain('text_model.encoder.layers.0.layer_norm1.bias');
    expect(keys[0]).toBe('text_model.position_ids');
    expect(keys).not.toContain('text_model.scratch'); // non-persistent buffer
    expect(keys.filter((key) => key.includes('dropout'))).toEqual([]);
    expect(keys.length).toBe(1 + 4 * 6);
    // Parameters exclude buffers; namedModules walks pre-order with paths.
    expect(m.namedParameters().map(([n]) => n)).not.toContain('text_model.position_ids');
    expect(
      m
        .namedModules()
        .map(([n]) => n)
        .slice(0, 4),
    ).toEqual(['', 'text_model', 'text_model.encoder', 'text_model.encoder.layers']);
    expect(m.namedBuffers().map(([n]) => n)).toEqual(['text_model.position_ids', 'text_model.scratch']);
    expect(m.getSubmodule('text_model.encoder.layers.2.self_attn')).toBeInstanceOf(Attention);
    expect(() => m.getSubmodule('text_model.nope')).toThrow(/nope/);
  });

  it('gives diffusers-style keys through nested ModuleLists and Sequential', () => {
    class Resnet extends Module {
      readonly norm1 = this.registerModule('norm1', new GroupNorm(2, 4));
      readonly conv1 = this.registerModule('conv1', new Conv2d(4, 4, 3, { padding: 1 }));
    }
    class Down extends Module {
      readonly resnets = this.registerModule('resnets', new ModuleList([new Resnet(), new Resnet()]));
    }
    class Unet extends Module {
      readonly downBlocks = this.registerModule('down_blocks', new ModuleList([new Down()]));
      readonly timeEmbedding = this.registerModule('time_embedding', new Sequential([new Linear(2, 4), new SiLU(), new Linear(4, 4)]));
    }
    const keys = Object.keys(new Unet().stateDict());
    expect(keys).toContain('down_blocks.0.resnets.1.conv1.weight');
    expect(keys).toContain('down_blocks.0.resnets.0.norm1.bias');
    expect(keys).toContain('time_embedding.2.weight');
    expect(keys).not.toContain('time_embedding.1.weight');
  });

  it('rejects dotted, empty and duplicate names', () => {
    class Bad extends Module {}
    const m = new Bad();
    expect(() => m.registerModule('a.b', new SiLU())).toThrow(k.ArgumentError);
    expect(() => m.registerModule('', new SiLU())).toThrow(k.ArgumentError);
    m.registerParameter('w', k.zeros([1]));
    expect(() => m.registerBuffer('w', k.zeros([1]))).toThrow(/already registered/);
  });

  it('lists a tied parameter once in parameters() but under every key in stateDict()', () => {
    class Tied extends Module {
      readonly a = this.registerModule('a', new Linear(3, 3));
      readonly b = this.registerModule('b', new Linear(3, 3, { bias: false }));
      constructor() {
        super();
        this.b.registerParameter('tied', this.a.weight);
      }
    }
    const m = new Tied();
    expect(m.parameters().length).toBe(3);
    expect(Object.keys(m.stateDict())).toEqual(['a.weight', 'a.bias', 'b.weight', 'b.tied']);
    expect(m.numParameters()).toBe(9 + 3 + 9);
  });

  it('makes parameters trainable leaves that survive tidy', () => {
    const lin = k.tidy(() => new Linear(3, 2));
    expect(lin.weight.isDisposed).toBe(false);
    expect(lin.weight.requiresGrad).toBe(true);
    expect(isParameter(lin.weight)).toBe(true);
    expect(lin.numParameters()).toBe(8);
  });
});

describe('loadStateDict', () => {
  it('lists missing, unexpected and mis-shaped keys in one typed error and loads nothing', async () => {
    k.manualSeed(1);
    const m = new Sequential([new Linear(3, 4), new Linear(4, 2)]);
    const before = await values(m.at(0).weight);
    const dict = { '0.weight': k.ones([4, 3]), '0.bias': k.ones([5]), '1.weight': k.ones([2, 4]), 'extra.weight': k.ones([1]) };
    let err: unknown;
    try {
      m.loadStateDict(dict);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StateDictError);
    const e = err as StateDictError;
    expect(e.missingKeys).toEqual(['1.bias']);
    expect(e.unexpectedKeys).toEqual(['extra.weight']);
    expect(e.shapeMismatches).toEqual([{ key: '0.bias', expected: [4], got: [5] }]);
    expect(e.message).toMatch(/Missing key\(s\).*"1\.bias"/);
    expect(e.message).toMatch(/Unexpected key\(s\).*"extra\.weight"/);
    expect(e.message).toMatch(/size mismatch for 0\.bias: checkpoint has shape \[5\], the module expects \[4\]/);
    expect(await values(m.at(0).weight)).toEqual(before);
    // Non-strict still refuses wrong shapes (as PyTorch does) but reports the rest.
    expect(() => m.loadStateDict(dict, { strict: false })).toThrow(StateDictError);
  });

  it('loads in place with dtype conversion, so an optimizer holding the parameters sees the values', async () => {
    const m = new Linear(3, 2);
    const weight = m.weight;
    const opt = new AdamW(m.parameters());
    const src = k.tensor(
      [
        [1, 2, 3],
        [4, 5, 6],
      ],
      { dtype: 'float64' },
    );
    const result = m.loadStateDict({ weight: src }, { strict: false });
    expect(result).toEqual({ missingKeys: ['bias'], unexpectedKeys: [] });
    expect(m.weight).toBe(weight);
    expect(m.weight.dtype).toBe('float32');
    expect(await values(m.weight)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(opt.paramGroups[0].params[0]).toBe(weight);
    // The module holds its own copy: changing the parameter does not write into the source.
    m.weight.grad = k.keep(k.onesLike(m.weight));
    opt.step();
    expect(await values(src)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await values(m.weight)).not.toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('round-trips another module of the same architecture exactly', async () => {
    k.manualSeed(2);
    const a = new ClipText();
    const b = new ClipText();
    b.loadStateDict(a.stateDict());
    for (const [key, t] of Object.entries(a.stateDict())) expect(await values(b.stateDict()[key]), key).toEqual(await values(t));
  });
});

describe('Module modes and conversion', () => {
  it('propagates train/eval to every submodule', () => {
    const m = new ClipText();
    m.eval();
    expect(m.namedModules().every(([, mod]) => !mod.training)).toBe(true);
    m.train();
    expect(m.namedModules().every(([, mod]) => mod.training)).toBe(true);
    const x = k.ones([2, 8]);
    m.eval();
    expect(m.textModel.layers.at(0).drop.forward(x)).toBe(x);
  });

  it('freezes a subtree with requiresGrad_(false), which then gets no gradients', () => {
    const m = new Sequential([new Linear(3, 3), new Linear(3, 1)]);
    m.at(0).requiresGrad_(false);
    expect(m.numParameters({ trainableOnly: true })).toBe(4);
    k.tidy(() =>
      m
        .forward(k.ones([2, 3]))
        .sum()
        .backward(),
    );
    expect(m.at(0).weight.grad).toBeNull();
    expect(m.at(1).weight.grad).not.toBeNull();
    m.zeroGrad();
    expect(m.at(1).weight.grad).toBeNull();
  });

  it('casts float parameters and buffers with to(dtype), re-pointing fields and leaving int buffers', async () => {
    k.manualSeed(3);
    const m = new ClipText();
    const w = await values(m.textModel.layers.at(1).selfAttn.qProj.weight);
    m.to('float64');
    const lin = m.textModel.layers.at(1).selfAttn.qProj;
    expect(lin.weight.dtype).toBe('float64');
    expect(lin.weight).toBe(m.stateDict()['text_model.encoder.layers.1.self_attn.q_proj.weight']);
    expect(lin.weight.requiresGrad).toBe(true);
    expect(maxAbsDiff(await values(lin.weight), w)).toBe(0);
    expect(m.textModel.positionIds.dtype).toBe('int32');
    expect(m.textModel.scratch.dtype).toBe('float64');
    expect(lin.forward(k.ones([1, 8], { dtype: 'float64' })).dtype).toBe('float64');
  });

  it('moves to another backend with toBackend, keeping values and names', async () => {
    const name = await secondBackend();
    k.manualSeed(4);
    const m = new Sequential([new Linear(3, 4), new SiLU(), new Linear(4, 2)]);
    const before = await values((m.at(2) as Linear).weight);
    await m.toBackend(name);
    for (const [, t] of Object.entries(m.stateDict())) expect(t.device).toBe(name);
    expect(await values((m.at(2) as Linear).weight)).toEqual(before);
    const y = m.forward(k.ones([1, 3], { device: name }));
    expect(y.device).toBe(name);
  });
});
