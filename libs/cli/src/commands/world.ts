/**
 * `museum world …`: the procedural world on disk. `few-shot STYLE --out DIR` writes a benchmark
 * style's 8 training images with `<image>.txt` content captions, ready for `museum learn --images DIR`;
 * `sheet` and `textures` write contact sheets to look at.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import {
  BENCHMARK_STYLES, TEXTURE_KINDS, contentPrompt, encodePng, fewShotSet, isBenchmarkStyle, renderTexture, tileSheet, writeContactSheet,
} from '@museum/world';
import { intFlag } from '../flags';

/** Writes the style's few-shot set as `NN-colour-shape.png` + `.txt`; returns the files written. */
export function writeFewShotFolder(style: string, out: string): string[] {
  if (!isBenchmarkStyle(style)) throw new InvalidArgumentError(`'${style}' is not a benchmark style (${BENCHMARK_STYLES.join(', ')})`);
  const dir = path.resolve(out);
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0) throw new InvalidArgumentError(`--out ${dir} is not empty`);
  fs.mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  fewShotSet(style).forEach((s, k) => {
    const stem = `${String(k).padStart(2, '0')}-${s.colour}-${s.shape}`;
    fs.writeFileSync(path.join(dir, `${stem}.png`), encodePng(s.rgb, s.width, s.height));
    // The content only: `museum learn` adds `in <name>` itself.
    fs.writeFileSync(path.join(dir, `${stem}.txt`), contentPrompt(s.colour, s.shape) + '\n');
    files.push(`${stem}.png`);
  });
  return files;
}

/** A grid of generic textures (rows: kinds), as the autoencoder sees them. */
export function texturesSheetPng(columns: number, scale: number): Buffer {
  const rows = TEXTURE_KINDS.map((kind, r) => Array.from({ length: columns }, (_, c) => renderTexture(1000 * r + c, kind).rgb));
  return tileSheet(rows, { scale, background: 255 }).png;
}

export function registerWorld(program: Command): void {
  const world = program.command('world').description('the procedural world: few-shot style sets, contact sheets');
  world
    .command('few-shot <style>')
    .description(`write a benchmark style's 8 training images with content captions (${BENCHMARK_STYLES.join(', ')})`)
    .requiredOption('--out <dir>', 'an empty or new folder')
    .action((style: string, o: { out: string }) => {
      const files = writeFewShotFolder(style, o.out);
      process.stderr.write(`wrote ${files.length} images + captions to ${path.resolve(o.out)}\n`);
    });
  world
    .command('sheet')
    .description('contact sheet of every rendering (rows: styles, columns: shapes)')
    .requiredOption('--out <file>', 'PNG file')
    .option('--columns <n>', 'columns', '8')
    .option('--seed <n>', 'seed', '0')
    .action((o: { out: string; columns: string; seed: string }) => {
      writeContactSheet(path.resolve(o.out), { columns: intFlag('--columns', o.columns), seed: intFlag('--seed', o.seed, 0) });
    });
  world
    .command('textures')
    .description('contact sheet of the generic textures the autoencoder also trains on (rows: kinds)')
    .requiredOption('--out <file>', 'PNG file')
    .option('--columns <n>', 'columns', '8')
    .action((o: { out: string; columns: string }) => {
      fs.writeFileSync(path.resolve(o.out), texturesSheetPng(intFlag('--columns', o.columns) as number, 2));
    });
}
