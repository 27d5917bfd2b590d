/**
 * `runContinualBench` end to end on a tiny random pipeline and tiny random instruments: 2 styles, 2 steps,
 * one method in this process, then resumed from the work folder; a second method in a worker process.
 */
import { fork } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend, tf } from '@museum/tensor';
import { DEFAULT_LEARN_SETTINGS, DEFAULT_LOSS_WEIGHTS, Museum, settingsUsedBy, type MethodName } from '@museum/museum';
import { decodePng } from '@museum/world';
import { WorldClassifier, defaultClassifierConfig, defaultGramNet, saveInstrument } from '@museum/instruments';
import { workerScript } from '@museum/training';
import { continualGalleryPng, continualMatrixPng, formatContinualTable, heldOutJobs, prepareWorkDir, resolveContinualConfig, runContinualBench, type ContinualBenchOptions, type ContinualEvent, type WorkerReply, type WorkerRequest } from '../src/continual';
import { textWidth } from '../src/gallery';
import { writeTinyInstruments, writeTinyPipeline } from './continual_tiny';

let tmp: string;
let opts: ContinualBenchOptions;

beforeAll(async () => {
  await initBackend({ log: () => {} });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-continual-'));
  writeTinyPipeline(path.join(tmp, 'model'));
  const inst = writeTinyInstruments(path.join(tmp, 'instruments'));
  // a held-out accuracy in the style instrument's record, as the shipped ones carry
  const style = new WorldClassifier(defaultClassifierConfig('style', { sample_size: 16, block_out_channels: [4, 8], strides: [2, 2], norm_num_groups: 4, init_seed: 3 }));
  style.record = { heldout: { accuracy: 0.625 } } as never;
  saveInstrument(inst, style);
  style.dispose();
  opts = {
    modelDir: path.join(tmp, 'model'),
    instrumentsDir: inst,
    workDir: path.join(tmp, 'work'),
    methods: ['museummaker'],
    styles: ['stripes', 'pointillism'],
    steps: 2,
    learn: { batchSize: 2, featRegBatch: 1, rank: 2, alpha: 2, warmup: 1 },
    samplerSteps: 2,
    seeds: [1],
    coloursPerShape: 1,
    baseColoursPerShape: 1,
    gramReferences: 2,
    batch: 8,
  };
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const unit = (v: unknown) => typeof v === 'number' && v >= 0 && v <= 1;

test('learns 2 styles, judges every (task, style) cell and writes the report of BENCHMARK.md; a rerun resumes', async () => {
  defaultGramNet(); // the fixed Gram extractor lives for the process
  const before = tf.memory().numTensors;
  const events: ContinualEvent[] = [];
  const r = await runContinualBench({ ...opts, onEvent: (e) => events.push(e) });
  expect(tf.memory().numTensors).toBe(before);

  expect(Object.keys(r).sort()).toEqual(['config', 'instruments', 'methods']);
  expect(r.instruments).toEqual({ style_acc: 0.625, shape_acc: null });
  const m = r.methods.museummaker;
  for (const k of ['A', 'F', 'P', 'content_heldout', 'base_before', 'base_after', 'S', 'C', 'train_seconds_per_style', 'bytes_per_style']) expect(m).toHaveProperty(k);
  expect(m.S.map((row) => row.length)).toEqual([1, 2]);
  expect(m.C.map((row) => row.length)).toEqual([1, 2]);
  expect(m.G.map((row) => row.length)).toEqual([1, 2]);
  for (const v of [...m.S.flat(), ...m.C.flat(), m.A, m.P, m.content_heldout, m.base_before, m.base_after]) expect(unit(v)).toBe(true);
  expect(Math.abs(m.F!)).toBeLessThanOrEqual(1);
  // S and C are shares of the 8 images per cell (8 shapes × 1 colour × 1 seed)
  expect(heldOutJobs('stripes', r.config)).toHaveLength(8);
  for (const v of [...m.S.flat(), ...m.C.flat()]) expect(Number.isInteger(v * 8)).toBe(true);
  expect(m.A).toBeCloseTo((m.S[1][0] + m.S[1][1]) / 2, 12);
  expect(m.P).toBeCloseTo((m.S[0][0] + m.S[1][1]) / 2, 12);
  expect(m.F).toBeCloseTo(m.S[0][0] - m.S[1][0], 12);
  expect(m.gram_final.every((g) => g > 0 && g <= 2)).toBe(true);
  // every final cell's images are accounted for by the labels the style instrument gave them
  m.style_labels_final.forEach((labels, s) => {
    expect(Object.values(labels!).reduce((a, b) => a + b, 0)).toBe(8);
    expect(labels![r.config.styles[s]] ?? 0).toBe(m.S[1][s] * 8);
  });

  // costs come from the museum's files and manifests
  const museum = Museum.open(path.join(r.config.work_dir, 'methods', 'museummaker', 'museum'));
  expect(museum.latestVersion()).toBe(2);
  const v2 = museum.manifest(2);
  expect(m.bytes_by_version[1]).toBe(v2.lora!.bytes + v2.tokens!.bytes);
  expect(m.bytes_per_style).toBe(m.bytes_by_version[1] / 2);
  expect(m.train_seconds).toEqual(v2.styles.map((s) => s.trainSeconds));
  expect(m.train_seconds_per_style).toBeGreaterThan(0);
  expect(r.config).toMatchObject({ styles: ['stripes', 'pointillism'], methods: ['museummaker'], sampler: 'ddim', sampler_steps: 2, learn: { steps: 2 } });
  expect(events.some((e) => e.job === 'museummaker' && e.phase === 'learn' && e.task === 2)).toBe(true);
  expect(events.some((e) => e.job === 'base' && e.phase === 'done')).toBe(true);

  expect(formatContinualTable(r)).toMatch(/museummaker\s+\d\.\d{3}/);
  const png = decodePng(continualGalleryPng(r.config.work_dir, r));
  expect(png.width).toBeGreaterThan(2 * 64);
  expect(png.height).toBeGreaterThan(2 * 64);
  // accuracy matrix: one block of 2 styles × 2 tasks (tile 20, pad 4, font scale 2); style 2 after task 1 is grey (not learned yet)
  const matrix = decodePng(continualMatrixPng(r, ['museummaker'], 20));
  const at = (row: number, col: number) => {
    const x = 4 + textWidth('pointillism', 2) + 4 + col * 24 + 1;
    const y = 4 + 16 + 4 + 16 + 4 + row * 24 + 1;
    return Array.from(matrix.rgb.subarray((y * matrix.width + x) * 3, (y * matrix.width + x) * 3 + 3));
  };
  expect(at(1, 0)).toEqual([228, 228, 228]);
  for (const [row, col] of [[0, 0], [0, 1], [1, 1]]) expect(at(row, col)).not.toEqual([228, 228, 228]);
  expect(() => continualMatrixPng(r, ['nope'])).toThrow(/no results for method nope/);

  // a rerun reads the checkpoints: same numbers, no learning, no new versions
  const again: ContinualEvent[] = [];
  const r2 = await runContinualBench({ ...opts, onEvent: (e) => again.push(e) });
  expect(r2.methods).toEqual(r.methods);
  expect(again.map((e) => e.phase)).toEqual(['cached', 'cached']);
  expect(museum.latestVersion()).toBe(2);

  // the same model files elsewhere (another checkout) continue the folder: content hashes, not paths
  const moved = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-moved-model-'));
  fs.cpSync(opts.modelDir, moved, { recursive: true });
  const elsewhere: ContinualEvent[] = [];
  const r2b = await runContinualBench({ ...opts, modelDir: moved, onEvent: (e) => elsewhere.push(e) });
  expect(r2b.methods).toEqual(r.methods);
  expect(elsewhere.map((e) => e.phase)).toEqual(['cached', 'cached']);
  fs.rmSync(moved, { recursive: true, force: true });

  // interrupted after learning task 2 but before judging it: the rerun judges row 2 again and learns nothing
  const mdir = path.join(r.config.work_dir, 'methods', 'museummaker');
  fs.rmSync(path.join(mdir, 'result.json'));
  const rows = JSON.parse(fs.readFileSync(path.join(mdir, 'rows.json'), 'utf8'));
  fs.writeFileSync(path.join(mdir, 'rows.json'), JSON.stringify(rows.slice(0, 1)));
  const resumed: ContinualEvent[] = [];
  const r3 = await runContinualBench({ ...opts, onEvent: (e) => resumed.push(e) });
  expect(resumed.some((e) => e.phase === 'learn')).toBe(false);
  expect(resumed.some((e) => e.phase === 'eval' && e.task === 2)).toBe(true);
  expect(resumed.some((e) => e.phase === 'eval' && e.task === 1)).toBe(false);
  expect(r3.methods.museummaker.S).toEqual(m.S);
  expect(r3.methods.museummaker.C).toEqual(m.C);
  expect(museum.latestVersion()).toBe(2);

  // another protocol in the same folder is refused, not mixed in
  await expect(runContinualBench({ ...opts, guidance: 3 })).rejects.toThrow(/another protocol \(differs in: guidance\)/);
  await expect(runContinualBench({ ...opts, steps: 3 })).rejects.toThrow(/other settings: museummaker \(differs in: learn\.steps\); use --redo museummaker/);
  await expect(runContinualBench({ ...opts, weights: { sdl: 2 } })).rejects.toThrow(/museummaker \(differs in: weights\.sdl\)/);
  // the stored settings are every setting the method reads, resolved, so a change of the library's defaults is a change too
  const settingsFile = path.join(mdir, 'settings.json');
  const stored = JSON.parse(fs.readFileSync(settingsFile, 'utf8'));
  expect(stored).toEqual(settingsUsedBy('museummaker', { ...DEFAULT_LEARN_SETTINGS, ...opts.learn, steps: 2 }, DEFAULT_LOSS_WEIGHTS));
  expect(r.methods.museummaker.settings).toEqual(stored);
  fs.writeFileSync(settingsFile, JSON.stringify({ ...stored, learn: { ...stored.learn, lr: stored.learn.lr / 2 } }));
  await expect(runContinualBench(opts)).rejects.toThrow(/differs in: learn\.lr/);
  fs.writeFileSync(settingsFile, JSON.stringify(stored));
  // a weight museummaker does not read (C-LoRA's) leaves its results valid
  const other: ContinualEvent[] = [];
  const r4 = await runContinualBench({ ...opts, weights: { clora: 7 }, onEvent: (e) => other.push(e) });
  expect(other.map((e) => e.phase)).toEqual(['cached', 'cached']);
  expect(r4.methods.museummaker.S).toEqual(m.S);
  // a settings file from before components were recorded: museummaker then kept no token apart, as it does by
  // default now, so its results hold; one learned while museummaker kept tokens apart must be redone
  const { components: _components, ...withoutComponents } = stored;
  fs.writeFileSync(settingsFile, JSON.stringify(withoutComponents));
  const old: ContinualEvent[] = [];
  await runContinualBench({ ...opts, onEvent: (e) => old.push(e) });
  expect(old.map((e) => e.phase)).toEqual(['cached', 'cached']);
  fs.writeFileSync(settingsFile, JSON.stringify({ ...stored, components: { ...stored.components, tokenOrthogonal: true } }));
  await expect(runContinualBench(opts)).rejects.toThrow(/museummaker \(differs in: components\.tokenOrthogonal\); use --redo museummaker/);
  fs.writeFileSync(settingsFile, JSON.stringify(stored));
  // one from before noiseOffset existed trained on zero-mean noise: it still holds for noiseOffset 0, not for another
  const { noiseOffset: _offset, ...learnWithoutOffset } = stored.learn;
  fs.writeFileSync(settingsFile, JSON.stringify({ ...stored, learn: learnWithoutOffset }));
  const zero: ContinualEvent[] = [];
  await runContinualBench({ ...opts, onEvent: (e) => zero.push(e) });
  expect(zero.map((e) => e.phase)).toEqual(['cached', 'cached']);
  fs.writeFileSync(settingsFile, JSON.stringify({ ...stored, learn: learnWithoutOffset }));
  await expect(runContinualBench({ ...opts, learn: { ...opts.learn, noiseOffset: 0.1 } })).rejects.toThrow(/museummaker \(differs in: learn\.noiseOffset\)/);
  fs.writeFileSync(settingsFile, JSON.stringify(stored));
  // one from before featRegEmptyShare existed drew the empty prompt uniformly with the earlier styles
  const { featRegEmptyShare: _share, ...learnWithoutShare } = stored.learn;
  expect(stored.learn.featRegEmptyShare).toBe('uniform');
  fs.writeFileSync(settingsFile, JSON.stringify({ ...stored, learn: learnWithoutShare }));
  const uniform: ContinualEvent[] = [];
  await runContinualBench({ ...opts, onEvent: (e) => uniform.push(e) });
  expect(uniform.map((e) => e.phase)).toEqual(['cached', 'cached']);
  await expect(runContinualBench({ ...opts, learn: { ...opts.learn, featRegEmptyShare: 0.5 } })).rejects.toThrow(/museummaker \(differs in: learn\.featRegEmptyShare\)/);
  fs.writeFileSync(settingsFile, JSON.stringify(stored));
});

test('settings are held per method: a baseline resumes when only MuseumMaker’s settings change; --redo relearns one method', async () => {
  const o = { ...opts, workDir: path.join(tmp, 'per-method'), methods: ['finetune'] as MethodName[] };
  const first = await runContinualBench(o);
  const ft = first.methods.finetune;
  expect(ft.settings.weights).toEqual({ diffusion: 1 });
  // MuseumMaker's regularization is not read by finetune: its results resume
  const events: ContinualEvent[] = [];
  const tuned = { ...o, learn: { ...o.learn, weightRegForm: 'input-subspace' as const, featRegInputs: 'replay' as const }, weights: { weightReg: 5, featReg: 3 } };
  const again = await runContinualBench({ ...tuned, onEvent: (e) => events.push(e) });
  expect(events.map((e) => e.phase)).toEqual(['cached', 'cached']);
  expect(again.methods.finetune.S).toEqual(ft.S);
  // the LoRA learning rate is: refused, then relearned with --redo (the base measurement is kept)
  const faster = { ...o, learn: { ...o.learn, lr: 4e-3 } };
  await expect(runContinualBench(faster)).rejects.toThrow(/finetune \(differs in: learn\.lr\); use --redo finetune/);
  const redone: ContinualEvent[] = [];
  const r = await runContinualBench({ ...faster, redo: ['finetune'], onEvent: (e) => redone.push(e) });
  expect(redone.filter((e) => e.job === 'base').map((e) => e.phase)).toEqual(['cached']);
  expect(redone.some((e) => e.job === 'finetune' && e.phase === 'learn')).toBe(true);
  expect(r.methods.finetune.settings.learn.lr).toBe(4e-3);
  // a folder from before settings were held per method: the stored config's settings are the method's
  const dir = path.join(o.workDir, 'methods', 'finetune');
  fs.rmSync(path.join(dir, 'settings.json'));
  await expect(runContinualBench(o)).rejects.toThrow(/finetune \(differs in: learn\.lr\)/);
  fs.rmSync(path.join(dir, 'settings.json'));
  const legacy: ContinualEvent[] = [];
  await runContinualBench({ ...faster, onEvent: (e) => legacy.push(e) });
  expect(legacy.map((e) => e.phase)).toEqual(['cached', 'cached']);
}, 90000);

test('a second method in a worker process (--workers 2) reuses the shared base measurement', async () => {
  const r = await runContinualBench({ ...opts, methods: ['museummaker', 'textual-inversion'], workers: 2 });
  const ti = r.methods['textual-inversion'];
  expect(ti.S.map((row) => row.length)).toEqual([1, 2]);
  expect(ti.base_before).toBe(r.methods.museummaker.base_before);
  // textual inversion stores token rows only: a few hundred bytes per style, far below the LoRA's
  expect(ti.bytes_per_style).toBeLessThan(r.methods.museummaker.bytes_per_style);
  expect(fs.existsSync(path.join(r.config.work_dir, 'methods', 'textual-inversion', 'cells', 't2-pointillism.png'))).toBe(true);
}, 90000);

test('resuming a work folder leaves its files as they are (a checkout path or a newer settings key does not rewrite them)', () => {
  const work = path.join(tmp, 'untouched');
  const config = resolveContinualConfig({ ...opts, workDir: work });
  prepareWorkDir(work, config, true);
  const configFile = path.join(work, 'config.json');
  const settingsFile = path.join(work, 'methods', 'museummaker', 'settings.json');
  // a folder written before loraStyleBlock existed: the key is absent and reads as its legacy value
  const saved = JSON.parse(fs.readFileSync(settingsFile, 'utf8'));
  delete saved.learn.loraStyleBlock;
  fs.writeFileSync(settingsFile, JSON.stringify(saved));
  const before = [fs.readFileSync(configFile, 'utf8'), fs.readFileSync(settingsFile, 'utf8')];
  prepareWorkDir(work, { ...config, model_dir: '/another/checkout/models/atelier' });
  expect([fs.readFileSync(configFile, 'utf8'), fs.readFileSync(settingsFile, 'utf8')]).toEqual(before);
  // a method new to the folder gets its settings, and config.json records the invocation that learns it
  prepareWorkDir(work, { ...config, model_dir: '/another/checkout/models/atelier', methods: ['museummaker', 'finetune'] });
  expect(JSON.parse(fs.readFileSync(path.join(work, 'methods', 'finetune', 'settings.json'), 'utf8')).learn.lr).toBe(config.learn.lr);
  expect(fs.readFileSync(settingsFile, 'utf8')).toBe(before[1]);
  expect(JSON.parse(fs.readFileSync(configFile, 'utf8')).methods).toEqual(['museummaker', 'finetune']);
});

describe('continual worker lifecycle', () => {
  it('a busy worker exits when its coordinator goes away (the IPC channel closes) instead of training on as an orphan', async () => {
    const work = path.join(tmp, 'orphan');
    const config = resolveContinualConfig({ ...opts, workDir: work, steps: 100000 });
    prepareWorkDir(work, config, true);
    const { file, execArgv } = workerScript(path.join(__dirname, '..', 'src', 'continual.ts'), 'continual_worker');
    const child = fork(file, [], { execArgv, stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const learning = new Promise<void>((resolve) => child.on('message', (m: WorkerReply) => m.type === 'event' && m.event.phase === 'learn' && resolve()));
    child.send({ type: 'run', config, workDir: work, job: { kind: 'method', method: 'museummaker' } } satisfies WorkerRequest);
    await learning; // mid-task: a 100000-step style would keep it busy for hours
    child.disconnect();
    const code = await Promise.race([exited, new Promise<'alive'>((r) => setTimeout(() => r('alive'), 10000))]);
    if (code === 'alive') child.kill('SIGKILL');
    expect(code).toBe(1);
  }, 60000);
});
