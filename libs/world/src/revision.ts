/**
 * The world's rendering revision: bumped whenever a rendering changes what an image of some content looks
 * like, so a model's training record can say which world each stretch of its training saw.
 *
 * 1: the world up to 2026-12-07.
 * 2: white watercolor (gouache) on one warm paper tone (hue 25 ± 15), not a warm/cool pick (25 or 215).
 */
export const WORLD_REVISION = 2;
