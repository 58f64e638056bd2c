/**
 * The output buffers of a restore or a verify: `count` slots of `slotBytes`
 * in one buffer the caller owns, allocated once per file. Chunks are decoded
 * straight into a slot: when decoding runs on worker threads the buffer is a
 * SharedArrayBuffer, so a worker writes the chunk where the main thread
 * hashes and writes it from — no allocation per chunk, nothing copied back,
 * nothing transferred.
 *
 * Ownership is strict: a slot is handed to one holder and comes back only
 * when that holder releases it, which the pipeline does only once the
 * slot's decode has settled (no worker still writes into it) and its bytes
 * have been hashed and handed on. `acquire` waits, in order, while every
 * slot is held.
 */
import { At1Error } from '../errors.js';

export interface Slot {
  readonly index: number;
  /** The first `length` bytes of the slot. */
  view(length: number): Uint8Array;
}

/** Slot sizes are rounded up to this, so every slot starts 8-byte aligned (typed-array views of any dtype). */
const ALIGN = 8;

export class SlotRing {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  readonly slotBytes: number;
  private readonly free: number[] = [];
  private readonly held: boolean[];
  private readonly waiting: ((s: Slot) => void)[] = [];

  constructor(
    readonly count: number,
    slotBytes: number,
    /** A SharedArrayBuffer (worker threads decode into it) rather than a plain one. */
    readonly shared: boolean,
  ) {
    if (!Number.isInteger(count) || count < 1) throw new At1Error('E_INPUT', `a slot ring needs at least one slot, not ${count}`);
    this.slotBytes = Math.ceil(Math.max(1, slotBytes) / ALIGN) * ALIGN;
    this.buffer = shared ? new SharedArrayBuffer(this.slotBytes * count) : new ArrayBuffer(this.slotBytes * count);
    this.held = new Array<boolean>(count).fill(false);
    for (let i = 0; i < count; i++) this.free.push(i);
  }

  private slot(index: number): Slot {
    return {
      index,
      view: (length) => {
        if (length > this.slotBytes) throw new At1Error('E_INPUT', `a chunk of ${length} bytes does not fit a slot of ${this.slotBytes}`);
        return new Uint8Array(this.buffer, index * this.slotBytes, length);
      },
    };
  }

  /** A free slot, now held by the caller; waits (first come, first served) while all are held. */
  acquire(): Promise<Slot> {
    const i = this.free.shift();
    if (i !== undefined) {
      this.held[i] = true;
      return Promise.resolve(this.slot(i));
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Give a held slot back; it goes to the longest waiter, if any. */
  release(s: Slot): void {
    if (!this.held[s.index]) throw new At1Error('E_IO', `internal: slot ${s.index} released but not held`);
    const next = this.waiting.shift();
    if (next) {
      next(this.slot(s.index)); // stays held: ownership passes straight on
      return;
    }
    this.held[s.index] = false;
    this.free.push(s.index);
  }

  /** Slots held now (for tests). */
  get inUse(): number {
    return this.count - this.free.length;
  }
}
