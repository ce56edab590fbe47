import * as k from '@kiln/tensor-core';
import { entriesOf } from '../state-dict.js';
import { LORA_COMPONENTS, kohyaName, parseDiffusersKey, parseKohyaName } from './keys.js';
import type { LoraComponent } from './keys.js';

/** The two file layouts: diffusers/PEFT (`pytorch_lora_weights.safetensors`) and kohya/A1111. @example const sd = loraStateDict({ unet, text_encoder: textEncoder }, { format: 'kohya' }); // or 'diffusers' */
export type LoraFormat = 'diffusers' | 'kohya';

/** The safetensors metadata key newer diffusers stores each component's `LoraConfig` under. @example const config = JSON.parse(metadata[LORA_ADAPTER_METADATA_KEY] ?? '{}'); */
export const LORA_ADAPTER_METADATA_KEY = 'lora_adapter_metadata';

/** One adapted layer of a LoRA file. @example for (const [path, m] of lora.modules) console.log(path, m.down.shape, m.up.shape); */
export interface LoraModuleWeights {
  /** lora_A / lora_down: [rank, in] or [rank, in, kh, kw]. */
  readonly down: k.Tensor;
  /** lora_B / lora_up: [out, rank] or [out, rank, 1, 1]. */
  readonly up: k.Tensor;
  /** The network alpha (scale alpha / rank); null when the file stores none (alpha = rank). */
  readonly alpha: number | null;
}

/**
 * A LoRA file in memory, independent of its layout: adapted layers keyed by component and
 * module path (`unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q`), plus the
 * header metadata (kohya's `ss_*` training fields are kept through conversions).
 *
 * @example
 * ```ts
 * const lora = await readLoraFile('pytorch_lora_weights.safetensors');
 * console.log(lora.format, lora.modules.size);
 * ```
 */
export interface LoraWeights {
  /** The layout it was read from (or will be written as). */
  readonly format: LoraFormat;
  readonly modules: ReadonlyMap<string, LoraModuleWeights>;
  readonly metadata: Readonly<Record<string, string>>;
}

/**
 * A LoRA file whose keys or tensors do not form valid adapters (unknown keys, a down without
 * its up, ranks that disagree); `issues` lists every problem, `file` names the source.
 *
 * @example
 * ```ts
 * await parseLoraStateDict(new Map()); // rejects with LoraFormatError: no LoRA weights found
 * ```
 */
export class LoraFormatError extends k.KilnError {
  override name = 'LoraFormatError';
  constructor(
    readonly file: string,
    readonly issues: readonly string[],
  ) {
    super(`${file}: not a valid LoRA file: ${issues.slice(0, 8).join('; ')}${issues.length > 8 ? `; … ${issues.length - 8} more` : ''}`);
  }
}

/** Splits `unet.a.b` into its component and path. */
export function splitComponent(key: string): { component: LoraComponent; path: string } | null {
  const dot = key.indexOf('.');
  const component = key.slice(0, dot) as LoraComponent;
  return dot > 0 && LORA_COMPONENTS.includes(component) ? { component, path: key.slice(dot + 1) } : null;
}

/** Which layout a set of keys is in (kohya if any key has a kohya prefix and lora_down/up). @example detectLoraFormat(['lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight']); // 'kohya' */
export function detectLoraFormat(keys: readonly string[]): LoraFormat {
  return keys.some((key) => /^lora_(unet|te\d?)_.+\.(lora_down\.weight|lora_up\.weight|alpha)$/.test(key)) ? 'kohya' : 'diffusers';
}

const scalarOf = async (t: k.Tensor): Promise<number> => (t.numel() === 1 ? t.item() : Number.NaN);

/** Per-component alphas from newer diffusers' `lora_adapter_metadata` header entry. */
function metadataAlpha(
  metadata: Readonly<Record<string, string>>,
  file: string,
): (component: LoraComponent, path: string) => number | null {
  const raw = metadata[LORA_ADAPTER_METADATA_KEY];
  if (raw === undefined) return () => null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new LoraFormatError(file, [`header field ${LORA_ADAPTER_METADATA_KEY} is not JSON`]);
  }
  if (parsed === null || typeof parsed !== 'object')
    throw new LoraFormatError(file, [`header field ${LORA_ADAPTER_METADATA_KEY} is not an object`]);
  const config = new Map(Object.entries(parsed as Record<string, unknown>));
  return (component, path) => {
    const pattern = config.get(`${component}.alpha_pattern`);
    if (pattern !== null && typeof pattern === 'object') {
      // PEFT matches pattern keys as a suffix of the module path.
      for (const [key, value] of Object.entries(pattern as Record<string, unknown>)) {
        if ((path === key || path.endsWith(`.${key}`)) && typeof value === 'number') return value;
      }
    }
    const alpha = config.get(`${component}.lora_alpha`);
    return typeof alpha === 'number' ? alpha : null;
  };
}

/**
 * Reads a LoRA state dict in either layout (detected from the keys) into {@link LoraWeights}.
 * diffusers' older key forms are accepted as diffusers loads them; alphas come from kohya's
 * `.alpha` tensors, diffusers' `network_alphas`-style `.alpha` keys, or the
 * `lora_adapter_metadata` header. `known` maps kohya names to module paths exactly (build it
 * with `kohyaNameMap`); without it names are split by diffusers' naming rules.
 *
 * @example
 * ```ts
 * const lora = await parseLoraStateDict(await loadSafetensors(path), reader.metadata, { file: path });
 * lora.modules.size; // adapted layers
 * ```
 */
export async function parseLoraStateDict(
  tensors: Readonly<Record<string, k.Tensor>> | ReadonlyMap<string, k.Tensor>,
  metadata: Readonly<Record<string, string>> = {},
  options: { file?: string; known?: ReadonlyMap<string, { component: LoraComponent; path: string }> } = {},
): Promise<LoraWeights> {
  const file = options.file ?? 'LoRA state dict';
  const entries = entriesOf(tensors) as [string, k.Tensor][];
  const format = detectLoraFormat(entries.map(([key]) => key));
  const parts = new Map<string, { down?: k.Tensor; up?: k.Tensor; alpha?: number }>();
  const issues: string[] = [];
  const slot = (key: string): { down?: k.Tensor; up?: k.Tensor; alpha?: number } => {
    let s = parts.get(key);
    if (!s) parts.set(key, (s = {}));
    return s;
  };
  for (const [key, tensor] of entries) {
    if (format === 'kohya') {
      const m = /^([^.]+)\.(lora_down\.weight|lora_up\.weight|alpha)$/.exec(key);
      const name = m ? parseKohyaName(m[1]!, options.known) : null;
      if (!m || !name) {
        issues.push(`unexpected key '${key}'`);
        continue;
      }
      const s = slot(`${name.component}.${name.path}`);
      if (m[2] === 'alpha') s.alpha = await scalarOf(tensor);
      else if (m[2] === 'lora_down.weight') s.down = tensor;
      else s.up = tensor;
    } else {
      const split = splitComponent(key);
      const parsed = split ? parseDiffusersKey(split.component, split.path) : null;
      if (!split || !parsed) {
        issues.push(`unexpected key '${key}' (expected unet./text_encoder. + path + .lora_A.weight / .lora_B.weight)`);
        continue;
      }
      const s = slot(`${split.component}.${parsed.path}`);
      if (parsed.part === 'alpha') s.alpha = await scalarOf(tensor);
      else if (parsed.part === 'A') s.down = tensor;
      else s.up = tensor;
    }
  }
  const alphaFromHeader = metadataAlpha(metadata, file);
  const modules = new Map<string, LoraModuleWeights>();
  for (const [key, s] of parts) {
    if (!s.down || !s.up) {
      issues.push(
        `'${key}' has ${s.down ? 'lora_down/lora_A' : s.up ? 'lora_up/lora_B' : 'only an alpha'} but no ${s.down ? 'lora_up/lora_B' : 'lora_down/lora_A'}`,
      );
      continue;
    }
    const rank = s.down.shape[0];
    const conv = s.down.shape.length === 4;
    const upOk =
      s.up.shape.length === s.down.shape.length && s.up.shape[1] === rank && (!conv || (s.up.shape[2] === 1 && s.up.shape[3] === 1));
    if (!(s.down.shape.length === 2 || conv) || !upOk) {
      issues.push(`'${key}': down [${s.down.shape.join(', ')}] and up [${s.up.shape.join(', ')}] are not a rank-${rank} pair`);
      continue;
    }
    if (s.alpha !== undefined && !Number.isFinite(s.alpha)) {
      issues.push(`'${key}': alpha is not a finite scalar`);
      continue;
    }
    const split = splitComponent(key)!;
    modules.set(key, { down: s.down, up: s.up, alpha: s.alpha ?? alphaFromHeader(split.component, split.path) });
  }
  if (issues.length > 0) throw new LoraFormatError(file, issues);
  if (modules.size === 0) throw new LoraFormatError(file, ['no LoRA weights found']);
  return { format, modules, metadata: { ...metadata } };
}

const mostCommon = (values: number[]): number => {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1])[0]![0];
};

/**
 * Lays {@link LoraWeights} out as a state dict and header in `format`:
 * - `diffusers`: `unet.<path>.lora_A.weight` / `lora_B.weight` (what diffusers'
 *   `save_lora_weights` writes), header `format: pt`; when an alpha differs from its rank the
 *   alphas go in `lora_adapter_metadata` (`<component>.lora_alpha`, `.alpha_pattern`, `.r`,
 *   `.rank_pattern`) as newer diffusers writes and reads it;
 * - `kohya`: `lora_unet_<path_>.lora_down.weight` / `.lora_up.weight` / `.alpha` (float32
 *   scalar; alpha = rank where the source had none), header `ss_network_module` and
 *   `ss_network_dim`/`ss_network_alpha` unless the metadata already has them.
 * Other header fields (kohya's `ss_*`) are carried over in both layouts. `foldAlpha` scales each
 * lora_B by alpha / rank and stores alpha = rank, for loaders that read no alphas from a diffusers
 * file (diffusers before 0.34 uses alpha = rank there); the values then differ by rounding.
 *
 * @example
 * ```ts
 * const { tensors, metadata } = serializeLoraWeights(lora, 'kohya');
 * await saveSafetensors('my_lora.safetensors', tensors, metadata);
 * ```
 */
export function serializeLoraWeights(
  lora: LoraWeights,
  format: LoraFormat,
  options: { foldAlpha?: boolean } = {},
): { tensors: Map<string, k.Tensor>; metadata: Record<string, string> } {
  if (options.foldAlpha) lora = foldAlpha(lora);
  const tensors = new Map<string, k.Tensor>();
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(lora.metadata))
    if (key !== LORA_ADAPTER_METADATA_KEY && key !== 'format') metadata[key] = value;
  const entries = [...lora.modules];
  if (format === 'kohya') {
    for (const [key, m] of entries) {
      const { component, path } = splitComponent(key)!;
      const name = kohyaName(component, path);
      tensors.set(`${name}.lora_down.weight`, m.down);
      tensors.set(`${name}.lora_up.weight`, m.up);
      tensors.set(`${name}.alpha`, k.tensor([m.alpha ?? m.down.shape[0]!], { dtype: 'float32' }).reshape([]));
    }
    const linear = entries.filter(([, m]) => m.down.shape.length === 2 || (m.down.shape[2] === 1 && m.down.shape[3] === 1));
    const pick = linear.length > 0 ? linear : entries;
    metadata.ss_network_module ??= 'networks.lora';
    metadata.ss_network_dim ??= String(mostCommon(pick.map(([, m]) => m.down.shape[0]!)));
    metadata.ss_network_alpha ??= String(mostCommon(pick.map(([, m]) => m.alpha ?? m.down.shape[0]!)));
    return { tensors, metadata };
  }
  for (const [key, m] of entries) {
    tensors.set(`${key}.lora_A.weight`, m.down);
    tensors.set(`${key}.lora_B.weight`, m.up);
  }
  metadata.format = 'pt';
  if (entries.some(([, m]) => m.alpha !== null && m.alpha !== m.down.shape[0])) {
    const config: Record<string, unknown> = {};
    for (const component of LORA_COMPONENTS) {
      const mine = entries.map(([key, m]) => [splitComponent(key)!, m] as const).filter(([s]) => s.component === component);
      if (mine.length === 0) continue;
      const r = mostCommon(mine.map(([, m]) => m.down.shape[0]!));
      const alpha = mostCommon(mine.map(([, m]) => m.alpha ?? m.down.shape[0]!));
      config[`${component}.r`] = r;
      config[`${component}.lora_alpha`] = alpha;
      config[`${component}.rank_pattern`] = Object.fromEntries(
        mine.filter(([, m]) => m.down.shape[0] !== r).map(([s, m]) => [s.path, m.down.shape[0]]),
      );
      config[`${component}.alpha_pattern`] = Object.fromEntries(
        mine.filter(([, m]) => (m.alpha ?? m.down.shape[0]) !== alpha).map(([s, m]) => [s.path, m.alpha ?? m.down.shape[0]]),
      );
      config[`${component}.target_modules`] = mine.map(([s]) => s.path);
    }
    metadata[LORA_ADAPTER_METADATA_KEY] = JSON.stringify(
      Object.fromEntries(Object.entries(config).sort(([a], [b]) => (a < b ? -1 : 1))),
      null,
      2,
    );
  }
  return { tensors, metadata };
}

/** The same adapters with alpha / rank folded into lora_B (new tensors where it is not 1). */
function foldAlpha(lora: LoraWeights): LoraWeights {
  const modules = new Map<string, LoraModuleWeights>();
  for (const [key, m] of lora.modules) {
    const rank = m.down.shape[0]!;
    const ratio = (m.alpha ?? rank) / rank;
    const up = ratio === 1 ? m.up : k.noGrad(() => k.tidy(() => k.cast(k.cast(m.up, 'float32').mul(ratio), m.up.dtype)));
    modules.set(key, { down: m.down, up, alpha: rank });
  }
  return { ...lora, modules };
}
