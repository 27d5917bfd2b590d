/** Caption grammar of the world (what the text encoder sees). */
import { COLOURS, SHAPES, type Colour, type Shape } from './content';
import { isBenchmarkStyle, isStyle, type BenchmarkStyle, type Style } from './styles';

/** `a {colour} {shape}`: the base (plain) caption and the content part of every prompt. */
export function contentPrompt(colour: Colour, shape: Shape): string {
  return `a ${colour} ${shape}`;
}

/** The placeholder token a learned benchmark style is bound to, e.g. `<neon>`. */
export function styleToken(style: BenchmarkStyle): string {
  return `<${style}>`;
}

/** Benchmark prompt `a {colour} {shape} in <{style}>`. */
export function benchmarkPrompt(colour: Colour, shape: Shape, style: BenchmarkStyle): string {
  return `${contentPrompt(colour, shape)} in ${styleToken(style)}`;
}

/**
 * Caption of a world image: `a red star` (plain), `a red star, sketch` (pre-training styles),
 * `a red star in <neon>` (benchmark styles, as in their few-shot sets).
 */
export function caption(colour: Colour, shape: Shape, style: Style): string {
  if (style === 'plain') return contentPrompt(colour, shape);
  if (isBenchmarkStyle(style)) return benchmarkPrompt(colour, shape, style);
  return `${contentPrompt(colour, shape)}, ${style}`;
}

export interface ParsedCaption {
  colour: Colour;
  shape: Shape;
  /** null for a plain caption. */
  style: Style | null;
  /** True when the style was given as a `<token>`. */
  token: boolean;
}

/** Parses any caption produced by `caption`/`benchmarkPrompt`; null if it is not one. */
export function parseCaption(text: string): ParsedCaption | null {
  const m = /^a (\w+) (\w+)(?:, (\w+)| in <(\w+)>)?$/.exec(text.trim());
  if (!m) return null;
  const [, colour, shape, named, token] = m;
  if (!(COLOURS as readonly string[]).includes(colour) || !(SHAPES as readonly string[]).includes(shape)) return null;
  const style = named ?? token ?? null;
  if (style !== null && !isStyle(style)) return null;
  return { colour: colour as Colour, shape: shape as Shape, style: style as Style | null, token: token !== undefined };
}
