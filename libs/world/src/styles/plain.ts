/** `plain`: the content as a flat anti-aliased fill on a light, flat background. */
import { PIXELS } from '../content';
import { blend, contentColour, fill, hsl, hueAvoiding, type StyleRenderer } from './common';

export const plain: StyleRenderer = {
  exactWithin: 1,
  render(f, rng, img) {
    const { colour } = f.content;
    const col = contentColour(colour, rng);
    // White content needs a darker (mid-tone) background to stay visible.
    const bg =
      colour === 'white'
        ? hsl(rng.range(0, 360), rng.range(0.1, 0.3), rng.range(0.5, 0.64))
        : hsl(hueAvoiding(rng, colour), rng.range(0.08, 0.35), rng.range(0.84, 0.94));
    fill(img, bg);
    const cov = f.cov;
    for (let i = 0; i < PIXELS; i++) if (cov[i] > 0) blend(img, i, col, cov[i]);
  },
};
