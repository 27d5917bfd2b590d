/** The command line as a client: every remote function against a `museum start` stack in this process (real sockets). */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeImage, initBackend, pngFromRgbBytes, tf } from '@museum/tensor';
import { museum } from '@museum/proto';
import { writeTinyPipelineFolder } from '@museum/rpc';
import { startAll, type RunningStack } from '../src/commands/start';
import { buildProgram } from '../src/program';
import {
  DEFAULT_GATEWAY_ADDRESS,
  DEFAULT_TRAINER_ADDRESS,
  formatRemoteStyles,
  gallerySubject,
  gatewayAddress,
  remoteGallery,
  remoteGenerate,
  remoteGenerateCommand,
  remoteLearn,
  remoteListStyles,
  trainerAddress,
} from '../src/commands/client';

let tmp: string;
let stack: RunningStack;
let gw: string;
let tr: string;

async function stripes(a: number[], b: number[], period = 4): Promise<Buffer> {
  const rgb = new Uint8Array(16 * 16 * 3);
  for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) rgb.set(Math.floor((x + y) / period) % 2 ? a : b, (y * 16 + x) * 3);
  return pngFromRgbBytes(rgb, 16, 16);
}

/** A folder of style images: PNGs (one with a caption), and a file that is not an image. */
async function styleFolder(name: string, colours: number[][]): Promise<string> {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  for (let i = 0; i < colours.length; i++) fs.writeFileSync(path.join(dir, `img${i}.png`), await stripes(colours[i], [255, 255, 255], 3 + i));
  fs.writeFileSync(path.join(dir, 'img0.txt'), 'a red star\n');
  fs.writeFileSync(path.join(dir, 'notes.md'), 'not an image');
  return dir;
}

async function shapeOf(file: string): Promise<number[]> {
  const t = await decodeImage(fs.readFileSync(file));
  const s = t.shape;
  t.dispose();
  return s;
}

beforeAll(async () => {
  await initBackend({ log: () => {} });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-client-'));
  writeTinyPipelineFolder(path.join(tmp, 'model'));
  stack = await startAll({ model: path.join(tmp, 'model'), museumDir: path.join(tmp, 'museum'), host: '127.0.0.1', maxMessageMb: '64', portBase: '0' }, () => {}, {});
  await stack.ready;
  gw = stack.addresses.gateway;
  tr = stack.addresses.trainer;
});

afterAll(async () => {
  await stack?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('addresses default to the local `museum start` (gateway 50051, trainer 50055), then the environment, then the flag', () => {
  expect([DEFAULT_GATEWAY_ADDRESS, DEFAULT_TRAINER_ADDRESS]).toEqual(['127.0.0.1:50051', '127.0.0.1:50055']);
  expect(gatewayAddress(true, {})).toBe('127.0.0.1:50051');
  expect(gatewayAddress(undefined, { MUSEUM_GATEWAY_ADDR: 'gw:7000' })).toBe('gw:7000');
  expect(gatewayAddress('[::1]:9', { MUSEUM_GATEWAY_ADDR: 'gw:7000' })).toBe('[::1]:9');
  expect(trainerAddress(true, { MUSEUM_TRAINER_ADDR: 'trainer:50055' })).toBe('trainer:50055');
  expect(() => gatewayAddress('localhost', {})).toThrow(/HOST:PORT/);
  expect(() => trainerAddress('h:70000', {})).toThrow(/HOST:PORT/);
});

test('generate streams progress (every denoising step) and writes the PNG; the same seed gives the same file', async () => {
  const seen: string[] = [];
  const image = await remoteGenerate(gw, { prompt: 'a red star', seed: 4, steps: 3, guidance: 4, sampler: 'ddim' }, { onProgress: (p) => seen.push(`${p.stage}:${p.step}/${p.total}`) });
  const { STAGE_ENCODING: E, STAGE_DENOISING: D, STAGE_DECODING: C } = museum.v1.Stage;
  expect(seen).toEqual([`${E}:0/0`, `${D}:0/3`, `${D}:1/3`, `${D}:2/3`, `${D}:3/3`, `${C}:0/0`]);
  expect([image.width, image.height, image.museumVersion]).toEqual([16, 16, 0]);

  const out = path.join(tmp, 'out', 'star.png');
  expect(await remoteGenerateCommand(gw, { prompt: 'a red star', seed: 4, steps: 3, guidance: 4, sampler: 'ddim', out })).toBe(out);
  expect(Buffer.compare(fs.readFileSync(out), Buffer.from(image.png))).toBe(0);
  expect(await shapeOf(out)).toEqual([16, 16, 3]);

  await expect(remoteGenerate(gw, { prompt: 'a red star', sampler: 'plms' })).rejects.toThrow(/--sampler must be one of ddim, dpmpp-2m, euler-a/);
  await expect(remoteGenerate(gw, { prompt: '', steps: 2 })).rejects.toThrow(/^INVALID_ARGUMENT: prompt: must not be empty/);
});

test('errors name what to fix: nothing listening, or the wrong service at the address', async () => {
  const closed = '127.0.0.1:9'; // discard port: nothing listens there
  await expect(remoteGenerate(closed, { prompt: 'a red star', steps: 2 }, { timeoutMs: 5000 })).rejects.toThrow(/no gateway answers at 127\.0\.0\.1:9 .*museum start/);
  await expect(remoteListStyles(gw)).rejects.toThrow(new RegExp(`${gw.replace(/\./g, '\\.')} is not a trainer`));
  await expect(remoteLearn(tr, { name: 'x', images: path.join(tmp, 'nope') })).rejects.toThrow(/is not a folder/);
});

test('learn uploads a folder and follows the job to its version; styles lists it; generate uses it; the gallery draws a tile per style', async () => {
  expect(formatRemoteStyles(await remoteListStyles(tr), tr)).toMatch(/museum version 0\nno styles yet/);

  const statuses: museum.v1.JobStatus[] = [];
  let submitted: string[] = [];
  const r = await remoteLearn(tr, { name: 'stripes', images: await styleFolder('stripes', [[255, 0, 0], [0, 0, 255]]), steps: 2, seed: 1 }, {
    onStatus: (s) => statuses.push(s),
    onSubmitted: (_id, files) => (submitted = files),
  });
  expect(submitted).toEqual(['img0.png', 'img1.png']);
  expect(r.skipped).toEqual([{ file: 'notes.md', reason: expect.stringMatching(/^not /) }]);
  expect(r.status).toMatchObject({ state: museum.v1.JobState.JOB_STATE_SUCCEEDED, museumVersion: 1, style: 'stripes', step: 2, totalSteps: 2 });
  expect(statuses.some((s) => s.state === museum.v1.JobState.JOB_STATE_RUNNING)).toBe(true);
  expect(statuses.at(-1)!.state).toBe(museum.v1.JobState.JOB_STATE_SUCCEEDED);

  // the same name again: the trainer's ALREADY_EXISTS, as it said it
  await expect(remoteLearn(tr, { name: 'stripes', images: path.join(tmp, 'stripes'), steps: 2 })).rejects.toThrow(/^ALREADY_EXISTS: name: style "stripes" is already in the museum/);

  const listed = await remoteListStyles(tr);
  expect(listed).toEqual({ museumVersion: 1, styles: [{ name: 'stripes', token: '<stripes>', addedInVersion: 1 }] });
  expect(formatRemoteStyles(listed, tr)).toMatch(/#\s+style\s+name\s+added in\n0\s+<stripes>\s+stripes\s+1/);

  const styled = await remoteGenerate(gw, { prompt: 'a red star in <stripes>', seed: 2, steps: 2 });
  expect(styled.museumVersion).toBe(1);

  await remoteLearn(tr, { name: 'dots', images: await styleFolder('dots', [[0, 160, 0]]), steps: 2, seed: 2 });
  const out = path.join(tmp, 'gallery.png');
  const tiles: number[] = [];
  const g = await remoteGallery({ gateway: gw, trainer: tr, out, steps: 2, seed: 5 }, { onTile: (done) => tiles.push(done) });
  expect(g.prompts).toEqual([`${gallerySubject(0)} in <stripes>`, `${gallerySubject(1)} in <dots>`]);
  expect(g.prompts[0]).toMatch(/^a \w+ \w+ in <stripes>$/);
  expect(g.museumVersion).toBe(2);
  expect(tiles).toEqual([1, 2]);
  // two 16x16 tiles side by side with 2 px of padding around and between them
  expect(await shapeOf(out)).toEqual([16 + 4, 2 * 16 + 3 * 2, 3]);
  expect([g.width, g.height]).toEqual([38, 20]);
  // the tiles are the images a direct Generate of the same prompt, seed and version makes
  const first = await remoteGenerate(gw, { prompt: g.prompts[0], seed: 5, steps: 2, museumVersion: 2 });
  const [grid, tile] = await Promise.all([decodeImage(fs.readFileSync(out)), decodeImage(first.png)]);
  const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.slice(grid, [2, 2, 0], [16, 16, 3]), tile))).dataSync()[0]);
  tf.dispose([grid, tile]);
  expect(diff).toBeLessThanOrEqual(1 / 255 + 1e-6);
  expect(fs.existsSync(out)).toBe(true);

  // a version without styles has nothing to draw
  await expect(remoteGallery({ gateway: gw, trainer: tr, out: path.join(tmp, 'none.png'), museumVersion: 0 })).rejects.toThrow(/version 0 has no learned styles yet/);
});

/** Run `museum ...args` in this process; resolves to what it printed on stdout. */
async function museumCli(...args: string[]): Promise<string> {
  const out: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out.push(String(chunk));
    return true;
  });
  const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    await buildProgram().exitOverride().parseAsync(['node', 'museum', ...args]);
  } finally {
    spy.mockRestore();
    err.mockRestore();
  }
  return out.join('');
}

test('the commands with --address: generate, styles, learn and gallery talk to the running services', async () => {
  const out = path.join(tmp, 'cli', 'star.png');
  await museumCli('generate', 'a red star', '--address', gw, '--steps', '2', '--seed', '7', '-o', out);
  const direct = await remoteGenerate(gw, { prompt: 'a red star', steps: 2, seed: 7, guidance: 7.5, sampler: 'ddim' });
  expect(Buffer.compare(fs.readFileSync(out), Buffer.from(direct.png))).toBe(0);

  const before = JSON.parse(await museumCli('styles', '--address', tr, '--json')) as { museumVersion: string; styles: unknown[] };
  const printed = await museumCli('learn', '--address', tr, '--name', 'cli-style', '--images', path.join(tmp, 'stripes'), '--steps', '2');
  expect(printed).toMatch(new RegExp(`^committed version ${Number(before.museumVersion) + 1} on the trainer at .*: <cli-style> \\(2 images, 2 steps\\)`));
  const after = JSON.parse(await museumCli('styles', '--address', tr, '--json')) as { museumVersion: string; styles: Array<{ name: string }> };
  expect(after.styles.map((s) => s.name)).toEqual([...before.styles.map((x) => (x as { name: string }).name), 'cli-style']);
  expect(await museumCli('styles', '--address', tr, '--version', '0')).toMatch(/museum version 0\nno styles yet/);

  const gallery = path.join(tmp, 'cli', 'gallery.png');
  await museumCli('gallery', '-o', gallery, '--address', gw, '--trainer', tr, '--steps', '2', '--columns', '1');
  // one column: a tile per style, stacked
  expect(await shapeOf(gallery)).toEqual([after.styles.length * 18 + 2, 20, 3]);

  await expect(museumCli('generate', 'a red star', '--address', gw, '--model', tmp)).rejects.toThrow(/--model and --museum are for in-process generation/);
});

test('aborting a remote learn cancels the job on the trainer; nothing is committed', async () => {
  const ac = new AbortController();
  const t0 = Date.now();
  const before = (await remoteListStyles(tr)).museumVersion;
  const p = remoteLearn(tr, { name: 'slow', images: await styleFolder('slow', [[10, 10, 10]]), steps: 2000 }, {
    signal: ac.signal,
    onStatus: (s) => {
      if (s.state === museum.v1.JobState.JOB_STATE_RUNNING && s.step >= 1) ac.abort();
    },
  });
  await expect(p).rejects.toThrow(/CANCELLED/);
  const trainer = stack.services.get('trainer') as unknown as { jobs: { idle(): Promise<void> } };
  // the job was cancelled on the trainer, not left to run its 2000 steps
  await trainer.jobs.idle();
  expect(Date.now() - t0).toBeLessThan(30_000);
  expect((await remoteListStyles(tr)).museumVersion).toBe(before);
  expect((await remoteListStyles(tr)).styles.map((s) => s.name)).not.toContain('slow');
});
