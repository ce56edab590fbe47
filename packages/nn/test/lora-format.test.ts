import * as k from '@kiln/tensor-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  Conv2d,
  LORA_ADAPTER_METADATA_KEY,
  Linear,
  LoraFormatError,
  Module,
  injectLora,
  kohyaName,
  loraLayers,
  loraStateDict,
  parseKohyaName,
  parseLoraStateDict,
  serializeLoraWeights,
  serializeSafetensors,
} from '../src/index.js';
import { convertLoraFile, loadLoraWeights, loadSafetensors, readLoraFile, saveLoraWeights, saveSafetensors } from '../src/node.js';
import { maxAbsDiff, values } from './helpers.js';

/** A module whose children are given by name, to build diffusers-shaped paths. */
class Node extends Module {
  constructor(children: Record<string, Module>) {
    super();
    for (const [name, child] of Object.entries(children)) this.registerModule(name, child);
  }
}

/** The paths of a UNet attention block and a CLIP layer, with tiny sizes. */
function tinyUnet(): Node {
  const attn = (): Node =>
    new Node({
      to_q: new Linear(8, 8, { bias: false }),
      to_k: new Linear(8, 8, { bias: false }),
      to_v: new Linear(8, 8, { bias: false }),
      to_out: new Node({ 0: new Linear(8, 8) }),
    });
  const block = new Node({
    attn1: attn(),
    attn2: attn(),
    ff: new Node({ net: new Node({ 0: new Node({ proj: new Linear(8, 16) }), 2: new Linear(8, 8) }) }),
  });
  return new Node({
    down_blocks: new Node({
      0: new Node({
        attentions: new Node({
          0: new Node({ proj_in: new Conv2d(8, 8, 1), transformer_blocks: new Node({ 0: block }), proj_out: new Conv2d(8, 8, 1) }),
        }),
        resnets: new Node({ 0: new Node({ conv1: new Conv2d(8, 8, 3, { padding: 1 }), time_emb_proj: new Linear(16, 8) }) }),
      }),
    }),
  });
}

function tinyTextEncoder(): Node {
  const attn = new Node({ q_proj: new Linear(8, 8), k_proj: new Linear(8, 8), v_proj: new Linear(8, 8), out_proj: new Linear(8, 8) });
  return new Node({
    text_model: new Node({
      encoder: new Node({
        layers: new Node({ 0: new Node({ self_attn: attn, mlp: new Node({ fc1: new Linear(8, 16), fc2: new Linear(16, 8) }) }) }),
      }),
    }),
  });
}

function trained(seed: number): { unet: Node; text_encoder: Node } {
  k.manualSeed(seed);
  const unet = tinyUnet();
  const te = tinyTextEncoder();
  injectLora(unet, {
    targets: [(p) => p.includes('attentions') || p.includes('resnets')],
    rank: 4,
    alpha: 2,
    convRank: 2,
    convAlpha: 1,
    generator: new k.Generator(seed),
  });
  injectLora(te, { targets: ['q_proj', 'k_proj', 'v_proj', 'out_proj'], rank: 4, generator: new k.Generator(seed + 1) });
  k.noGrad(() => {
    let s = seed * 100;
    for (const m of [unet, te]) for (const [, l] of loraLayers(m)) l.loraB.weight.assign_(k.randn(l.loraB.weight.shape, { seed: s++ }));
  });
  return { unet, text_encoder: te };
}

const dir = await mkdtemp(join(tmpdir(), 'kiln-lora-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('LoRA key names', () => {
  it('kohya names join the path with _ and split back by diffusers naming', () => {
    const path = 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0';
    expect(kohyaName('unet', path)).toBe('lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0');
    for (const p of [
      path,
      'down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj',
      'up_blocks.1.resnets.2.conv_shortcut',
      'mid_block.resnets.0.time_emb_proj',
      'down_blocks.1.downsamplers.0.conv',
    ]) {
      expect(parseKohyaName(kohyaName('unet', p))).toEqual({ component: 'unet', path: p });
    }
    expect(parseKohyaName('lora_te_text_model_encoder_layers_11_self_attn_out_proj')).toEqual({
      component: 'text_encoder',
      path: 'text_model.encoder.layers.11.self_attn.out_proj',
    });
    expect(parseKohyaName('lora_te1_text_model_encoder_layers_0_mlp_fc1')?.component).toBe('text_encoder');
    expect(parseKohyaName('lora_te2_text_model_encoder_layers_0_mlp_fc1')?.component).toBe('text_encoder_2');
    expect(parseKohyaName('something_else')).toBeNull();
  });
});

describe('LoRA layouts', () => {
  it('diffusers → kohya → diffusers and kohya → diffusers → kohya are byte-identical', async () => {
    const models = trained(1);
    for (const [from, to] of [
      ['diffusers', 'kohya'],
      ['kohya', 'diffusers'],
    ] as const) {
      const first = loraStateDict(models, { format: from, metadata: { ss_output_name: 'sks' } });
      const parsed = await parseLoraStateDict(first.tensors, first.metadata);
      expect(parsed.format).toBe(from);
      const other = serializeLoraWeights(parsed, to);
      const back = serializeLoraWeights(await parseLoraStateDict(other.tensors, other.metadata), from);
      expect([...back.tensors.keys()]).toEqual([...first.tensors.keys()]);
      // Header fields survive; a diffusers file passed through kohya gains kohya's ss_network_* only.
      expect(back.metadata).toMatchObject(first.metadata);
      const extra = Object.keys(back.metadata).filter((key) => !(key in first.metadata));
      expect(extra).toEqual(from === 'diffusers' ? ['ss_network_module', 'ss_network_dim', 'ss_network_alpha'] : []);
      expect(Buffer.from(await serializeSafetensors(back.tensors)).equals(Buffer.from(await serializeSafetensors(first.tensors)))).toBe(
        true,
      );
    }
  });

  it('writes diffusers and kohya keys, alphas and metadata as upstream does', async () => {
    const models = trained(2);
    const d = loraStateDict(models);
    expect([...d.tensors.keys()]).toContain('unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight');
    expect([...d.tensors.keys()]).toContain('text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_B.weight');
    expect(d.tensors.get('unet.down_blocks.0.resnets.0.conv1.lora_A.weight')!.shape).toEqual([2, 8, 3, 3]);
    expect(d.tensors.get('unet.down_blocks.0.resnets.0.conv1.lora_B.weight')!.shape).toEqual([8, 2, 1, 1]);
    const config = JSON.parse(d.metadata[LORA_ADAPTER_METADATA_KEY]!);
    expect(config['unet.lora_alpha']).toBe(2);
    expect(config['unet.alpha_pattern']).toEqual({ 'down_blocks.0.resnets.0.conv1': 1 });
    expect(config['text_encoder.lora_alpha']).toBe(4);
    expect(d.metadata.format).toBe('pt');
    const kh = loraStateDict(models, { format: 'kohya' });
    const alpha = kh.tensors.get('lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.alpha')!;
    expect(alpha.shape).toEqual([]);
    expect(alpha.dtype).toBe('float32');
    expect(await alpha.item()).toBe(2);
    expect(await kh.tensors.get('lora_unet_down_blocks_0_resnets_0_conv1.alpha')!.item()).toBe(1);
    expect(kh.tensors.has('lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight')).toBe(true);
    expect(kh.metadata).toMatchObject({ ss_network_module: 'networks.lora', ss_network_dim: '4', ss_network_alpha: '2' });
  });

  it('foldAlpha writes alpha = rank with lora_B scaled, giving the same update', async () => {
    const models = trained(5);
    const folded = await parseLoraStateDict(
      ...(Object.values(loraStateDict(models, { foldAlpha: true })) as [Map<string, k.Tensor>, Record<string, string>]),
    );
    expect(folded.modules.size).toBe(loraLayers(models.unet).length + loraLayers(models.text_encoder).length);
    for (const [key, m] of folded.modules) {
      expect(m.alpha, key).toBeNull(); // no lora_adapter_metadata: every alpha equals its rank
      const path = key.slice(key.indexOf('.') + 1);
      const model = key.startsWith('unet.') ? models.unet : models.text_encoder;
      const layer = loraLayers(model).find(([p]) => p === path)![1];
      const want = k
        .matmul(layer.loraB.weight.reshape([-1, layer.rank]), layer.loraA.weight.reshape([layer.rank, -1]))
        .mul(layer.alpha / layer.rank);
      const got = k.matmul(m.up.reshape([-1, layer.rank]), m.down.reshape([layer.rank, -1]));
      expect(maxAbsDiff(await values(got), await values(want))).toBeLessThan(1e-6);
    }
  });

  it("reads diffusers' older key forms and network alphas as diffusers does", async () => {
    const down = k.randn([2, 8], { seed: 1 });
    const up = k.randn([8, 2], { seed: 2 });
    const old = await parseLoraStateDict({
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight': down,
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.up.weight': up,
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.down.weight': down,
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight': up,
      'unet.down_blocks.0.attentions.0.proj_in.lora.down.weight': down,
      'unet.down_blocks.0.attentions.0.proj_in.lora.up.weight': up,
      'unet.down_blocks.0.attentions.0.proj_in.alpha': k.tensor([1]).reshape([]),
      'text_encoder.text_model.encoder.layers.0.self_attn.to_k_lora.down.weight': down,
      'text_encoder.text_model.encoder.layers.0.self_attn.to_k_lora.up.weight': up,
      'text_encoder.text_model.encoder.layers.0.mlp.fc1.lora_linear_layer.down.weight': down,
      'text_encoder.text_model.encoder.layers.0.mlp.fc1.lora_linear_layer.up.weight': up,
    });
    expect(old.format).toBe('diffusers');
    expect([...old.modules.keys()]).toEqual([
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q',
      'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0',
      'unet.down_blocks.0.attentions.0.proj_in',
      'text_encoder.text_model.encoder.layers.0.self_attn.k_proj',
      'text_encoder.text_model.encoder.layers.0.mlp.fc1',
    ]);
    expect(old.modules.get('unet.down_blocks.0.attentions.0.proj_in')!.alpha).toBe(1);
    expect(old.modules.get('unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q')!.alpha).toBeNull();
  });

  it('refuses unknown keys, unpaired matrices and mis-shaped pairs with every problem listed', async () => {
    const bad = parseLoraStateDict(
      {
        'unet.a.lora_A.weight': k.zeros([2, 8]),
        'unet.b.lora_A.weight': k.zeros([2, 8]),
        'unet.b.lora_B.weight': k.zeros([8, 3]),
        'vae.c.lora_A.weight': k.zeros([2, 8]),
      },
      {},
      { file: 'bad.safetensors' },
    );
    await expect(bad).rejects.toThrow(LoraFormatError);
    const err = (await bad.catch((e: unknown) => e)) as LoraFormatError;
    expect(err.file).toBe('bad.safetensors');
    expect(err.issues).toHaveLength(3);
    await expect(
      parseLoraStateDict({
        'lora_unet_x.lora_down.weight': k.zeros([2, 8]),
        'lora_unet_x.lora_up.weight': k.zeros([8, 2]),
        'lora_unet_x.alpha': k.zeros([3]),
      }),
    ).rejects.toThrow(/alpha/);
  });
});

describe('LoRA files', () => {
  it('a kohya file saved from one model loads into a fresh copy and reproduces its outputs; so does a diffusers one', async () => {
    const src = trained(3);
    const x = k.randn([1, 8, 4, 4], { seed: 9 });
    const block = (m: Node): Module => m.getSubmodule('down_blocks.0.attentions.0.proj_in');
    const tokens = k.randn([2, 8], { seed: 10 });
    const q = (m: Node): Linear => m.getSubmodule('down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q') as Linear;
    const want = [await values((block(src.unet) as Conv2d).forward(x)), await values(q(src.unet).forward(tokens))];
    for (const format of ['kohya', 'diffusers'] as const) {
      const file = join(dir, `sks_${format}.safetensors`);
      await saveLoraWeights(file, src, { format, metadata: { ss_output_name: 'sks' } });
      const fresh = trained(3);
      for (const m of [fresh.unet, fresh.text_encoder])
        for (const [path] of loraLayers(m)) m.getSubmodule(path).removeAdapter('lora_default').dispose();
      const adapters = await loadLoraWeights(fresh, file, { name: 'sks' });
      expect(adapters.get('unet')!.layers.size).toBe(loraLayers(src.unet).length);
      expect(maxAbsDiff(await values((block(fresh.unet) as Conv2d).forward(x)), want[0]!)).toBe(0);
      expect(maxAbsDiff(await values(q(fresh.unet).forward(tokens)), want[1]!)).toBe(0);
      expect((await readLoraFile(file)).metadata.ss_output_name).toBe('sks');
    }
    // Conversion on disk: kohya → diffusers equals the diffusers file written directly.
    await convertLoraFile(join(dir, 'sks_kohya.safetensors'), join(dir, 'converted.safetensors'), 'diffusers');
    const [converted, direct] = await Promise.all([
      loadSafetensors(join(dir, 'converted.safetensors')),
      loadSafetensors(join(dir, 'sks_diffusers.safetensors')),
    ]);
    expect(Object.keys(converted)).toEqual(Object.keys(direct));
    expect(Buffer.from(await serializeSafetensors(converted)).equals(Buffer.from(await serializeSafetensors(direct)))).toBe(true);
    expect((await readLoraFile(join(dir, 'converted.safetensors'))).metadata.ss_output_name).toBe('sks');
  });

  it('loads with a scale, stacks a second file, and attaches nothing when the file does not fit', async () => {
    const src = trained(4);
    const file = join(dir, 'scaled.safetensors');
    await saveLoraWeights(file, { unet: src.unet });
    const fresh = tinyUnet();
    const tokens = k.randn([2, 8], { seed: 11 });
    const q = fresh.getSubmodule('down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q') as Linear;
    const base = q.forward(tokens);
    await loadLoraWeights({ unet: fresh }, file, { scale: 0.5 });
    const half = q.forward(tokens).sub(base);
    await loadLoraWeights({ unet: fresh }, file, { name: 'again', scale: 0.5 });
    const full = q.forward(tokens).sub(base);
    expect(maxAbsDiff(await values(full), await values(half.mul(2)))).toBeLessThan(1e-5);
    // A text-encoder file into a UNet, or a wrong-sized model: typed error, no adapter attached.
    const teFile = join(dir, 'te.safetensors');
    await saveLoraWeights(teFile, { text_encoder: src.text_encoder });
    const other = tinyUnet();
    await expect(loadLoraWeights({ unet: other }, teFile)).rejects.toThrow(/text_encoder, which was not given/);
    const wide = new Node({
      down_blocks: new Node({ 0: new Node({ attentions: new Node({ 0: new Node({ proj_in: new Conv2d(16, 16, 1) }) }) }) }),
    });
    await expect(loadLoraWeights(wide, file)).rejects.toThrow(LoraFormatError);
    expect(loraLayers(wide)).toHaveLength(0);
    expect(Object.keys(await loadSafetensors(file)).every((key) => key.startsWith('unet.'))).toBe(true);
  });

  it('readLoraFile keeps only the adapter matrices alive: alpha scalars are freed, and everything on a bad file', async () => {
    const src = trained(5);
    const file = join(dir, 'alphas_kohya.safetensors');
    await saveLoraWeights(file, { unet: src.unet }, { format: 'kohya' });
    const before = k.memory().liveTensors;
    const lora = await readLoraFile(file);
    expect(k.memory().liveTensors - before).toBe(2 * lora.modules.size);
    for (const m of lora.modules.values()) for (const t of [m.down, m.up]) t.dispose();
    expect(k.memory().liveTensors).toBe(before);
    const bad = join(dir, 'unpaired.safetensors');
    const tensors = await loadSafetensors(file);
    const first = Object.keys(tensors).find((key) => key.endsWith('.lora_up.weight'))!;
    await saveSafetensors(bad, Object.fromEntries(Object.entries(tensors).filter(([key]) => key !== first)));
    for (const t of Object.values(tensors)) t.dispose();
    const live = k.memory().liveTensors;
    await expect(readLoraFile(bad)).rejects.toThrow(LoraFormatError);
    expect(k.memory().liveTensors).toBe(live);
  });
});
