/**
 * How the style instrument judges true renderings of one style, per colour, before and after the Atelier VAE
 * (where a base-model style miss may come from the instrument or the codec rather than the UNet):
 *
 *   node -r ./scripts/ts-register.js scripts/style_by_colour.ts watercolor bench/results/watercolor-by-colour.json [sheet.png]
 */
import * as fs from 'fs';
import * as path from 'path';
import { initBackend, tf, imageGrid, encodePng } from '@museum/tensor';
import { loadModelFolder, type AutoencoderKL } from '@museum/models';
import { loadInstruments, disposeInstruments } from '@museum/instruments';
import { labelCounts, vaeRoundTrip } from '@museum/bench';
import { ALL_STYLES, COLOURS, deriveSeed, renderSample, rgbToFloat, type Style } from '@museum/world';

const PER_COLOUR = 32;

async function main(): Promise<void> {
  const [style, jsonOut, sheetOut] = process.argv.slice(2) as [Style, string, string | undefined];
  if (!ALL_STYLES.includes(style) || !jsonOut) throw new Error(`usage: style_by_colour.ts STYLE OUT.json [SHEET.png]; STYLE one of ${ALL_STYLES.join(', ')}`);
  await initBackend({ log: () => {} });
  const inst = loadInstruments();
  const vae = loadModelFolder<AutoencoderKL>(path.resolve('models/atelier/vae')).model;
  const byColour: Record<string, { original: Record<string, number>; reconstructed: Record<string, number> }> = {};
  const tiles: tf.Tensor3D[] = [];
  const px = 64 * 64 * 3;
  for (const colour of COLOURS) {
    const buf = new Float32Array(PER_COLOUR * px);
    for (let k = 0; k < PER_COLOUR; k++) rgbToFloat(renderSample({ style, colour, seed: deriveSeed('style-by-colour', style, colour, k) }).rgb, buf, k * px);
    const x = tf.tensor4d(buf, [PER_COLOUR, 64, 64, 3]);
    const rec = vaeRoundTrip(vae, x, 16);
    byColour[colour] = { original: labelCounts(inst.style.classify(x).labels), reconstructed: labelCounts(inst.style.classify(rec).labels) };
    tiles.push(...(tf.tidy(() => tf.unstack(tf.div(tf.add(tf.slice(x, 0, 8), 1), 2))) as tf.Tensor3D[]));
    x.dispose();
    rec.dispose();
  }
  const report = { style, per_colour: PER_COLOUR, by_colour: byColour, command: `scripts/style_by_colour.ts ${process.argv.slice(2).join(' ')}`, date: new Date().toISOString() };
  fs.writeFileSync(jsonOut, JSON.stringify(report, null, 2) + '\n');
  process.stdout.write(JSON.stringify(byColour) + '\n');
  if (sheetOut) {
    const sheet = imageGrid(tiles, 8, { pad: 2, background: 1 });
    fs.writeFileSync(sheetOut, await encodePng(sheet, { range: '0,1' }));
    sheet.dispose();
  }
  tiles.forEach((t) => t.dispose());
  vae.dispose();
  disposeInstruments(inst);
}

void main();
