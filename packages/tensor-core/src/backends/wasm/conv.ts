/**
 * Convolutions on the wasm engine (groups 1, f32): 1×1 stride-1 as plain GEMMs over the images,
 * 3×3 stride-1 through Winograd F(4×4, 3×3), everything else im2col (by output-row chunks) + GEMM.
 */
import type { Conv2dParams } from '../../backend.js';
import { conv2dOutputShape, convDims, numel } from '../../shape.js';
import { pool } from './bufpool.js';
import { IM2COL, WIN_MAT, WIN_TILE } from './kernels.js';
import { winoPadBytes } from './kernels/winograd.js';
import type { Scratch, WView } from './staging.js';

type ConvGeom = ReturnType<Convolutions['convGeom']>;

/**
 * Element stride between the 36 Winograd components of a [36][rows][T] buffer: the size rounded
 * up to 16 floats, plus 16. The tile transforms write (and read) all 36 components of a tile at
 * once; with a stride of a multiple of 4 KiB (320 channels × 128 tiles is 40 × 4 KiB) the 36
 * streams fall into one L1 set and evict each other, which the extra cache line avoids.
 */
const xiStride = (n: number): number => Math.ceil(n / 16) * 16 + 16;

export class Convolutions {
  constructor(
    private readonly s: Scratch,
    /** Whether 3×3 stride-1 convolutions may take the Winograd path. */
    private readonly winograd: boolean,
  ) {}

  /** The im2col paths' loop: each image, in chunks of `g.rows` output rows (`Pc` output pixels). */
  private forEachRowChunk(
    g: { N: number; Ho: number; Wo: number; rows: number },
    fn: (n: number, oh0: number, oh1: number, Pc: number) => void,
  ): void {
    for (let n = 0; n < g.N; n++)
      for (let oh0 = 0; oh0 < g.Ho; oh0 += g.rows) {
        const oh1 = Math.min(g.Ho, oh0 + g.rows);
        fn(n, oh0, oh1, (oh1 - oh0) * g.Wo);
      }
  }

  /** Sizes of one convolution; the gradients pass gy's shape (with outputPadding it can differ from the formula's). */
  private convGeom(xShape: readonly number[], wShape: readonly number[], yShape: readonly number[]) {
    const { N, C, H, W, O, kh, kw, Ho, Wo } = convDims(xShape, wShape, yShape);
    const CKK = C * kh * kw;
    // Output rows per chunk so one col chunk stays within ~16 MiB.
    const rows = Math.max(1, Math.min(Ho, Math.floor((16 << 20) / Math.max(1, CKK * Wo * 4))));
    return { N, C, H, W, O, kh, kw, Ho, Wo, CKK, P: Ho * Wo, rows };
  }

  private im2colDesc(x: number, g: ConvGeom, p: Conv2dParams, oh0: number, oh1: number, col: number): number {
    const f = new Array<number>(16);
    const I = IM2COL;
    f[I.x] = x;
    f[I.C] = g.C;
    f[I.H] = g.H;
    f[I.W] = g.W;
    f[I.kh] = g.kh;
    f[I.kw] = g.kw;
    f[I.sh] = p.stride[0];
    f[I.sw] = p.stride[1];
    f[I.ph] = p.padding[0];
    f[I.pw] = p.padding[1];
    f[I.dh] = p.dilation[0];
    f[I.dw] = p.dilation[1];
    f[I.Wo] = g.Wo;
    f[I.oh0] = oh0;
    f[I.oh1] = oh1;
    f[I.col] = col;
    return this.s.engine.desc(f);
  }

  /** 1×1, stride 1, no padding: the image itself is the GEMM operand (no im2col). */
  private pointwise(wShape: readonly number[], p: Conv2dParams): boolean {
    return (
      p.groups === 1 &&
      wShape[2] === 1 &&
      wShape[3] === 1 &&
      p.stride[0] === 1 &&
      p.stride[1] === 1 &&
      p.padding[0] === 0 &&
      p.padding[1] === 0
    );
  }

  // ---- Winograd F(4×4, 3×3) for 3×3 stride-1 convolutions ----
  private winoOk(C: number, O: number, wShape: readonly number[], p: Conv2dParams, tiles: number): boolean {
    if (!this.winograd || p.groups !== 1 || wShape[2] !== 3 || wShape[3] !== 3) return false;
    if (p.stride[0] !== 1 || p.stride[1] !== 1 || p.dilation[0] !== 1 || p.dilation[1] !== 1) return false;
    if (p.padding[0] > 2 || p.padding[1] > 2 || C < 8 || O < 8 || tiles === 0) return false;
    return 36 * (C + O) * tiles * 4 + 36 * C * O * 4 < 1 << 30;
  }

  /** A tile transform; tensors [36][C][tiles] with component stride sXi and channel stride sC. */
  private winoTile(
    task: 'task_wino_in' | 'task_wino_dy' | 'task_wino_out',
    f: Omit<Record<keyof typeof WIN_TILE, number>, 'pad' | 'padStride' | 'ph' | 'pw' | 'next'> & { ph?: number; pw?: number },
  ): void {
    const d = new Array<number>(15).fill(0);
    for (const [key, v] of Object.entries(f)) d[WIN_TILE[key as keyof typeof WIN_TILE]] = v;
    if (task !== 'task_wino_out') {
      // Each thread's zero-padded copy of the plane it transforms.
      const padStride = winoPadBytes(f.tilesH, f.tilesW);
      d[WIN_TILE.pad] = this.s.engine.alloc(padStride * this.s.engine.threads);
      d[WIN_TILE.padStride] = padStride;
    }
    // ~1 ns per transformed element on one thread: small convolutions stay on the calling thread.
    const e = this.s.engine;
    e.run(task, e.desc(d), e.threadsFor(f.N * f.C * f.tilesH * f.tilesW * 36 * 1e-3));
  }

  private winoMat(task: 'task_wino_w' | 'task_wino_winv', f: Omit<Record<keyof typeof WIN_MAT, number>, 'next'>): void {
    const d = new Array<number>(13).fill(0);
    for (const [key, v] of Object.entries(f)) d[WIN_MAT[key as keyof typeof WIN_MAT]] = v;
    const e = this.s.engine;
    e.run(task, e.desc(d), e.threadsFor(f.nA * f.nB * 36 * 2e-3));
  }

  /** y[N, Cout, Ho, Wo] = conv(src[N, Cin, H, W], U) where U = G g Gᵀ is already in scratch as [36][Cout][Cin] (component stride sU). */
  private winoConv(
    src: number,
    N: number,
    Cin: number,
    H: number,
    W: number,
    ph: number,
    pw: number,
    U: number,
    sU: number,
    Cout: number,
    Ho: number,
    Wo: number,
    y: number,
  ): void {
    const e = this.s.engine;
    const tilesH = Math.ceil(Ho / 4);
    const tilesW = Math.ceil(Wo / 4);
    const T = N * tilesH * tilesW;
    const sV = xiStride(Cin * T);
    const sM = xiStride(Cout * T);
    const V = e.alloc(36 * sV * 4);
    const M = e.alloc(36 * sM * 4);
    this.winoTile('task_wino_in', { src, N, C: Cin, H, W, ph, pw, tilesH, tilesW, dst: V, sXi: sV, sC: T });
    this.s.gemm({
      A: U,
      rsA: Cin,
      csA: 1,
      bsA: sU,
      B: V,
      rsB: T,
      csB: 1,
      bsB: sV,
      C: M,
      ldc: T,
      bsC: sM,
      M: Cout,
      N: T,
      K: Cin,
      batch: 36,
      acc: false,
      ws: this.s.workspaces(),
    });
    this.winoTile('task_wino_out', { src: M, sXi: sM, sC: T, N, C: Cout, H: Ho, W: Wo, tilesH, tilesW, dst: y });
  }

  conv2d(x: WView, w: WView, p: Conv2dParams): Float32Array {
    const g = this.convGeom(x.shape, w.shape, conv2dOutputShape(x.shape, w.shape, p));
    const out = pool.f32(g.N * g.O * g.P);
    if (out.length === 0) return out;
    const e = this.s.engine;
    e.reset();
    const xs = this.s.stageContig(x);
    const ws_ = this.s.stageContig(w);
    const y = this.s.target(out);
    if (this.pointwise(w.shape, p)) {
      this.s.gemm({
        A: ws_,
        rsA: g.C,
        csA: 1,
        bsA: 0,
        B: xs,
        rsB: g.P,
        csB: 1,
        bsB: g.C * g.P,
        C: y,
        ldc: g.P,
        bsC: g.O * g.P,
        M: g.O,
        N: g.P,
        K: g.C,
        batch: g.N,
        acc: false,
        ws: this.s.workspaces(),
      });
      return this.s.copyOut(y, out);
    }
    if (this.winoOk(g.C, g.O, w.shape, p, g.N * Math.ceil(g.Ho / 4) * Math.ceil(g.Wo / 4))) {
      const sU = xiStride(g.O * g.C);
      const U = e.alloc(36 * sU * 4);
      this.winoMat('task_wino_w', {
        src: ws_,
        sA: g.C * 9,
        sB: 9,
        sI: 3,
        sJ: 1,
        nA: g.O,
        nB: g.C,
        dst: U,
        dA: g.C,
        dB: 1,
        dI: 6 * sU,
        dJ: sU,
      });
      this.winoConv(xs, g.N, g.C, g.H, g.W, p.padding[0], p.padding[1], U, sU, g.O, g.Ho, g.Wo, y);
      return this.s.copyOut(y, out);
    }
    const col = e.alloc(g.CKK * g.rows * g.Wo * 4);
    const ws = this.s.workspaces();
    this.forEachRowChunk(g, (n, oh0, oh1, Pc) => {
      e.run(
        'task_im2col',
        this.im2colDesc(xs + n * g.C * g.H * g.W * 4, g, p, oh0, oh1, col),
        e.threadsFor(g.CKK * (oh1 - oh0) * g.Wo * 1e-3),
      );
      this.s.gemm({
        A: ws_,
        rsA: g.CKK,
        csA: 1,
        bsA: 0,
        B: col,
        rsB: Pc,
        csB: 1,
        bsB: 0,
        C: y + (n * g.O * g.P + oh0 * g.Wo) * 4,
        ldc: g.P,
        bsC: 0,
        M: g.O,
        N: Pc,
        K: g.CKK,
        batch: 1,
        acc: false,
        ws,
      });
    });
    return this.s.copyOut(y, out);
  }

  conv2dInputGrad(gy: WView, w: WView, inputShape: readonly number[], p: Conv2dParams): Float32Array {
    const g = this.convGeom(inputShape, w.shape, gy.shape);
    const out = pool.f32(numel(inputShape));
    if (out.length === 0 || g.P === 0) return out.fill(0);
    const e = this.s.engine;
    e.reset();
    const gys = this.s.stageContig(gy);
    const ws_ = this.s.stageContig(w);
    const gx = this.s.target(out);
    if (this.pointwise(w.shape, p)) {
      this.s.gemm({
        A: ws_,
        rsA: 1,
        csA: g.C,
        bsA: 0,
        B: gys,
        rsB: g.P,
        csB: 1,
        bsB: g.O * g.P,
        C: gx,
        ldc: g.P,
        bsC: g.C * g.P,
        M: g.C,
        N: g.P,
        K: g.O,
        batch: g.N,
        acc: false,
        ws: this.s.workspaces(),
      });
      return this.s.copyOut(gx, out);
    }
    if (this.winoOk(g.C, g.O, w.shape, p, g.N * Math.ceil(g.H / 4) * Math.ceil(g.W / 4))) {
      // The input gradient is the forward conv of gy with w flipped and transposed, padding 2 - p.
      const sU = xiStride(g.O * g.C);
      const U = e.alloc(36 * sU * 4);
      this.winoMat('task_wino_w', {
        src: ws_ + 8 * 4,
        sA: 9,
        sB: g.C * 9,
        sI: -3,
        sJ: -1,
        nA: g.C,
        nB: g.O,
        dst: U,
        dA: g.O,
        dB: 1,
        dI: 6 * sU,
        dJ: sU,
      });
      this.winoConv(gys, g.N, g.O, g.Ho, g.Wo, 2 - p.padding[0], 2 - p.padding[1], U, sU, g.C, g.H, g.W, gx);
      return this.s.copyOut(gx, out);
    }
    e.f32.fill(0, gx / 4, gx / 4 + out.length);
    const col = e.alloc(g.CKK * g.rows * g.Wo * 4);
    const ws = this.s.workspaces();
    this.forEachRowChunk(g, (n, oh0, oh1, Pc) => {
      // dcol[CKK, Pc] = wᵀ[CKK, O] · gy[n][O, chunk]
      this.s.gemm({
        A: ws_,
        rsA: 1,
        csA: g.CKK,
        bsA: 0,
        B: gys + (n * g.O * g.P + oh0 * g.Wo) * 4,
        rsB: g.P,
        csB: 1,
        bsB: 0,
        C: col,
        ldc: Pc,
        bsC: 0,
        M: g.CKK,
        N: Pc,
        K: g.O,
        batch: 1,
        acc: false,
        ws,
      });
      e.run(
        'task_col2im',
        this.im2colDesc(gx + n * g.C * g.H * g.W * 4, g, p, oh0, oh1, col),
        e.threadsFor(g.CKK * (oh1 - oh0) * g.Wo * 1e-3),
      );
    });
    return this.s.copyOut(gx, out);
  }

  conv2dWeightGrad(x: WView, gy: WView, weightShape: readonly number[], p: Conv2dParams): Float32Array {
    const g = this.convGeom(x.shape, weightShape, gy.shape);
    const out = pool.f32(numel(weightShape));
    if (out.length === 0) return out;
    const e = this.s.engine;
    e.reset();
    const xs = this.s.stageContig(x);
    const gys = this.s.stageContig(gy);
    const gw = this.s.target(out);
    const tilesH = Math.ceil(g.Ho / 4);
    const tilesW = Math.ceil(g.Wo / 4);
    const T = g.N * tilesH * tilesW;
    if (this.pointwise(weightShape, p)) {
      // gw[O, C] = Σ_n gy[n][O, P] · x[n]ᵀ[P, C] (C batch stride 0: accumulate over images)
      this.s.gemm({
        A: gys,
        rsA: g.P,
        csA: 1,
        bsA: g.O * g.P,
        B: xs,
        rsB: 1,
        csB: g.P,
        bsB: g.C * g.P,
        C: gw,
        ldc: g.C,
        bsC: 0,
        M: g.O,
        N: g.C,
        K: g.P,
        batch: g.N,
        acc: false,
        ws: this.s.workspaces(),
      });
      return this.s.copyOut(gw, out);
    }
    if (this.winoOk(g.C, g.O, weightShape, p, T)) {
      // Z[ξ] = Σ_tiles (A dy Aᵀ)[ξ] (Bᵀ d B)[ξ]ᵀ, then dg = Gᵀ Z G. Both transforms keep tiles
      // innermost ([36][C][T], [36][O][T]); the GEMM reads V transposed.
      const sV = xiStride(g.C * T);
      const sW = xiStride(g.O * T);
      const sZ = xiStride(g.O * g.C);
      const V = e.alloc(36 * sV * 4);
      const Wd = e.alloc(36 * sW * 4);
      const Z = e.alloc(36 * sZ * 4);
      this.winoTile('task_wino_in', {
        src: xs,
        N: g.N,
        C: g.C,
        H: g.H,
        W: g.W,
        ph: p.padding[0],
        pw: p.padding[1],
        tilesH,
        tilesW,
        dst: V,
        sXi: sV,
        sC: T,
      });
      this.winoTile('task_wino_dy', { src: gys, N: g.N, C: g.O, H: g.Ho, W: g.Wo, tilesH, tilesW, dst: Wd, sXi: sW, sC: T });
      this.s.gemm({
        A: Wd,
        rsA: T,
        csA: 1,
        bsA: sW,
        B: V,
        rsB: 1,
        csB: T,
        bsB: sV,
        C: Z,
        ldc: g.C,
        bsC: sZ,
        M: g.O,
        N: g.C,
        K: T,
        batch: 36,
        acc: false,
        ws: this.s.workspaces(),
      });
      this.winoMat('task_wino_winv', {
        src: Z,
        sA: g.C,
        sB: 1,
        sI: 6 * sZ,
        sJ: sZ,
        nA: g.O,
        nB: g.C,
        dst: gw,
        dA: g.C * 9,
        dB: 9,
        dI: 3,
        dJ: 1,
      });
      return this.s.copyOut(gw, out);
    }
    e.f32.fill(0, gw / 4, gw / 4 + out.length);
    const col = e.alloc(g.CKK * g.rows * g.Wo * 4);
    const ws = this.s.workspaces();
    this.forEachRowChunk(g, (n, oh0, oh1, Pc) => {
      e.run(
        'task_im2col',
        this.im2colDesc(xs + n * g.C * g.H * g.W * 4, g, p, oh0, oh1, col),
        e.threadsFor(g.CKK * (oh1 - oh0) * g.Wo * 1e-3),
      );
      // gw[O, CKK] += gy[n][O, chunk] · colᵀ[chunk, CKK]
      this.s.gemm({
        A: gys + (n * g.O * g.P + oh0 * g.Wo) * 4,
        rsA: g.P,
        csA: 1,
        bsA: 0,
        B: col,
        rsB: 1,
        csB: Pc,
        bsB: 0,
        C: gw,
        ldc: g.CKK,
        bsC: 0,
        M: g.O,
        N: g.CKK,
        K: Pc,
        batch: 1,
        acc: true,
        ws,
      });
    });
    return this.s.copyOut(gw, out);
  }
}
