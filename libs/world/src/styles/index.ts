/** The renderings of the world: base, pre-training and benchmark styles. */
import { type ContentParams, shapeField } from '../content';
import { Rng } from '../rng';
import { blueprint } from './blueprint';
import { newCanvas, resetScratch, scratch, toBytes, type StyleRenderer } from './common';
import { mosaic } from './mosaic';
import { neon } from './neon';
import { pixel } from './pixel';
import { plain } from './plain';
import { pointillism } from './pointillism';
import { sketch } from './sketch';
import { stripes } from './stripes';
import { watercolor } from './watercolor';

/** Styles the Atelier base model is pre-trained on (named in captions). */
export const PRETRAIN_STYLES = ['sketch', 'watercolor', 'pixel'] as const;
/** Styles never seen in pre-training, learned one after another in this order. */
export const BENCHMARK_STYLES = ['stripes', 'pointillism', 'blueprint', 'mosaic', 'neon'] as const;
/** Every rendering, base first. */
export const ALL_STYLES = ['plain', ...PRETRAIN_STYLES, ...BENCHMARK_STYLES] as const;

export type PretrainStyle = (typeof PRETRAIN_STYLES)[number];
export type BenchmarkStyle = (typeof BENCHMARK_STYLES)[number];
export type Style = (typeof ALL_STYLES)[number];

export const STYLE_RENDERERS: Record<Style, StyleRenderer> = {
  plain,
  sketch,
  watercolor,
  pixel,
  stripes,
  pointillism,
  blueprint,
  mosaic,
  neon,
};

export function isStyle(s: string): s is Style {
  return (ALL_STYLES as readonly string[]).includes(s);
}
export function isBenchmarkStyle(s: string): s is BenchmarkStyle {
  return (BENCHMARK_STYLES as readonly string[]).includes(s);
}
export function isPretrainStyle(s: string): s is PretrainStyle {
  return (PRETRAIN_STYLES as readonly string[]).includes(s);
}

/** Renders content in a style; all of the style's per-image variation is drawn from `rng`. */
export function renderStyle(style: Style, content: ContentParams, rng: Rng, out?: Uint8Array): Uint8Array {
  const renderer = STYLE_RENDERERS[style];
  if (!renderer) throw new Error(`unknown style '${style}'`);
  resetScratch();
  const field = shapeField(content, renderer.exactWithin, { d: scratch(), cov: scratch() });
  const img = newCanvas();
  renderer.render(field, rng, img);
  return toBytes(img, out);
}

export type { StyleRenderer } from './common';
