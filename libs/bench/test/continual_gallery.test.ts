/** The gallery of the continual benchmark: labelled rows and columns of cells, grey where nothing was learned. */
import { decodePng, type RgbImage } from '@museum/world';
import { drawGallery, drawText, galleryPng, heatCell, textHeight, textWidth } from '../src/gallery';

function solid(w: number, h: number, c: [number, number, number]): RgbImage {
  const rgb = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) rgb.set(c, i * 3);
  return { rgb, width: w, height: h };
}

const px = (img: RgbImage, x: number, y: number) => Array.from(img.rgb.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));

test('text is drawn with ink inside its box and nowhere else', () => {
  const img = solid(80, 20, [255, 255, 255]);
  drawText(img, 'stripes t1', 2, 2, 1);
  let inside = 0;
  let outside = 0;
  for (let y = 0; y < 20; y++) {
    for (let x = 0; x < 80; x++) {
      if (px(img, x, y)[0] === 255) continue;
      if (x >= 2 && x < 2 + textWidth('stripes t1') && y >= 2 && y < 2 + textHeight()) inside++;
      else outside++;
    }
  }
  expect(inside).toBeGreaterThan(40);
  expect(outside).toBe(0);
  expect(textWidth('ab', 2)).toBe(2 * (2 * 6 - 1));
});

test('cells land in their row and column, resized to the tile; missing cells are grey', () => {
  const red = solid(8, 8, [250, 0, 0]);
  const blue = solid(16, 16, [0, 0, 250]);
  const block = { title: 'museummaker', rowLabels: ['stripes', 'neon'], columnLabels: ['t1', 't2'], cells: [[red, red], [null, blue]] };
  const opts = { tile: 10, textScale: 1, pad: 2 };
  const img = drawGallery([block], opts);
  const left = 2 + textWidth('stripes') + 2;
  const top = 2 + textHeight() + 2 + textHeight() + 2;
  const centre = (r: number, c: number) => px(img, left + c * 12 + 5, top + r * 12 + 5);
  expect(centre(0, 0)).toEqual([250, 0, 0]);
  expect(centre(0, 1)).toEqual([250, 0, 0]);
  expect(centre(1, 0)).toEqual([228, 228, 228]);
  expect(centre(1, 1)).toEqual([0, 0, 250]);
  expect(img.width).toBe(left + 2 * 12);
  const png = decodePng(galleryPng([block, { ...block, title: 'finetune' }], opts));
  expect(png.height).toBe(2 + 2 * (img.height - 2));
  expect(() => drawGallery([{ ...block, cells: [[red], [null, blue]] }])).toThrow(/row of 1 cells for 2 columns/);
});

test('blocks side by side: the second block of a row starts right of the first, the third on the next row', () => {
  const red = solid(8, 8, [250, 0, 0]);
  const blue = solid(8, 8, [0, 0, 250]);
  const green = solid(8, 8, [0, 250, 0]);
  const opts = { tile: 10, textScale: 1, pad: 2 };
  const one = (title: string, c: RgbImage) => ({ title, rowLabels: ['s'], columnLabels: ['t1'], cells: [[c]] });
  const single = drawGallery([one('a', red)], opts);
  const img = drawGallery([one('a', red), one('b', blue), one('c', green)], { ...opts, columns: 2 });
  const gap = 6 * 2;
  expect(img.width).toBe(2 * single.width + gap);
  expect(img.height).toBe(2 + 2 * (single.height - 2));
  const left = 2 + textWidth('s') + 2;
  const top = 2 + textHeight() + 2 + textHeight() + 2;
  expect(px(img, left + 5, top + 5)).toEqual([250, 0, 0]);
  expect(px(img, single.width + gap + left + 5, top + 5)).toEqual([0, 0, 250]);
  expect(px(img, left + 5, single.height - 2 + top + 5)).toEqual([0, 250, 0]);
});

test('a heat cell goes from red (0) through yellow to green (1) and prints its value in %', () => {
  const corner = (v: number) => px(heatCell(v, 30), 0, 0);
  const [lo, mid, hi] = [corner(0), corner(0.5), corner(1)];
  expect(lo[0]).toBeGreaterThan(lo[1]); // reddish
  expect(hi[1]).toBeGreaterThan(hi[0]); // greenish
  expect(mid[0]).toBeGreaterThan(240);
  expect(mid[1]).toBeGreaterThan(220);
  expect(corner(-1)).toEqual(lo);
  expect(corner(2)).toEqual(hi);
  // ink only where the label is: "100" is three digits wide, "0" one
  const ink = (img: RgbImage) => {
    let n = 0;
    for (let i = 0; i < img.width * img.height; i++) if (img.rgb[i * 3] === 30 && img.rgb[i * 3 + 1] === 30) n++;
    return n;
  };
  expect(ink(heatCell(1, 40))).toBeGreaterThan(2 * ink(heatCell(0, 40)));
  expect(ink(heatCell(0, 40))).toBeGreaterThan(0);
});
