/** One PNG image as logged: its size, the encoded bytes and an optional caption. @example for (const r of records) if (r.kind === 'images') for (const img of r.images) console.log(img.width, img.height, img.channels); */
export interface LoggedImage {
  readonly width: number;
  readonly height: number;
  /** 1 (grey), 3 (RGB) or 4 (RGBA). */
  readonly channels: number;
  readonly png: Uint8Array;
  readonly caption?: string;
}

/** The start of a run: its name and the environment it ran in (backend, adapter, threads, versions). @example const run = records.find((r): r is RunRecord => r.kind === 'run'); // name and environment */
export interface RunRecord {
  readonly kind: 'run';
  readonly wall: number;
  readonly name: string;
  readonly environment: Readonly<Record<string, unknown>>;
}

/** Scalars at one step. Non-finite values are kept (a NaN loss is worth seeing). @example const losses = records.flatMap((r) => (r.kind === 'scalars' && 'loss' in r.values ? [r.values.loss] : [])); */
export interface ScalarsRecord {
  readonly kind: 'scalars';
  readonly step: number;
  readonly wall: number;
  readonly values: Readonly<Record<string, number>>;
}

/** A set of images under one tag at one step (a validation grid). @example const grids = records.filter((r): r is ImagesRecord => r.kind === 'images' && r.tag === 'validation'); */
export interface ImagesRecord {
  readonly kind: 'images';
  readonly step: number;
  readonly wall: number;
  readonly tag: string;
  readonly images: readonly LoggedImage[];
}

/** A piece of text under a tag at one step (prompts, notes). @example const prompts = records.filter((r): r is TextRecord => r.kind === 'text'); */
export interface TextRecord {
  readonly kind: 'text';
  readonly step: number;
  readonly wall: number;
  readonly tag: string;
  readonly text: string;
}

/** The run's configuration and its final metrics. @example const hp = records.find((r): r is HparamsRecord => r.kind === 'hparams'); // config and final metrics */
export interface HparamsRecord {
  readonly kind: 'hparams';
  readonly wall: number;
  readonly config: Readonly<Record<string, unknown>>;
  readonly metrics: Readonly<Record<string, number>>;
}

/** Everything a logger hands its sinks. `wall` is seconds since the Unix epoch. @example switch (record.kind) { case 'scalars': console.log(record.values); break; case 'text': console.log(record.text); break; } */
export type LogRecord = RunRecord | ScalarsRecord | ImagesRecord | TextRecord | HparamsRecord;

/** A run as the report sees it: its name and records in the order they were logged. @example const html = buildReport([{ name: 'dog', records }]); // one RunData per run */
export interface RunData {
  readonly name: string;
  readonly records: readonly LogRecord[];
  /** What went wrong reading it (a cut last line, say); shown in the report. */
  readonly warnings?: readonly string[];
}
