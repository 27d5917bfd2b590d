/**
 * Diagnostic: how much a museum version's LoRA moves the UNet's conditional prediction (a style prompt) and
 * its unconditional one (the empty prompt), against the base UNet, on the style's own training images noised
 * at a few timesteps. Classifier-free guidance draws ε(∅) + w·(ε(c) − ε(∅)): a LoRA that moves ε(∅) as much
 * as ε(c) cancels itself in the guided direction, however well it fits the training images.
 *
 *   node -r ./scripts/ts-register.js scripts/guidance_drift.ts STYLE VERSION MUSEUM_DIR...
 *
 * Prints one JSON line per museum: relative drifts ‖ε_v − ε_0‖ / ‖ε_0‖ of ε(c) and ε(∅), and how much of the
 * LoRA's change of ε(c) survives in the guidance direction: ‖Δε(c) − Δε(∅)‖ / ‖Δε(c)‖ (1 = all of it).
 */
import * as path from 'path';
import { initBackend, tf } from '@museum/tensor';
import { createScheduler, encodeLatents } from '@museum/models';
import { Museum, MuseumRuntime } from '@museum/museum';
import { BENCHMARK_STYLES, fewShotSet, imagesToTensor, type BenchmarkStyle } from '@museum/world';

async function main(): Promise<void> {
  const [style, versionArg, ...dirs] = process.argv.slice(2);
  if (!BENCHMARK_STYLES.includes(style as BenchmarkStyle) || !/^\d+$/.test(versionArg ?? '') || dirs.length === 0) {
    throw new Error('usage: guidance_drift.ts STYLE VERSION MUSEUM_DIR...');
  }
  await initBackend({ log: () => {} });
  const runtime = MuseumRuntime.fromPretrained(path.resolve('models/atelier'));
  const samples = fewShotSet(style as BenchmarkStyle);
  const timesteps = [200, 500, 800];
  const scheduler = createScheduler('ddim', runtime.models.schedulerConfig);
  // fixed noisy latents: every museum is probed on the same inputs
  const inputs = tf.tidy(() => {
    const x0 = encodeLatents(runtime.models.vae, tf.sub(tf.mul(imagesToTensor(samples), 2), 1));
    return timesteps.map((t, i) => ({ t, x: scheduler.addNoise(x0, tf.randomNormal(x0.shape, 0, 1, 'float32', 7 + i), Array(samples.length).fill(t)) }));
  });
  for (const dir of dirs) {
    const museum = Museum.open(path.resolve(dir));
    const v = runtime.load(museum, Number(versionArg));
    const prompts = samples.map((s) => s.caption);
    const resolved = runtime.resolvePrompt(v, prompts[0]);
    const emb = runtime.encodePrompt(v, prompts, '');
    const sums = { cond: 0, uncond: 0, base: 0, baseU: 0, kept: 0, moved: 0 };
    const withLora = runtime.unetFor(v, resolved.adapter);
    const base = runtime.unetFor(v, null);
    for (const { t, x } of inputs) {
      const r = tf.tidy(() => {
        const [c1, u1] = [withLora.forward(x, t, emb.embeddings), withLora.forward(x, t, emb.negativeEmbeddings)];
        const [c0, u0] = [base.forward(x, t, emb.embeddings), base.forward(x, t, emb.negativeEmbeddings)];
        const sq = (a: tf.Tensor) => tf.sum(tf.square(a)).dataSync()[0];
        const dc = tf.sub(c1, c0);
        const du = tf.sub(u1, u0);
        return { cond: sq(dc), uncond: sq(du), base: sq(c0), baseU: sq(u0), kept: sq(tf.sub(dc, du)), moved: sq(dc) };
      });
      for (const k of Object.keys(sums) as Array<keyof typeof sums>) sums[k] += r[k];
    }
    tf.dispose([emb.embeddings, emb.negativeEmbeddings]);
    console.log(
      JSON.stringify({
        museum: dir,
        version: v.version,
        style,
        cond_drift: +Math.sqrt(sums.cond / sums.base).toFixed(4),
        uncond_drift: +Math.sqrt(sums.uncond / sums.baseU).toFixed(4),
        guidance_kept: +Math.sqrt(sums.kept / sums.moved).toFixed(4),
      }),
    );
    runtime.unload(v);
  }
  tf.dispose(inputs.map((i) => i.x));
  runtime.dispose();
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
