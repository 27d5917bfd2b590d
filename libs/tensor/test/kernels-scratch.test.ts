import { initBackend, tf } from '@museum/tensor';
test('scratch', async () => {
  await initBackend({ log: () => {} });
  const time = (name: string, f: () => tf.Tensor, flops = 0) => {
    const ts: number[] = [];
    for (let r = 0; r < 4; r++) {
      const t0 = performance.now(); const c = f(); const s = tf.slice(tf.reshape(c, [-1]), [0], [1]); s.dataSync(); tf.dispose([c, s]); ts.push(performance.now() - t0);
    }
    console.log(name, ts.map((t) => t.toFixed(1)).join(','), flops ? (flops / Math.min(...ts.slice(1)) / 1e6).toFixed(2) + ' GF/s' : '');
  };
  const a = tf.randomNormal([8, 256, 64]), b = tf.randomNormal([8, 256, 64]);
  time('attn small', () => tf.matMul(a, b, false, true), 2 * 8 * 256 * 256 * 64);
  const a2 = tf.randomNormal([8, 1024, 64]), b2 = tf.randomNormal([8, 64, 1024]);
  time('attn [8,1024,64]x[8,64,1024]', () => tf.matMul(a2, b2), 2 * 8 * 1024 * 1024 * 64);
  const a3 = tf.randomNormal([1024, 64]), b3 = tf.randomNormal([64, 1024]);
  time('2d [1024,64]x[64,1024]', () => tf.matMul(a3, b3), 2 * 1024 * 1024 * 64);
  const a4 = tf.randomNormal([1024, 1024]), b4 = tf.randomNormal([1024, 1024]);
  time('2d 1024^3', () => tf.matMul(a4, b4), 2 * 1024 * 1024 * 1024);
  time('2d 1024^3 tB', () => tf.matMul(a4, b4, false, true), 2 * 1024 * 1024 * 1024);
  time('2d 1024^3 tA', () => tf.matMul(a4, b4, true, false), 2 * 1024 * 1024 * 1024);
  const a5 = tf.randomNormal([1024, 1024]), b5 = tf.randomNormal([1024, 64]);
  time('2d [1024,1024]x[1024,64]', () => tf.matMul(a5, b5), 2 * 1024 * 1024 * 64);
  const ids = tf.tensor1d(Array.from({ length: 77 }, (_, i) => (i * 641) % 49408), 'int32');
  const dy = tf.randomNormal([77, 768]);
  time('segsum', () => tf.unsortedSegmentSum(dy, ids, 49408));
  time('zeros same size', () => tf.zeros([49408, 768]));
});
