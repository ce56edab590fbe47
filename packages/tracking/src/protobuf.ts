import { TrackingError } from './errors.js';

// The few protobuf wire-format writes an event file needs. Field order and defaults follow
// proto3: a field equal to its default is not written.
const utf8 = new TextEncoder();

/** Serialises one message; nested messages are written with `message(field, w => …)`. */
export class ProtoWriter {
  private readonly parts: number[] = [];

  private varint(v: number): void {
    // Integers up to 2^53 (JavaScript's exact range) as unsigned varints.
    if (!Number.isSafeInteger(v) || v < 0) throw new TrackingError(`protobuf varint out of range: ${v}`);
    while (v >= 0x80) {
      this.parts.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    this.parts.push(v);
  }

  private tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  uint(field: number, v: number): this {
    if (v !== 0) {
      this.tag(field, 0);
      this.varint(v);
    }
    return this;
  }

  double(field: number, v: number): this {
    if (v === 0 && !Object.is(v, -0)) return this;
    this.tag(field, 1);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    this.parts.push(...b);
    return this;
  }

  /** A float field that is written even when 0 (a scalar's value must be present). */
  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.parts.push(...b);
    return this;
  }

  bytes(field: number, v: Uint8Array, always = false): this {
    if (v.length === 0 && !always) return this;
    this.tag(field, 2);
    this.varint(v.length);
    for (let i = 0; i < v.length; i++) this.parts.push(v[i]);
    return this;
  }

  string(field: number, v: string, always = false): this {
    return this.bytes(field, utf8.encode(v), always);
  }

  /** A nested message; written even when empty (presence matters for messages). */
  message(field: number, build: (w: ProtoWriter) => void): this {
    const w = new ProtoWriter();
    build(w);
    return this.bytes(field, w.finish(), true);
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
}
