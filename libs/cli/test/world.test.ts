import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend } from '@museum/tensor';
import { decodePng, fewShotSet } from '@museum/world';
import { buildProgram } from '../src/program';
import { readImageFolder } from '../src/commands/learn';

const run = (...args: string[]) => buildProgram().exitOverride().configureOutput({ writeErr: () => {} }).parseAsync(['node', 'museum', ...args]);

describe('museum world', () => {
  beforeAll(() => initBackend({ log: () => {} }));
  let tmp: string;
  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-world-'));
  });
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('few-shot writes the 8 training images with content captions that museum learn reads', async () => {
    const out = path.join(tmp, 'neon');
    await run('world', 'few-shot', 'neon', '--out', out);
    const folder = await readImageFolder(out);
    expect(folder.files).toHaveLength(8);
    expect(folder.skipped).toEqual([]);
    const set = fewShotSet('neon');
    folder.files.forEach((f, k) => {
      const png = decodePng(fs.readFileSync(path.join(out, f)));
      expect(Buffer.from(png.rgb).equals(Buffer.from(set[k].rgb))).toBe(true);
      expect(folder.captions[k]).toBe(`a ${set[k].colour} ${set[k].shape}`);
    });
  });

  test('few-shot refuses a non-benchmark style and a non-empty folder, writing nothing', async () => {
    await expect(run('world', 'few-shot', 'sketch', '--out', path.join(tmp, 'a'))).rejects.toThrow(/not a benchmark style/);
    expect(fs.existsSync(path.join(tmp, 'a'))).toBe(false);
    fs.writeFileSync(path.join(tmp, 'keep.txt'), 'x');
    await expect(run('world', 'few-shot', 'neon', '--out', tmp)).rejects.toThrow(/not empty/);
    expect(fs.readdirSync(tmp)).toEqual(['keep.txt']);
  });

  test('textures and sheet write PNGs; bad counts are refused', async () => {
    await run('world', 'textures', '--out', path.join(tmp, 't.png'), '--columns', '3');
    const t = decodePng(fs.readFileSync(path.join(tmp, 't.png')));
    expect(t.width).toBe(2 * (3 * 66 + 2));
    await expect(run('world', 'textures', '--out', path.join(tmp, 'u.png'), '--columns', '0')).rejects.toThrow(/--columns must be a positive integer/);
    await run('world', 'sheet', '--out', path.join(tmp, 's.png'), '--columns', '4');
    expect(decodePng(fs.readFileSync(path.join(tmp, 's.png'))).width).toBeGreaterThan(4 * 64);
  });
});
