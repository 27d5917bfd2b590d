/**
 * Where a forward spends its time: per-module timing (inclusive per named block, exclusive per module
 * class) and per-kernel timing through tf.profile. Ops on the wasm and cpu backends run synchronously,
 * so the time around a module's forward is the time of its kernels (plus the JS around them).
 *
 * Times are taken in process CPU time by default: on a machine shared with other jobs, wall time
 * charges a kernel with whatever preemption happened to land in it.
 */
import { tf } from '@museum/tensor';
import { Module } from '../nn/module';

/** Milliseconds of CPU (user + system) used by this process. */
export function cpuClockMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export type Clock = () => number;

export interface ModuleTiming {
  /** Inclusive milliseconds per watched module name (e.g. `down_blocks.0`). */
  blocks: Record<string, number>;
  /** Exclusive milliseconds per module class (time in its own ops, not in instrumented children). */
  selfByClass: Record<string, number>;
}

type Forward = (...args: unknown[]) => unknown;

/**
 * Runs `fn` with every module under `root` timed: `blocks` names the modules whose inclusive time is
 * reported; every module's exclusive time is summed by class name. The forwards are restored after.
 */
export function timeModules<T>(root: Module, blocks: string[], fn: () => T, clock: Clock = cpuClockMs): { result: T; timing: ModuleTiming } {
  const timing: ModuleTiming = { blocks: {}, selfByClass: {} };
  const watched = new Set(blocks);
  const stack: number[] = []; // child time accumulated by each open frame
  const restore: Array<() => void> = [];
  for (const [name, m] of root.namedModules()) {
    const own = m as unknown as { forward?: Forward };
    if (typeof own.forward !== 'function' || m === root) continue;
    const original = own.forward;
    const cls = m.constructor.name;
    own.forward = function (this: unknown, ...args: unknown[]) {
      stack.push(0);
      const t0 = clock();
      try {
        return original.apply(this, args);
      } finally {
        const ms = clock() - t0;
        const children = stack.pop() as number;
        timing.selfByClass[cls] = (timing.selfByClass[cls] ?? 0) + ms - children;
        if (stack.length) stack[stack.length - 1] += ms;
        if (watched.has(name)) timing.blocks[name] = (timing.blocks[name] ?? 0) + ms;
      }
    };
    restore.push(() => {
      delete own.forward; // back to the prototype's method
      if (own.forward !== original) own.forward = original;
    });
  }
  try {
    return { result: fn(), timing };
  } finally {
    for (const r of restore) r();
  }
}

export interface KernelStat {
  kernel: string;
  ms: number;
  calls: number;
}

/**
 * tf.profile of `fn` (which must dispose what it creates), kernels aggregated by name, slowest first.
 * With a clock given, the backend's kernel timer is replaced by it for the duration (synchronous backends only);
 * `keyOf` chooses the aggregation key (default: the kernel name).
 */
export async function profileKernels(
  fn: () => void,
  top = 20,
  clock: Clock | null = cpuClockMs,
  keyOf: (kernel: string, inputShapes: number[][]) => string = (kernel) => kernel,
): Promise<{ totalMs: number; kernels: KernelStat[]; slowest: Array<{ kernel: string; ms: number; inputShapes: number[][] }> }> {
  const backend = tf.backend() as unknown as { time?: (f: () => void) => Promise<{ kernelMs: number }> };
  const hadOwn = Object.prototype.hasOwnProperty.call(backend, 'time');
  const original = backend.time;
  if (clock) {
    backend.time = async (f: () => void) => {
      const t0 = clock();
      f();
      return { kernelMs: clock() - t0 };
    };
  }
  let info: Awaited<ReturnType<typeof tf.profile>>;
  try {
    info = await tf.profile(() => {
      fn();
    });
  } finally {
    if (clock) {
      if (hadOwn) backend.time = original;
      else delete backend.time;
    }
  }
  const by = new Map<string, KernelStat>();
  let totalMs = 0;
  for (const k of info.kernels) {
    const ms = Number(k.kernelTimeMs) || 0;
    totalMs += ms;
    const key = keyOf(k.name, k.inputShapes as number[][]);
    const s = by.get(key) ?? { kernel: key, ms: 0, calls: 0 };
    s.ms += ms;
    s.calls++;
    by.set(key, s);
  }
  const slowest = [...info.kernels]
    .sort((a, b) => (Number(b.kernelTimeMs) || 0) - (Number(a.kernelTimeMs) || 0))
    .slice(0, top)
    .map((k) => ({ kernel: k.name, ms: Number(k.kernelTimeMs) || 0, inputShapes: k.inputShapes as number[][] }));
  return { totalMs, kernels: [...by.values()].sort((a, b) => b.ms - a.ms), slowest };
}
