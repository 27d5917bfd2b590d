/** Tiny throughput probes used by `museum doctor` and the model benchmark. */
import * as tf from '@tensorflow/tfjs-core';

/**
 * Median GFLOP/s of a float32 size×size matMul on the current backend (after one warm-up run).
 * Each run is timed up to a synchronous read of one element, so it measures the finished product.
 */
export function measureMatmulGflops(options: { size?: number; runs?: number } = {}): number {
  const size = options.size ?? 1024;
  const runs = Math.max(1, options.runs ?? 7);
  const a = tf.randomUniform([size, size], -1, 1, 'float32');
  const b = tf.randomUniform([size, size], -1, 1, 'float32');
  const once = (): number => {
    const t0 = performance.now();
    const c = tf.matMul(a, b);
    // Reading a 1-element slice forces completion without copying the whole result.
    const s = tf.slice(c, [0, 0], [1, 1]);
    s.dataSync();
    const ms = performance.now() - t0;
    tf.dispose([c, s]);
    return ms;
  };
  try {
    once();
    const times: number[] = [];
    for (let i = 0; i < runs; i++) times.push(once());
    times.sort((x, y) => x - y);
    const median = times.length % 2 ? times[(times.length - 1) / 2] : (times[times.length / 2 - 1] + times[times.length / 2]) / 2;
    return (2 * size * size * size) / (Math.max(median, 1e-6) * 1e6);
  } finally {
    tf.dispose([a, b]);
  }
}
