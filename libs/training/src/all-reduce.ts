/**
 * Gradient all-reduce between worker threads through shared memory, for data-parallel training on
 * the cores of one machine (each worker runs its own wasm backend instance on its own core).
 * Layout: one Float32 slot of `length` per rank, plus a generation-counting barrier.
 */
export interface AllReduceShared {
  data: SharedArrayBuffer;
  sync: SharedArrayBuffer;
  length: number;
  worldSize: number;
}

export function createAllReduceShared(length: number, worldSize: number): AllReduceShared {
  if (!Number.isInteger(length) || length <= 0) throw new Error(`all-reduce length must be a positive integer, got ${length}`);
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new Error(`worldSize must be >= 1, got ${worldSize}`);
  return {
    data: new SharedArrayBuffer(length * worldSize * 4),
    sync: new SharedArrayBuffer(8),
    length,
    worldSize,
  };
}

export class AllReducer {
  private readonly slots: Float32Array;
  private readonly sync: Int32Array;

  constructor(
    readonly shared: AllReduceShared,
    readonly rank: number,
    /** How long a rank waits for the others before failing (a crashed peer must not hang training). */
    readonly timeoutMs = 600_000,
  ) {
    if (rank < 0 || rank >= shared.worldSize) throw new Error(`rank ${rank} outside [0, ${shared.worldSize})`);
    this.slots = new Float32Array(shared.data);
    this.sync = new Int32Array(shared.sync);
  }

  /** Block until every rank has arrived. */
  barrier(): void {
    const { worldSize } = this.shared;
    const gen = Atomics.load(this.sync, 1);
    if (Atomics.add(this.sync, 0, 1) === worldSize - 1) {
      Atomics.store(this.sync, 0, 0);
      Atomics.add(this.sync, 1, 1);
      Atomics.notify(this.sync, 1);
      return;
    }
    const deadline = Date.now() + this.timeoutMs;
    while (Atomics.load(this.sync, 1) === gen) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`all-reduce barrier timed out after ${this.timeoutMs} ms (rank ${this.rank})`);
      Atomics.wait(this.sync, 1, gen, Math.min(left, 1000));
    }
  }

  /** Mean over ranks of `values` (length must equal the shared length); returns a new array. */
  mean(values: Float32Array): Float32Array {
    const { length, worldSize } = this.shared;
    if (values.length !== length) throw new Error(`all-reduce: got ${values.length} values, expected ${length}`);
    this.slots.set(values, this.rank * length);
    this.barrier();
    const out = new Float32Array(length);
    // Sum in rank order so every rank computes bit-identical results.
    for (let r = 0; r < worldSize; r++) {
      const base = r * length;
      for (let i = 0; i < length; i++) out[i] += this.slots[base + i];
    }
    const inv = 1 / worldSize;
    for (let i = 0; i < length; i++) out[i] *= inv;
    // Nobody may overwrite its slot for the next round before everyone has read this one.
    this.barrier();
    return out;
  }
}
