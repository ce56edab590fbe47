/**
 * A small WebAssembly emitter: kernels are described in TypeScript (with JS loops doing the
 * unrolling) and assembled into bytes at load time, so the backend needs no build step and no
 * toolchain. Only what the kernels use is here: i32/f32 scalars, 128-bit SIMD (plus relaxed-SIMD
 * FMA when the engine validates it), structured control flow, one imported shared memory.
 */

export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;
export type ValType = typeof I32 | typeof F32 | typeof V128;

function uleb(out: number[], v: number): void {
  v >>>= 0;
  do {
    let b = v & 0x7f;
    v >>>= 7;
    if (v !== 0) b |= 0x80;
    out.push(b);
  } while (v !== 0);
}

function sleb(out: number[], v: number): void {
  v |= 0;
  for (;;) {
    const b = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return;
    }
    out.push(b | 0x80);
  }
}

const f32buf = new Float32Array(1);
const f32bytes = new Uint8Array(f32buf.buffer);

/** A value-producing snippet: emits code that leaves one value on the stack. */
export type Expr = number | ((f: Fn) => void);

/** One function body under construction. Locals are numbered after the params. */
export class Fn {
  readonly code: number[] = [];
  private readonly locals: ValType[] = [];
  constructor(
    readonly name: string,
    readonly params: ValType[],
    readonly results: ValType[] = [],
    readonly exported = true,
  ) {}

  local(t: ValType): number {
    this.locals.push(t);
    return this.params.length + this.locals.length - 1;
  }

  op(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }
  simd(opcode: number): this {
    this.code.push(0xfd);
    uleb(this.code, opcode);
    return this;
  }
  /** Pushes an i32 constant, or runs a snippet. */
  e(x: Expr): this {
    if (typeof x === 'number') this.i32(x);
    else x(this);
    return this;
  }

  get(i: number): this {
    this.code.push(0x20);
    uleb(this.code, i);
    return this;
  }
  set(i: number, v?: Expr): this {
    if (v !== undefined) this.e(v);
    this.code.push(0x21);
    uleb(this.code, i);
    return this;
  }
  tee(i: number): this {
    this.code.push(0x22);
    uleb(this.code, i);
    return this;
  }
  i32(v: number): this {
    this.code.push(0x41);
    sleb(this.code, v);
    return this;
  }
  f32(v: number): this {
    f32buf[0] = v;
    this.code.push(0x43, ...f32bytes);
    return this;
  }
  private mem(opcode: number, align: number, offset: number): this {
    this.code.push(opcode);
    uleb(this.code, align);
    uleb(this.code, offset);
    return this;
  }
  private smem(opcode: number, align: number, offset: number): this {
    this.simd(opcode);
    uleb(this.code, align);
    uleb(this.code, offset);
    return this;
  }
  // Memory (addresses are byte addresses; `off` is a constant byte offset).
  i32load(off = 0): this {
    return this.mem(0x28, 2, off);
  }
  f32load(off = 0): this {
    return this.mem(0x2a, 2, off);
  }
  i32store(off = 0): this {
    return this.mem(0x36, 2, off);
  }
  f32store(off = 0): this {
    return this.mem(0x38, 2, off);
  }
  v128load(off = 0): this {
    return this.smem(0x00, 2, off);
  }
  v128splat32(off = 0): this {
    return this.smem(0x09, 2, off);
  }
  v128store(off = 0): this {
    return this.smem(0x0b, 2, off);
  }
  /** i32.atomic.rmw.add: adds to the i32 at (address + off) and leaves its old value (threads proposal). */
  atomicAdd(off = 0): this {
    this.code.push(0xfe, 0x1e);
    uleb(this.code, 2);
    uleb(this.code, off);
    return this;
  }
  memfill(): this {
    return this.op(0xfc, 0x0b, 0x00);
  }
  memcopy(): this {
    return this.op(0xfc, 0x0a, 0x00, 0x00);
  }

  // i32 arithmetic / comparisons.
  add(): this {
    return this.op(0x6a);
  }
  sub(): this {
    return this.op(0x6b);
  }
  mul(): this {
    return this.op(0x6c);
  }
  divs(): this {
    return this.op(0x6d);
  }
  rems(): this {
    return this.op(0x6f);
  }
  and(): this {
    return this.op(0x71);
  }
  shl(): this {
    return this.op(0x74);
  }
  shr_s(): this {
    return this.op(0x75);
  }
  eqz(): this {
    return this.op(0x45);
  }
  eq(): this {
    return this.op(0x46);
  }
  ne(): this {
    return this.op(0x47);
  }
  lts(): this {
    return this.op(0x48);
  }
  gts(): this {
    return this.op(0x4a);
  }
  les(): this {
    return this.op(0x4c);
  }
  ges(): this {
    return this.op(0x4e);
  }
  select(): this {
    return this.op(0x1b);
  }
  // f32.
  fadd(): this {
    return this.op(0x92);
  }
  fsub(): this {
    return this.op(0x93);
  }
  fmul(): this {
    return this.op(0x94);
  }
  fdiv(): this {
    return this.op(0x95);
  }
  fmax(): this {
    return this.op(0x97);
  }
  fsqrt(): this {
    return this.op(0x91);
  }
  fgt(): this {
    return this.op(0x5e);
  }
  /** i32 → f32 (signed). */
  fconvi(): this {
    return this.op(0xb2);
  }
  // SIMD f32x4.
  vsplat(): this {
    return this.simd(0x13);
  }
  vextract(lane: number): this {
    this.simd(0x1f);
    this.code.push(lane);
    return this;
  }
  /** i8x16.shuffle broadcasting 32-bit lane `lane` of the first operand (two v128 operands on the stack). */
  vbroadcastLane(lane: number): this {
    this.simd(0x0d);
    for (let i = 0; i < 4; i++) this.code.push(4 * lane, 4 * lane + 1, 4 * lane + 2, 4 * lane + 3);
    return this;
  }
  vadd(): this {
    return this.simd(0xe4);
  }
  vsub(): this {
    return this.simd(0xe5);
  }
  vmul(): this {
    return this.simd(0xe6);
  }
  vdiv(): this {
    return this.simd(0xe7);
  }
  vabs(): this {
    return this.simd(0xe0);
  }
  vand(): this {
    return this.simd(0x4e);
  }
  vor(): this {
    return this.simd(0x50);
  }
  /** i32x4.splat */
  visplat(): this {
    return this.simd(0x11);
  }
  vsqrt(): this {
    return this.simd(0xe3);
  }
  vmin(): this {
    return this.simd(0xe8);
  }
  vmax(): this {
    return this.simd(0xe9);
  }
  vnearest(): this {
    return this.simd(0x6a);
  }
  vlt(): this {
    return this.simd(0x43);
  }
  vandnot(): this {
    return this.simd(0x4f);
  }
  /** i32x4 from f32x4 (saturating) and i32x4 shift/add for building 2^n. */
  vtrunc(): this {
    return this.simd(0xf8);
  }
  viadd(): this {
    return this.simd(0xae);
  }
  vishl(): this {
    return this.simd(0xab);
  }
  /** Leaves a*b+c: relaxed-SIMD FMA when `relaxed`, else f32x4.mul + f32x4.add. */
  vmadd(relaxed: boolean, a: () => void, b: () => void, c: () => void): this {
    if (relaxed) {
      a();
      b();
      c();
      return this.simd(0x105);
    }
    c();
    a();
    b();
    return this.vmul().vadd();
  }

  // Control flow.
  block(body: () => void): this {
    this.code.push(0x02, 0x40);
    body();
    this.code.push(0x0b);
    return this;
  }
  loop(body: () => void): this {
    this.code.push(0x03, 0x40);
    body();
    this.code.push(0x0b);
    return this;
  }
  if(cond: Expr, then: () => void, otherwise?: () => void): this {
    this.e(cond);
    this.code.push(0x04, 0x40);
    then();
    if (otherwise) {
      this.code.push(0x05);
      otherwise();
    }
    this.code.push(0x0b);
    return this;
  }
  br(depth: number): this {
    this.code.push(0x0c);
    uleb(this.code, depth);
    return this;
  }
  brIf(depth: number): this {
    this.code.push(0x0d);
    uleb(this.code, depth);
    return this;
  }
  ret(): this {
    return this.op(0x0f);
  }
  call(index: number): this {
    this.code.push(0x10);
    uleb(this.code, index);
    return this;
  }
  /**
   * `for (i = start; i < end; i += step) body()`; `end` is re-evaluated every iteration.
   * Inside `body`, depth 0 is the loop (continue is not offered; structure code instead).
   */
  for(i: number, start: Expr, end: Expr, step: Expr, body: () => void): this {
    this.set(i, start);
    this.block(() => {
      this.e((f) => f.get(i).e(end).ges()).brIf(0);
      this.loop(() => {
        body();
        this.get(i).e(step).add().set(i);
        this.get(i).e(end).lts().brIf(0);
      });
    });
    return this;
  }

  encode(): number[] {
    const out: number[] = [];
    // Compress runs of equal local types.
    const groups: [number, ValType][] = [];
    for (const t of this.locals) {
      const last = groups[groups.length - 1];
      if (last && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    uleb(out, groups.length);
    for (const [n, t] of groups) {
      uleb(out, n);
      out.push(t);
    }
    out.push(...this.code, 0x0b);
    const sized: number[] = [];
    uleb(sized, out.length);
    return sized.concat(out);
  }
}

function section(out: number[], id: number, body: number[]): void {
  out.push(id);
  uleb(out, body.length);
  for (const b of body) out.push(b);
}

function name(out: number[], s: string): void {
  const bytes = new TextEncoder().encode(s);
  uleb(out, bytes.length);
  out.push(...bytes);
}

/** A module importing `env.memory` (shared, up to `maxPages`) and holding `fns`. */
export function assemble(fns: Fn[], memory: { initial: number; maximum: number; shared: boolean }): Uint8Array {
  const out = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  const sigs: string[] = [];
  const typeOf = fns.map((f) => {
    const key = `${f.params.join(',')}>${f.results.join(',')}`;
    let i = sigs.indexOf(key);
    if (i < 0) i = sigs.push(key) - 1;
    return i;
  });
  const types: number[] = [];
  uleb(types, sigs.length);
  for (const s of sigs) {
    const [p, r] = s.split('>').map((x) => (x ? x.split(',').map(Number) : []));
    types.push(0x60);
    uleb(types, p.length);
    types.push(...p);
    uleb(types, r.length);
    types.push(...r);
  }
  section(out, 1, types);
  const imports: number[] = [];
  uleb(imports, 1);
  name(imports, 'env');
  name(imports, 'memory');
  imports.push(0x02, memory.shared ? 0x03 : 0x01);
  uleb(imports, memory.initial);
  uleb(imports, memory.maximum);
  section(out, 2, imports);
  const funcs: number[] = [];
  uleb(funcs, fns.length);
  for (const t of typeOf) uleb(funcs, t);
  section(out, 3, funcs);
  const exps: number[] = [];
  const exported = fns.map((f, i) => [f, i] as const).filter(([f]) => f.exported);
  uleb(exps, exported.length);
  for (const [f, i] of exported) {
    name(exps, f.name);
    exps.push(0x00);
    uleb(exps, i);
  }
  section(out, 7, exps);
  const code: number[] = [];
  uleb(code, fns.length);
  for (const f of fns) code.push(...f.encode());
  section(out, 10, code);
  return new Uint8Array(out);
}

/** Whether this engine accepts relaxed-SIMD `f32x4.relaxed_madd` (checked by validating a tiny module). */
export function hasRelaxedSimd(): boolean {
  const f = new Fn('t', [], [V128]);
  f.f32(1).vsplat().f32(2).vsplat().f32(3).vsplat().simd(0x105);
  return validates(f);
}

/** Whether this engine has 128-bit SIMD at all. */
export function hasSimd(): boolean {
  const f = new Fn('t', [], [V128]);
  f.f32(1).vsplat();
  return validates(f);
}

function validates(f: Fn): boolean {
  try {
    return WebAssembly.validate(assemble([f], { initial: 1, maximum: 1, shared: false }) as BufferSource);
  } catch {
    return false;
  }
}
