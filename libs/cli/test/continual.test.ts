/** `museum bench continual` option parsing (the run itself is tested in libs/bench). */
import * as path from 'node:path';
import { buildProgram } from '../src/program';
import { continualOptions } from '../src/commands/continual';
import { findRepoRoot } from '../src/paths';

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
