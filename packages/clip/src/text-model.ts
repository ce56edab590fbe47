import * as k from '@kiln/tensor-core';
import { Embedding, LayerNorm, Linear, Module, ModuleList } from '@kiln/nn';
import type { FactoryOptions } from '@kiln/nn';
import { parseCLIPTextConfig } from './text-config.js';
import type { CLIPTextConfig, CLIPTextConfigInput } from './text-config.js';

function activation(name: CLIPTextConfig['hidden_act'], x: k.Tensor): k.Tensor {
  if (name === 'quick_gelu') return k.quickGelu(x);
  return k.gelu(x, { approximate: name === 'gelu' ? 'none' : 'tanh' });
}

/** Part of {@link CLIPTextModel} (transformers' module of the same name). @example const h = textModel.textModel.embeddings.forward(ids); // token + position embeddings [B, 77, D] */
export class CLIPTextEmbeddings extends Module {
  readonly tokenEmbedding: Embedding;
  readonly positionEmbedding: Embedding;
  constructor(c: CLIPTextConfig, o: FactoryOptions) {
    super();
    this.tokenEmbedding = this.registerModule('token_embedding', new Embedding(c.vocab_size, c.hidden_size, o));
    this.positionEmbedding = this.registerModule('position_embedding', new Embedding(c.max_position_embeddings, c.hidden_size, o));
  }
  forward(ids: k.Tensor): k.Tensor {
    const L = ids.shape[1];
    const positions = this.positionEmbedding.weight.slice(0, 0, L);
    return this.tokenEmbedding.forward(ids).add(positions);
  }
}

/** Part of {@link CLIPTextModel} (transformers' module of the same name). @example const attn = textModel.textModel.encoder.layers.at(0).selfAttn; // q_proj, k_proj, v_proj, out_proj */
export class CLIPAttention extends Module {
  readonly qProj: Linear;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly outProj: Linear;
  constructor(
    private readonly c: CLIPTextConfig,
    o: FactoryOptions,
  ) {
    super();
    const h = c.hidden_size;
    this.kProj = this.registerModule('k_proj', new Linear(h, h, o));
    this.vProj = this.registerModule('v_proj', new Linear(h, h, o));
    this.qProj = this.registerModule('q_proj', new Linear(h, h, o));
    this.outProj = this.registerModule('out_proj', new Linear(h, h, o));
  }
  forward(x: k.Tensor, mask: k.Tensor | null): k.Tensor {
    const [B, L, H] = x.shape;
    const heads = this.c.num_attention_heads;
    const split = (t: k.Tensor) => t.reshape([B, L, heads, H / heads]).transpose(1, 2);
    const q = split(this.qProj.forward(x));
    const key = split(this.kProj.forward(x));
    const v = split(this.vProj.forward(x));
    const a = k.scaledDotProductAttention(q, key, v, { attnMask: mask, isCausal: true });
    return this.outProj.forward(a.transpose(1, 2).reshape([B, L, H]));
  }
}

/** Part of {@link CLIPTextModel} (transformers' module of the same name). @example const mlp = textModel.textModel.encoder.layers.at(0).mlp; // fc1 → activation → fc2 */
export class CLIPMLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(
    private readonly c: CLIPTextConfig,
    o: FactoryOptions,
  ) {
    super();
    this.fc1 = this.registerModule('fc1', new Linear(c.hidden_size, c.intermediate_size, o));
    this.fc2 = this.registerModule('fc2', new Linear(c.intermediate_size, c.hidden_size, o));
  }
  forward(x: k.Tensor): k.Tensor {
    return this.fc2.forward(activation(this.c.hidden_act, this.fc1.forward(x)));
  }
}

/** Part of {@link CLIPTextModel} (transformers' module of the same name). @example for (const layer of textModel.textModel.encoder.layers) console.log(layer.numParameters()); */
export class CLIPEncoderLayer extends Module {
  readonly selfAttn: CLIPAttention;
  readonly layerNorm1: LayerNorm;
  readonly mlp: CLIPMLP;
  readonly layerNorm2: LayerNorm;
  constructor(c: CLIPTextConfig, o: FactoryOptions) {
    super();
    this.selfAttn = this.registerModule('self_attn', new CLIPAttention(c, o));
    this.layerNorm1 = this.registerModule('layer_norm1', new LayerNorm(c.hidden_size, { ...o, eps: c.layer_norm_eps }));
    this.mlp = this.registerModule('mlp', new CLIPMLP(c, o));
    this.layerNorm2 = this.registerModule('layer_norm2', new LayerNorm(c.hidden_size, { ...o, eps: c.layer_norm_eps }));
  }
  forward(x: k.Tensor, mask: k.Tensor | null): k.Tensor {
    const h = x.add(this.selfAttn.forward(this.layerNorm1.forward(x), mask));
    return h.add(this.mlp.forward(this.layerNorm2.forward(h)));
  }
}

/** Part of {@link CLIPTextModel} (transformers' module of the same name). @example textModel.textModel.encoder.layers.length; // num_hidden_layers (12 for SD 1.x) */
export class CLIPEncoder extends Module {
  readonly layers: ModuleList<CLIPEncoderLayer>;
  constructor(c: CLIPTextConfig, o: FactoryOptions) {
    super();
    this.layers = this.registerModule(
      'layers',
      new ModuleList(Array.from({ length: c.num_hidden_layers }, () => new CLIPEncoderLayer(c, o))),
    );
  }
}

/** Part of {@link CLIPTextModel} (transformers' module of the same name). @example const { finalLayerNorm } = textModel.textModel; // what clipSkip re-applies to an earlier hidden state */
export class CLIPTextTransformer extends Module {
  readonly embeddings: CLIPTextEmbeddings;
  readonly encoder: CLIPEncoder;
  readonly finalLayerNorm: LayerNorm;
  constructor(c: CLIPTextConfig, o: FactoryOptions) {
    super();
    this.embeddings = this.registerModule('embeddings', new CLIPTextEmbeddings(c, o));
    this.encoder = this.registerModule('encoder', new CLIPEncoder(c, o));
    this.finalLayerNorm = this.registerModule('final_layer_norm', new LayerNorm(c.hidden_size, { ...o, eps: c.layer_norm_eps }));
  }
}

// transformers' additive padding mask: torch.finfo(dtype).min where the mask is 0. Being finite,
// it leaves a row whose keys are all padding attending evenly over its causal prefix (the score
// is lost in the huge constant) instead of a softmax over nothing, which is NaN.
const FINFO_MIN: Partial<Record<k.DType, number>> = { float32: -3.4028234663852886e38, float16: -65504, bfloat16: -3.3895313892515355e38 };
function paddingMask(keep: k.Tensor, dtype: k.DType): k.Tensor {
  return k.where(keep, 0, FINFO_MIN[dtype] ?? FINFO_MIN.float32!).to(dtype);
}

/** What {@link CLIPTextModel.forward} returns. @example const { lastHiddenState, hiddenStates } = textEncoder.forward(ids); */
export interface CLIPTextModelOutput {
  /** Shape [B, L, hidden]: the last layer's output after the final layer norm. */
  lastHiddenState: k.Tensor;
  /**
   * The embeddings followed by each layer's output (num_hidden_layers + 1 tensors, none
   * final-normed), as transformers' `output_hidden_states=True`. Clip skip n uses
   * `hiddenStates[hiddenStates.length - 1 - n]`.
   */
  hiddenStates: k.Tensor[];
  /**
   * Shape [B, hidden]: `lastHiddenState` at each row's first `eos_token_id` (position 0 in a row
   * without one), or at its largest id for configs with the legacy `eos_token_id: 2`, as transformers.
   */
  poolerOutput: k.Tensor;
}

/** Options of `CLIPTextModel.forward`. @example textEncoder.forward(ids, { attentionMask: [[1, 1, 1, 0]] }); */
export interface CLIPTextForwardOptions {
  /**
   * Shape [B, L]: 1 for tokens to attend to and 0 for padding (transformers' attention_mask).
   * Padding gets transformers' additive `finfo(dtype).min`, so a row with no key to attend to
   * averages its causal prefix as transformers does, instead of becoming NaN.
   */
  attentionMask?: k.Tensor | readonly (readonly number[])[];
}

/**
 * The CLIP text transformer of transformers' `CLIPTextModel`, with its exact state-dict keys
 * (`text_model.encoder.layers.3.self_attn.q_proj.weight`, …), so SD's `text_encoder` folders load
 * as they are. Configured by a `config.json` object (defaults: SD 1.x's text encoder).
 *
 * @example
 * ```ts
 * const tokenizer = await CLIPTokenizer.fromPretrained('sd15/tokenizer');
 * const textEncoder = await CLIPTextModel.fromPretrained('sd15/text_encoder');
 * const { lastHiddenState } = textEncoder.forward([tokenizer.encode('a photo of sks dog')]);
 * lastHiddenState.shape; // [1, 77, 768]
 * ```
 */
export class CLIPTextModel extends Module {
  readonly config: CLIPTextConfig;
  readonly textModel: CLIPTextTransformer;

  constructor(config: CLIPTextConfigInput = {}, options: FactoryOptions = {}) {
    super();
    this.config = parseCLIPTextConfig(config);
    this.textModel = this.registerModule('text_model', new CLIPTextTransformer(this.config, options));
  }

  /**
   * Encodes token ids ([B, L] int32 tensor or nested arrays, L ≤ max_position_embeddings).
   *
   * @example
   * ```ts
   * const out = model.forward([[49406, 320, 1125, 539, 49407]]);
   * out.hiddenStates.length; // num_hidden_layers + 1
   * ```
   */
  forward(ids: k.Tensor | readonly (readonly number[])[], options: CLIPTextForwardOptions = {}): CLIPTextModelOutput {
    const device = this.textModel.finalLayerNorm.weight!.device;
    const input = ids instanceof k.Tensor ? ids : k.tensor(ids as number[][], { dtype: 'int32', device });
    if (input.ndim !== 2 || input.dtype !== 'int32') {
      throw new k.ShapeError(`CLIPTextModel: input ids must be int32 [batch, length], got ${input.dtype} [${input.shape.join(', ')}]`);
    }
    const [B, L] = input.shape;
    if (L > this.config.max_position_embeddings) {
      throw new k.ShapeError(`CLIPTextModel: ${L} tokens exceed max_position_embeddings ${this.config.max_position_embeddings}`);
    }
    let mask: k.Tensor | null = null;
    if (options.attentionMask) {
      const m =
        options.attentionMask instanceof k.Tensor ? options.attentionMask : k.tensor(options.attentionMask as number[][], { device });
      if (m.shape.join() !== input.shape.join()) {
        throw new k.ShapeError(`CLIPTextModel: attentionMask [${m.shape.join(', ')}] must match ids [${B}, ${L}]`);
      }
      mask = paddingMask(m.gt(0).reshape([B, 1, 1, L]), this.textModel.finalLayerNorm.weight!.dtype);
    }
    const t = this.textModel;
    let x = t.embeddings.forward(input);
    const hiddenStates = [x];
    for (const layer of t.encoder.layers) {
      x = layer.forward(x, mask);
      hiddenStates.push(x);
    }
    const lastHiddenState = t.finalLayerNorm.forward(x);
    return { lastHiddenState, hiddenStates, poolerOutput: this.pool(input, lastHiddenState) };
  }

  /**
   * Each row's pooled position, as transformers' CLIPTextTransformer picks it, with tensor ops
   * (no readback): configs from before transformers PR #24773 (SD 1.x's among them) carry
   * `eos_token_id: 2`, and those pool at the row's largest id, which is the end token in
   * CLIP's vocabulary; every other config pools at the first `eos_token_id`, and a row
   * without one at position 0 (`argmax` of an all-false row).
   */
  private pool(ids: k.Tensor, last: k.Tensor): k.Tensor {
    const L = ids.shape[1];
    // Ids below 2^24 are exact in float32; int32 ids compare through it on every backend.
    const fids = ids.to('float32');
    const hit = this.config.eos_token_id === 2 ? fids.eq(fids.max(-1, true)) : fids.eq(this.config.eos_token_id);
    // Score 2·(L − i) for a hit at i, plus 1 at position 0: the first hit has the unique
    // largest score, and a row without hits has its largest (1) at position 0.
    const pos = k.arange(L, 0, -1, { device: ids.device }).to('float32').mul(2);
    const first0 = k.arange(0, L, 1, { device: ids.device }).eq(0).to('float32');
    const score = hit.to('float32').mul(pos).add(first0);
    const onehot = score.eq(score.max(-1, true)).to(last.dtype);
    return onehot.unsqueeze(-1).mul(last).sum(1);
  }

  /**
   * Loads a transformers-layout folder: `config.json` + `model.safetensors` (or a sharded
   * `model.safetensors.index.json`, or a `variant` such as `fp16`: `model.fp16.safetensors`).
   * The model is built without initialisation and each tensor is read straight into it, converted
   * to `dtype` (default float32), so loading peaks at the model's own size. A bad config is a
   * `CLIPConfigError`, a bad or mismatched checkpoint a `StateDictError` or `SafetensorsError`
   * naming the file (all `KilnError`s). Node only.
   *
   * @example
   * ```ts
   * const te = await CLIPTextModel.fromPretrained('./stable-diffusion-v1-5', { subfolder: 'text_encoder', variant: 'fp16', dtype: 'float16' });
   * ```
   */
  static async fromPretrained(
    dir: string,
    options: { subfolder?: string; variant?: string; dtype?: k.DType } = {},
  ): Promise<CLIPTextModel> {
    const { readTextModelFolder } = await import('./text-model-node.js');
    return readTextModelFolder(dir, options, (config) => new CLIPTextModel(config, { dtype: options.dtype }));
  }

  /**
   * Writes `config.json` and `model.safetensors` (transformers' layout; `model.<variant>.safetensors`
   * with a `variant`) into `dir`, each atomically (temporary file, fsync, rename).
   *
   * @example
   * ```ts
   * await model.savePretrained('./out/text_encoder');
   * ```
   */
  async savePretrained(dir: string, options: { variant?: string } = {}): Promise<void> {
    const { writeTextModelFolder } = await import('./text-model-node.js');
    await writeTextModelFolder(
      dir,
      { ...this.config, architectures: ['CLIPTextModel'], model_type: 'clip_text_model' },
      this.stateDict(),
      options.variant,
    );
  }
}
