import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { initBackend, tf } from '@museum/tensor';
import { HEAD_FILE, LOCK_FILE, Museum, MuseumError, VERSIONS_DIR, baseRefFromFolder, type CommitVersionInput } from '../src';
import { tmpDir } from './tiny';

const BASE = { kind: 'weights' as const, path: null, hash: `sha256:${'ab'.repeat(32)}` };
const CONFIG = { rank: 2, alpha: 2, targets: 'cross-attention' as const, projections: ['to_k'] };

function styleInput(museum: Museum, name: string, seed: number, parent = museum.latestVersion()): CommitVersionInput {
  const tokens = new Map<string, tf.Tensor>();
  for (const s of museum.listStyles()) tokens.set(s.token, tf.fill([3], s.index));
  tokens.set(`<${name}>`, tf.randomNormal([3], 0, 1, 'float32', seed));
  return {
    parent,
    method: 'finetune',
    style: {
      name,
      embedding: { kind: 'token', initWord: 'style' },
      method: 'finetune',
      images: [{ sha256: 'f'.repeat(64), caption: `a red star in <${name}>`, width: 8, height: 8 }],
      settings: { steps: 1 },
      metrics: { loss_total: 0.5 },
      trainSeconds: 1.5,
      createdAt: new Date().toISOString(),
    },
    lora: {
      tensors: new Map([
        ['unet.mid.attn2.to_k.lora_A.weight', tf.randomNormal([2, 3], 0, 1, 'float32', seed + 1)],
        ['unet.mid.attn2.to_k.lora_B.weight', tf.randomNormal([4, 2], 0, 1, 'float32', seed + 2)],
      ]),
      config: CONFIG,
    },
    tokens,
  };
}

function disposeInput(input: CommitVersionInput): void {
  tf.dispose([...(input.lora?.tensors.values() ?? []), ...(input.tokens?.values() ?? [])]);
}

function commit(museum: Museum, name: string, seed: number): void {
  const input = styleInput(museum, name, seed);
  try {
    museum.commitVersion(input);
  } finally {
    disposeInput(input);
  }
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof MuseumError) return err.code;
    throw err;
  }
  return undefined;
}

/** Everything about a version that must not change: HEAD, manifest bytes, every file's bytes. */
function snapshot(dir: string): string {
  const head = fs.readFileSync(path.join(dir, HEAD_FILE), 'utf8');
  const vdir = path.join(dir, VERSIONS_DIR, head.trim());
  const files = fs
    .readdirSync(vdir, { recursive: true })
    .map(String)
    .sort()
    .filter((f) => fs.statSync(path.join(vdir, f)).isFile());
  return head + files.map((f) => `${f}:${fs.readFileSync(path.join(vdir, f)).toString('base64')}`).join('|');
}

function entries(dir: string): string[] {
  return fs.readdirSync(path.join(dir, VERSIONS_DIR)).sort();
}

let root: string;
beforeAll(async () => {
  await initBackend({ log: () => {} });
  root = tmpDir('museum-store-');
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('museum store', () => {
  it('starts at version 0 (the base, no styles) and numbers versions one by one', () => {
    const dir = path.join(root, 'basic');
    const museum = Museum.create(dir, { base: BASE });
    expect(museum.latestVersion()).toBe(0);
    expect(fs.readFileSync(path.join(dir, HEAD_FILE), 'utf8')).toBe('000000\n');
    const v0 = museum.loadVersion(0);
    expect(v0.lora).toBeNull();
    expect(v0.tokens.size).toBe(0);
    expect(v0.manifest.base).toEqual(BASE);
    v0.dispose();

    commit(museum, 'stripes', 1);
    commit(museum, 'neon', 2);
    expect(museum.latestVersion()).toBe(2);
    expect(entries(dir)).toEqual(['000000', '000001', '000002']);
    expect(museum.listStyles().map((s) => [s.name, s.token, s.index, s.version])).toEqual([
      ['stripes', '<stripes>', 1, 1],
      ['neon', '<neon>', 2, 2],
    ]);
    expect(museum.listStyles(1).map((s) => s.name)).toEqual(['stripes']);
    expect(museum.manifest(2).parent).toBe(1);

    // a version's tensors round-trip, and older versions stay as they were
    const v1 = museum.loadVersion(1);
    const v2 = museum.loadVersion(2);
    expect([...v2.tokens.keys()].sort()).toEqual(['<neon>', '<stripes>']);
    expect(Array.from(v2.tokens.get('<stripes>')!.dataSync())).toEqual([1, 1, 1]);
    expect(v1.lora!.config).toEqual(CONFIG);
    expect(v1.lora!.tensors.get('unet.mid.attn2.to_k.lora_B.weight')!.shape).toEqual([4, 2]);
    const a1 = v1.lora!.tensors.get('unet.mid.attn2.to_k.lora_A.weight')!.dataSync();
    const a2 = v2.lora!.tensors.get('unet.mid.attn2.to_k.lora_A.weight')!.dataSync();
    expect(Array.from(a1)).not.toEqual(Array.from(a2));
    v1.dispose();
    v2.dispose();

    // reopening sees the same museum
    const again = Museum.open(dir);
    expect(again.latestVersion()).toBe(2);
    expect(codeOf(() => again.manifest(3))).toBe('NOT_FOUND');
    expect(codeOf(() => Museum.create(dir, { base: BASE }))).toBe('ALREADY_EXISTS');
    expect(codeOf(() => Museum.open(path.join(root, 'nowhere')))).toBe('NOT_FOUND');
  });

  it('rejects invalid and taken style names with the right code and changes nothing', () => {
    const dir = path.join(root, 'names');
    const museum = Museum.create(dir, { base: BASE });
    commit(museum, 'stripes', 1);
    const before = snapshot(dir);
    for (const bad of ['', 'Stripes', 'a b', 'x'.repeat(49), 'neon!', '../up', 'ünï']) {
      const input = styleInput(museum, 'placeholder', 3);
      input.style.name = bad;
      expect(codeOf(() => museum.checkNewStyleName(bad))).toBe('INVALID_ARGUMENT');
      expect(codeOf(() => museum.commitVersion(input))).toBe('INVALID_ARGUMENT');
      disposeInput(input);
    }
    const taken = styleInput(museum, 'stripes', 4);
    expect(codeOf(() => museum.checkNewStyleName('stripes'))).toBe('ALREADY_EXISTS');
    expect(codeOf(() => museum.commitVersion(taken))).toBe('ALREADY_EXISTS');
    disposeInput(taken);
    // a commit built on a version that is no longer the latest is refused
    const stale = styleInput(museum, 'neon', 5, 0);
    expect(codeOf(() => museum.commitVersion(stale))).toBe('FAILED_PRECONDITION');
    disposeInput(stale);
    // the museum's method is fixed by its first style
    const other = styleInput(museum, 'neon', 6);
    other.method = 'ewc';
    expect(codeOf(() => museum.commitVersion(other))).toBe('FAILED_PRECONDITION');
    disposeInput(other);
    expect(snapshot(dir)).toBe(before);
    expect(entries(dir)).toEqual(['000000', '000001']);
    expect(codeOf(() => museum.checkNewStyleName('x'.repeat(48)))).toBeUndefined();
  });

  it.each(['file-written', 'manifest-written', 'version-renamed'] as const)('a failure at %s leaves the previous version as the latest, intact', (stage) => {
    const dir = path.join(root, `fail-${stage}`);
    const museum = Museum.create(dir, { base: BASE });
    commit(museum, 'stripes', 1);
    const before = snapshot(dir);
    const input = styleInput(museum, 'neon', 2);
    expect(() =>
      museum.commitVersion(input, {
        onStage: (s) => {
          if (s === stage) throw new Error('injected');
        },
      }),
    ).toThrow('injected');
    disposeInput(input);
    expect(museum.latestVersion()).toBe(1);
    expect(snapshot(dir)).toBe(before);
    expect(entries(dir)).toEqual(['000000', '000001']); // nothing half-built is left behind
    expect(fs.existsSync(path.join(dir, LOCK_FILE))).toBe(false);
    const v = museum.loadVersion(1);
    expect(v.manifest.styles.map((s) => s.name)).toEqual(['stripes']);
    v.dispose();
    commit(museum, 'neon', 3); // and the next commit is version 2
    expect(museum.latestVersion()).toBe(2);
  });

  it.each([
    ['file-written', 'lora.safetensors'],
    ['file-written', 'tokens.safetensors'],
    ['manifest-written', ''],
    ['version-renamed', ''],
  ])('a process killed at %s %s leaves HEAD and the previous version loadable', (stage, detail) => {
    const dir = path.join(root, `kill-${stage}-${detail}`);
    const museum = Museum.create(dir, { base: BASE });
    commit(museum, 'stripes', 1);
    const before = snapshot(dir);
    const child = spawnSync(process.execPath, ['-r', path.resolve(__dirname, '../../../scripts/ts-register.js'), path.join(__dirname, 'crash_child.ts'), dir, stage, detail], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(child.signal).toBe('SIGKILL');
    // the dead process left its lock and its half-built version behind
    expect(fs.existsSync(path.join(dir, LOCK_FILE))).toBe(true);
    expect(entries(dir).length).toBe(3);
    expect(snapshot(dir)).toBe(before);

    const reopened = Museum.open(dir);
    expect(reopened.latestVersion()).toBe(1);
    expect(entries(dir)).toEqual(['000000', '000001']); // leftovers removed on open
    expect(fs.existsSync(path.join(dir, LOCK_FILE))).toBe(false); // the stale lock was broken
    const v = reopened.loadVersion(1);
    expect(v.tokens.has('<stripes>')).toBe(true);
    v.dispose();
    commit(reopened, 'neon', 2);
    expect(reopened.latestVersion()).toBe(2);
    expect(reopened.listStyles().map((s) => s.name)).toEqual(['stripes', 'neon']);
  });

  it('detects corrupted files and refuses a second writer', () => {
    const dir = path.join(root, 'corrupt');
    const museum = Museum.create(dir, { base: BASE });
    commit(museum, 'stripes', 1);
    const file = path.join(museum.versionDir(1), 'lora.safetensors');
    const bytes = fs.readFileSync(file);
    bytes[bytes.length - 1] ^= 0xff;
    fs.writeFileSync(file, bytes);
    expect(codeOf(() => museum.loadVersion(1).dispose())).toBe('DATA_LOSS');
    // a live process holding the lock (this one) blocks a commit
    fs.writeFileSync(path.join(dir, LOCK_FILE), `${process.pid}\n`);
    const input = styleInput(museum, 'neon', 2);
    expect(codeOf(() => museum.commitVersion(input))).toBe('FAILED_PRECONDITION');
    disposeInput(input);
    fs.rmSync(path.join(dir, LOCK_FILE));
    expect(museum.latestVersion()).toBe(1);
  });

  it('binds a museum to its base folder by content hash', () => {
    const base = path.join(root, 'base-model');
    fs.mkdirSync(path.join(base, 'unet'), { recursive: true });
    fs.writeFileSync(path.join(base, 'model_index.json'), '{"_class_name": "StableDiffusionPipeline"}');
    fs.writeFileSync(path.join(base, 'unet', 'diffusion_pytorch_model.safetensors'), Buffer.from([1, 2, 3]));
    const ref = baseRefFromFolder(base);
    expect(Object.keys(ref.files!)).toEqual(['model_index.json', 'unet/diffusion_pytorch_model.safetensors']);
    const dir = path.join(root, 'with-base');
    const museum = Museum.create(dir, { baseModelDir: base });
    expect(museum.base.hash).toBe(ref.hash);
    expect(Museum.open(dir, { baseModelDir: base }).baseModelDir).toBe(path.resolve(base));
    // sampling defaults recommend how to generate: not part of the model the styles are bound to
    fs.writeFileSync(path.join(base, 'sampling_config.json'), '{"guidance_interval": [0, 880]}');
    expect(baseRefFromFolder(base).hash).toBe(ref.hash);
    expect(codeOf(() => Museum.open(dir, { baseModelDir: base }))).toBeUndefined();
    fs.writeFileSync(path.join(base, 'unet', 'diffusion_pytorch_model.safetensors'), Buffer.from([1, 2, 4]));
    expect(codeOf(() => Museum.open(dir, { baseModelDir: base }))).toBe('FAILED_PRECONDITION');
    expect(codeOf(() => Museum.open(dir, { baseModelDir: base, verifyBase: false }))).toBeUndefined();
  });
});
