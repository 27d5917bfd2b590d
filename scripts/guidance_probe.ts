/**
 * One content mode of the base model across guidance scales: every shape in one colour and pre-training style,
 * `seeds` seeds each, generated at each guidance scale and judged by the style instrument (the bench-base
 * protocol's sampler, but its own seeds 1..n, so it is not a rerun of the benchmark's images):
 *
 *   node -r ./scripts/ts-register.js scripts/guidance_probe.ts watercolor white 1,3,5,7.5,10 OUT.json [SHEET.png]
 *
 * A scale written `7.5@0-600` guides only at timesteps 0…600 (the pipeline's guidanceInterval).
 * A bare scale guides at every step, whatever the folder's sampling_config.json recommends.
 */
import * as fs from 'fs';
import * as path from 'path';
import { initBackend, tf, imageGrid, encodePng } from '@museum/tensor';
import { StableDiffusionPipeline } from '@museum/models';
import { disposeInstruments, loadInstruments, toInstrumentRange } from '@museum/instruments';
import { labelCounts } from '@museum/bench';
import { COLOURS, PRETRAIN_STYLES, SHAPES, caption, type Colour, type Style } from '@museum/world';

const SEEDS = 2;

async function main(): Promise<void> {
  const [style, colour, guidanceList, jsonOut, sheetOut] = process.argv.slice(2);
  const settings = (guidanceList ?? '').split(',').map((text) => {
    const [scale, interval] = text.split('@');
    const bounds = interval?.split('-').map(Number);
    return { text, guidance: Number(scale), guidanceInterval: bounds ? ([bounds[0], bounds[1]] as const) : null };
  });
  if (!(PRETRAIN_STYLES as readonly string[]).includes(style) || !COLOURS.includes(colour as Colour) || settings.some((g) => !Number.isFinite(g.guidance)) || !jsonOut) {
    throw new Error(`usage: guidance_probe.ts STYLE COLOUR G1,G2,… OUT.json [SHEET.png]; STYLE one of ${PRETRAIN_STYLES.join(', ')}`);
  }
  await initBackend({ log: () => {} });
  const inst = loadInstruments();
  const pipe = StableDiffusionPipeline.fromPretrained(path.resolve('models/atelier'));
  const prompts: string[] = [];
  const seeds: number[] = [];
  for (let s = 1; s <= SEEDS; s++) for (const shape of SHAPES) {
    prompts.push(caption(colour as Colour, shape, style as Style));
    seeds.push(s);
  }
  const byGuidance: Record<string, Record<string, number>> = {};
  const tiles: tf.Tensor3D[] = [];
  for (const { text, guidance, guidanceInterval } of settings) {
    const images = (await pipe.generate({ prompt: prompts, seed: seeds, steps: 25, guidance, guidanceInterval, sampler: 'ddim' })) as tf.Tensor4D;
    const x = toInstrumentRange(images);
    byGuidance[text] = labelCounts(inst.style.classify(x).labels);
    x.dispose();
    tiles.push(...tf.unstack(images) as tf.Tensor3D[]);
    images.dispose();
    process.stderr.write(`guidance ${text}: ${JSON.stringify(byGuidance[text])}\n`);
  }
  const report = { style, colour, images_per_guidance: prompts.length, sampler: 'ddim', steps: 25, by_guidance: byGuidance, command: `scripts/guidance_probe.ts ${process.argv.slice(2).join(' ')}`, date: new Date().toISOString() };
  fs.writeFileSync(jsonOut, JSON.stringify(report, null, 2) + '\n');
  if (sheetOut) {
    const sheet = imageGrid(tiles, prompts.length, { pad: 2, background: 1 });
    fs.writeFileSync(sheetOut, await encodePng(sheet, { range: '0,1' }));
    sheet.dispose();
  }
  tf.dispose(tiles);
  pipe.dispose();
  disposeInstruments(inst);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
