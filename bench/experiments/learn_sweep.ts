/**
 * Tuning sweep for style learning (development tool, not part of the product):
 *
 *   node -r ./scripts/ts-register.js bench/experiments/learn_sweep.ts VARIANT.json OUT.json
 *
 * VARIANT.json: { "method": "museummaker", "styles": ["stripes", "pointillism"], "learn": {LearnSettings},
 *                 "weights": {LossWeights}, "components": {LossComponents}, "seeds": [1], "colours": 2, "base": 2,
 *                 "from": { "museum": DIR, "version": N }, "judge": [earlier styles also judged after each task] }
 * Learns the styles in order into a fresh museum (in a temp folder) on the bundled Atelier model and after
 * each task judges every learned style on the benchmark's held-out grid (8 shapes × colours × seeds, DDIM 25,
 * guidance 7.5) with the shipped instruments: S, C, C on held-out shapes, Gram distance. With "base": N it also
 * judges the base prompts (8 shapes × N colours, seed 1) before the first task and after the last (base
 * retention). Writes OUT.json and a PNG strip of the last task's images per style beside it.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend, tf } from '@museum/tensor';
import { StableDiffusionPipeline } from '@museum/models';
import { Museum, MuseumRuntime, learnStyle, modelsFromPipeline, type MethodName } from '@museum/museum';
import { copyMuseumAt } from './museum_copy';
import { ContinualJudge, baseJobs, heldOutJobs, shapeShare, type PromptJob } from '@museum/bench';
import { loadInstruments } from '@museum/instruments';
import { encodePng, fewShotSet, heldOutShapes, type BenchmarkStyle } from '@museum/world';

async function main(): Promise<void> {
  const [variantFile, outFile] = process.argv.slice(2);
  const v = JSON.parse(fs.readFileSync(variantFile, 'utf8'));
  await initBackend();
  const root = path.resolve(__dirname, '..', '..');
  const modelDir = path.join(root, 'models', 'atelier');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sweep-'));
  if (v.from) copyMuseumAt(v.from.museum, v.from.version, dir);
  const museum = Museum.openOrCreate(path.join(dir, 'museum'), { baseModelDir: modelDir });
  const pipe = StableDiffusionPipeline.fromPretrained(modelDir);
  const models = modelsFromPipeline(pipe);
  const judge = new ContinualJudge(loadInstruments(path.join(root, 'models', 'instruments')), 16);
  const cfg = { seeds: v.seeds ?? [1], colours_per_shape: v.colours ?? 2 };
  const out: Record<string, unknown> = { variant: v, tasks: [] as unknown[] };
  const styles: BenchmarkStyle[] = v.styles;
  const generate = async (rt: MuseumRuntime, version: number, jobs: PromptJob[]) =>
    (await rt.generate(rt.load(museum, version), { prompt: jobs.map((j) => j.prompt), seed: jobs.map((j) => j.seed), steps: 25, guidance: 7.5, sampler: 'ddim' })) as tf.Tensor4D;
  const judgeBase = async (version: number) => {
    if (!v.base) return undefined;
    const jobs = baseJobs({ base_seeds: [1], base_colours_per_shape: v.base });
    const rt = new MuseumRuntime(models, { baseHash: museum.base.hash });
    try {
      const images = await generate(rt, version, jobs);
      const r = judge.base(images, jobs);
      images.dispose();
      process.stderr.write(`${path.basename(variantFile)} base prompts at version ${version}: shape ${r.shape_acc.toFixed(2)} colour ${r.colour_acc.toFixed(2)}\n`);
      return { version, shape_acc: r.shape_acc, colour_acc: r.colour_acc, images: r.images };
    } finally {
      rt.dispose();
    }
  };
  out.base_before = await judgeBase(0);
  for (let t = 0; t < styles.length; t++) {
    const style = styles[t];
    const set = fewShotSet(style);
    const t0 = Date.now();
    let lastLog = 0;
    const r = await learnStyle(museum, style, set, {
      ...(v.learn ?? {}),
      weights: v.weights,
      components: v.components,
      method: (v.method ?? 'museummaker') as MethodName,
      models,
      captions: set.map((s) => s.caption),
      onProgress: (p) => {
        if (p.phase === 'train' && (p.step - lastLog >= 50 || p.step === p.total)) {
          lastLog = p.step;
          process.stderr.write(`${path.basename(variantFile)} ${style} step ${p.step}/${p.total} ${JSON.stringify(Object.fromEntries(Object.entries(p.losses).map(([k, x]) => [k, Number((x as number).toFixed(4))])))}\n`);
        }
      },
    });
    const learnSeconds = (Date.now() - t0) / 1000;
    const rt = new MuseumRuntime(models, { baseHash: museum.base.hash });
    const cells: unknown[] = [];
    try {
      for (const s of [...((v.judge ?? []) as BenchmarkStyle[]), ...styles.slice(0, t + 1)]) {
        const jobs = heldOutJobs(s, cfg);
        const images = await generate(rt, r.version, jobs);
        const cell = judge.cell(s, images, jobs);
        const heldC = shapeShare(cell.shapes, heldOutShapes(s)) ?? NaN;
        cells.push({ style: s, S: cell.S, C: cell.C, C_heldout: heldC, gram: cell.gram, style_labels: cell.style_labels });
        process.stderr.write(`${path.basename(variantFile)} after ${style}: ${s} S ${cell.S.toFixed(2)} C ${cell.C.toFixed(2)} Cheld ${heldC.toFixed(2)} gram ${cell.gram.toFixed(3)}\n`);
        if (t === styles.length - 1) {
          // a strip of the cell's images (first 16)
          const n = Math.min(16, images.shape[0]);
          const strip = tf.tidy(() => {
            const x = tf.slice(images, [0, 0, 0, 0], [n, -1, -1, -1]);
            const row = tf.concat(tf.unstack(x), 1);
            return tf.cast(tf.round(tf.mul(tf.clipByValue(row, 0, 1), 255)), 'int32');
          });
          const [h, w] = strip.shape;
          fs.writeFileSync(outFile.replace(/\.json$/, `-${s}.png`), encodePng(Uint8Array.from(strip.dataSync()), w, h));
          strip.dispose();
        }
        images.dispose();
      }
    } finally {
      rt.dispose();
    }
    (out.tasks as unknown[]).push({ task: t + 1, style, learnSeconds, metrics: r.style.metrics, cells });
    fs.writeFileSync(outFile, JSON.stringify(out, null, 2) + '\n');
  }
  out.base_after = await judgeBase(museum.latestVersion());
  fs.writeFileSync(outFile, JSON.stringify(out, null, 2) + '\n');
  judge.dispose();
  pipe.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
