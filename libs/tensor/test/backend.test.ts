import { initBackend, backendInfo, tf } from '@museum/tensor';

test('initBackend picks wasm here (no tfjs-node installed) and is idempotent', async () => {
  const a = await initBackend({ log: () => {} });
  const b = await initBackend();
  expect(a).toBe(b);
  expect(backendInfo().name).toBe(process.env.MUSEUM_BACKEND ?? 'wasm');
  expect(tf.getBackend()).toBe(a.name);
  const y = tf.add(tf.tensor([1, 2]), tf.tensor([3, 4]));
  expect(Array.from(await y.data())).toEqual([4, 6]);
});
