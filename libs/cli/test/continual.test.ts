/** `museum bench continual` option parsing (the run itself is tested in libs/bench). */
import * as path from 'node:path';
import { buildProgram } from '../src/program';
import { continualOptions } from '../src/commands/continual';
import { findRepoRoot } from '../src/paths';
import { learnOverrides } from '../src/flags';

test('parses lists and numbers, defaults the work folder per mode, and rejects unknown methods and styles', () => {
  const o = continualOptions({ methods: 'museummaker, ewc', styles: 'stripes,neon', steps: '20', seeds: '3,4', workers: '2', quick: true, model: '/m' }, {});
  expect(o).toMatchObject({ methods: ['museummaker', 'ewc'], styles: ['stripes', 'neon'], steps: 20, seeds: [3, 4], workers: 2, quick: true, modelDir: path.resolve('/m') });
  expect(o.workDir).toBe(path.join(findRepoRoot(), '.cache', 'continual', 'quick'));
  expect(continualOptions({ workers: '1' }, { MUSEUM_MODEL_DIR: '/models' }).modelDir).toBe(path.resolve('/models/atelier'));
  expect(continualOptions({ workers: '1' }, {}).workDir).toMatch(/continual[/\\]full$/);
  expect(() => continualOptions({ methods: 'museummaker,lora-magic', workers: '1' })).toThrow(/unknown method 'lora-magic'/);
  expect(() => continualOptions({ styles: 'plain', workers: '1' })).toThrow(/unknown style 'plain'/);
  expect(() => continualOptions({ workers: '0' })).toThrow(/--workers must be a positive integer/);
  expect(() => continualOptions({ workers: '1', sampler: 'plms' })).toThrow(/--sampler/);
});

test('is registered under `museum bench`, next to learn and styles at the top level', () => {
  const program = buildProgram();
  const names = program.commands.map((c) => c.name());
  expect(names).toEqual(expect.arrayContaining(['learn', 'styles', 'generate', 'bench']));
  const bench = program.commands.find((c) => c.name() === 'bench')!;
  expect(bench.commands.map((c) => c.name())).toContain('continual');
  const gen = program.commands.find((c) => c.name() === 'generate')!;
  expect(gen.options.map((x) => x.long)).toEqual(expect.arrayContaining(['--museum', '--version']));
});

test('--set overrides learning settings and loss weights by their library names, typed by the defaults', () => {
  const argv = ['node', 'museum', 'bench', 'continual', '--set', 'lr=3e-3', '--set', 'loraTargets=all-attention', '--set', 'weights.sdl=1.5', '--set', 'jointScaleSteps=false'];
  let parsed: Record<string, unknown> | undefined;
  const program = buildProgram();
  const cont = program.commands.find((c) => c.name() === 'bench')!.commands.find((c) => c.name() === 'continual')!;
  cont.action((o: Record<string, unknown>) => {
    parsed = o;
  });
  program.parse(argv);
  const o = continualOptions({ workers: '1', ...(parsed as { set: string[] }) }, {});
  expect(o.learn).toEqual({ lr: 3e-3, loraTargets: 'all-attention', jointScaleSteps: false });
  expect(o.weights).toEqual({ sdl: 1.5 });
  expect(learnOverrides([])).toEqual({ learn: {}, weights: {} });
  expect(() => learnOverrides(['learningRate=1'])).toThrow(/no setting 'learningRate'; one of steps, .*lr/);
  expect(() => learnOverrides(['weights.beauty=1'])).toThrow(/no loss term 'beauty'/);
  expect(() => learnOverrides(['lr=fast'])).toThrow(/--set lr must be a number, got 'fast'/);
  expect(() => learnOverrides(['weights.sdl=-1'])).toThrow(/≥ 0/);
  expect(() => learnOverrides(['jointScaleSteps=yes'])).toThrow(/true or false/);
  expect(() => learnOverrides(['lr'])).toThrow(/key=value/);
  // a share is a number or its named default; a word setting keeps a word
  expect(learnOverrides(['featRegEmptyShare=0.5', 'initWord=paint']).learn).toEqual({ featRegEmptyShare: 0.5, initWord: 'paint' });
  expect(learnOverrides(['featRegEmptyShare=uniform']).learn).toEqual({ featRegEmptyShare: 'uniform' });
});
