/**
 * The museum store: an immutable, versioned record of learned styles on the filesystem.
 *
 *   <dir>/HEAD                          the latest committed version, e.g. `000003`
 *   <dir>/versions/000000/manifest.json version 0: the base model, no styles
 *   <dir>/versions/000003/manifest.json base reference, styles 1..3 with their metadata
 *                        lora.safetensors    the shared LoRA after style 3 (peft names, `unet.` prefix)
 *                        tokens.safetensors  the task-token table (textual-inversion format)
 *                        state/*.safetensors per-method state (EWC Fisher, joint images)
 *                        adapters/*.safetensors per-style LoRAs (the `separate` method)
 *
 * Commit protocol: the new version is built in `versions/.tmp-…`, every file fsync'd, the folder renamed to
 * its number, then HEAD is replaced atomically (temp file + rename). HEAD is the single commit point: a crash
 * anywhere before its rename leaves the previous version as the latest, intact; leftovers (temp folders,
 * numbered folders above HEAD) are never read and are removed by the next commit or open.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { tf, loadSafetensors, saveSafetensors } from '@museum/tensor';
import { MuseumError, styleTokenOf, validateStyleName } from '../errors';
import { fsyncPath, isProcessAlive, replaceFileAtomic, sha256File, writeFileDurable } from './fsutil';
import {
  BaseModelRef,
  FileRef,
  LoraConfigRecord,
  StyleRecord,
  VERSION_FORMAT,
  VersionManifest,
  baseRefFromFolder,
  checkManifest,
  parseVersionName,
  versionName,
} from './manifest';

export const HEAD_FILE = 'HEAD';
export const LOCK_FILE = 'LOCK';
export const VERSIONS_DIR = 'versions';
/** A folder beside the versions where services keep their own records (the trainer's job journal); not part of any version. */
export const RECORDS_DIR = 'records';
export const MANIFEST_FILE = 'manifest.json';
export const LORA_FILE = 'lora.safetensors';
export const TOKENS_FILE = 'tokens.safetensors';

const STATE_KEY = /^[a-z0-9_-]{1,64}$/;

/** Tensors to write as one safetensors file (the caller keeps ownership of the tensors). */
export interface TensorFile {
  tensors: Map<string, tf.Tensor>;
  metadata?: Record<string, string>;
  dtype?: 'F32' | 'F16';
}

/** A new style's record as the learner fills it; the store adds index, version and file references. */
export type NewStyleRecord = Omit<StyleRecord, 'index' | 'version' | 'adapter' | 'token'>;

export interface CommitVersionInput {
  /** The version this one builds on: it must still be the latest (else FAILED_PRECONDITION). */
  parent: number;
  method: string;
  style: NewStyleRecord;
  /** The shared LoRA after this style as a peft state dict (`unet.<path>.lora_A.weight` …), or null for none. */
  lora?: (TensorFile & { config: LoraConfigRecord }) | null;
  /** The whole token table of the version, token → [hidden] (textual-inversion format). */
  tokens?: Map<string, tf.Tensor> | null;
  /** Per-method state files, keyed by a name of [a-z0-9_-]. */
  state?: Record<string, TensorFile>;
  /** Per-style adapters (the `separate` method): every style's own LoRA, old and new. */
  adapters?: Record<string, TensorFile & { config: LoraConfigRecord }>;
  /** Commit time (default: now), ISO 8601. */
  createdAt?: string;
}

/** Test seams: called after each step of a commit; throwing (or killing the process) simulates a crash there. */
export interface CommitHooks {
  onStage?(stage: 'file-written' | 'manifest-written' | 'version-renamed' | 'head-written', detail: string): void;
}

/** A version's tensors, loaded; `dispose()` frees them all. */
export interface LoadedVersion {
  manifest: VersionManifest;
  /** The shared LoRA state dict (torch layout, peft names) and its metadata, or null. */
  lora: { tensors: Map<string, tf.Tensor>; metadata: Record<string, string>; config: LoraConfigRecord } | null;
  /** token → [hidden] rows of the styles learned with a token of their own. */
  tokens: Map<string, tf.Tensor>;
  /** style name → its own LoRA state dict (the `separate` method). */
  adapters: Map<string, { tensors: Map<string, tf.Tensor>; metadata: Record<string, string>; config: LoraConfigRecord }>;
  dispose(): void;
}

export interface OpenMuseumOptions {
  /** The base model folder; when given its hash must match the museum's base (FAILED_PRECONDITION otherwise). */
  baseModelDir?: string;
  /** Check the base folder's hash on open (default true when `baseModelDir` is given). */
  verifyBase?: boolean;
}

export interface CreateMuseumOptions {
  /** A diffusers folder: referenced by path and content hash. */
  baseModelDir?: string;
  /** Or a ready reference (e.g. `baseRefFromModules` for models built in-process). */
  base?: BaseModelRef;
}

function nowIso(): string {
  return new Date().toISOString();
}

function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new MuseumError('NOT_FOUND', `cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new MuseumError('DATA_LOSS', `${file} is not valid JSON: ${(err as Error).message}`);
  }
}

export class Museum {
  private constructor(
    readonly dir: string,
    /** The base model folder this museum was opened with (or recorded at creation), if any. */
    readonly baseModelDir: string | null,
  ) {}

  // ---------------------------------------------------------------------------------------------- open/create

  /** Create a museum at `dir` (absent or empty) with version 0 = the base model and no styles. */
  static create(dir: string, options: CreateMuseumOptions): Museum {
    const abs = path.resolve(dir);
    if (fs.existsSync(path.join(abs, HEAD_FILE))) throw new MuseumError('ALREADY_EXISTS', `a museum already exists at ${abs}`);
    if (fs.existsSync(abs) && fs.readdirSync(abs).some((f) => f !== VERSIONS_DIR && f !== LOCK_FILE && f !== RECORDS_DIR)) {
      throw new MuseumError('FAILED_PRECONDITION', `${abs} is not empty`);
    }
    let base = options.base;
    if (!base) {
      if (!options.baseModelDir) throw new MuseumError('INVALID_ARGUMENT', 'Museum.create needs baseModelDir or base');
      base = baseRefFromFolder(options.baseModelDir);
    }
    if (!/^sha256:[0-9a-f]{64}$/.test(base.hash)) throw new MuseumError('INVALID_ARGUMENT', `base hash ${JSON.stringify(base.hash)} is not sha256:<hex>`);
    fs.mkdirSync(path.join(abs, VERSIONS_DIR), { recursive: true });
    const museum = new Museum(abs, options.baseModelDir ? path.resolve(options.baseModelDir) : base.path);
    museum.withLock(() => {
      museum.cleanLeftovers(-1); // a create that crashed before HEAD leaves only leftovers
      const manifest: VersionManifest = {
        format: VERSION_FORMAT,
        version: 0,
        parent: null,
        createdAt: nowIso(),
        base,
        method: null,
        lora: null,
        tokens: null,
        styles: [],
        state: {},
        bytes: 0,
      };
      museum.publish(manifest, () => {}, undefined);
    });
    return museum;
  }

  /** Open an existing museum (NOT_FOUND when there is none); removes leftovers of crashed commits when unlocked. */
  static open(dir: string, options: OpenMuseumOptions = {}): Museum {
    const abs = path.resolve(dir);
    if (!fs.existsSync(path.join(abs, HEAD_FILE))) throw new MuseumError('NOT_FOUND', `no museum at ${abs} (no ${HEAD_FILE})`);
    const probe = new Museum(abs, null);
    const base = probe.manifest(0).base;
    if (options.baseModelDir && (options.verifyBase ?? true)) {
      const actual = baseRefFromFolder(options.baseModelDir);
      if (actual.hash !== base.hash) {
        throw new MuseumError('FAILED_PRECONDITION', `base model at ${actual.path} (${actual.hash}) is not the museum's base (${base.hash})`);
      }
    }
    const museum = new Museum(abs, options.baseModelDir ? path.resolve(options.baseModelDir) : base.path);
    museum.tryWithLock(() => museum.cleanLeftovers(museum.latestVersion()));
    return museum;
  }

  /** Open the museum at `dir`, creating it when there is none. */
  static openOrCreate(dir: string, options: CreateMuseumOptions & OpenMuseumOptions): Museum {
    return fs.existsSync(path.join(path.resolve(dir), HEAD_FILE)) ? Museum.open(dir, options) : Museum.create(dir, options);
  }

  // ---------------------------------------------------------------------------------------------- reading

  /** The latest committed version (what HEAD names). */
  latestVersion(): number {
    const file = path.join(this.dir, HEAD_FILE);
    const text = fs.readFileSync(file, 'utf8').trim();
    const n = parseVersionName(text);
    if (n === null) throw new MuseumError('DATA_LOSS', `${file} holds ${JSON.stringify(text)}, not a version number`);
    return n;
  }

  versionDir(n: number): string {
    return path.join(this.dir, VERSIONS_DIR, versionName(n));
  }

  private checkVersion(n: number | undefined): number {
    const latest = this.latestVersion();
    const v = n ?? latest;
    if (!Number.isInteger(v) || v < 0) throw new MuseumError('INVALID_ARGUMENT', `version must be a non-negative integer, got ${n}`);
    if (v > latest) throw new MuseumError('NOT_FOUND', `museum ${this.dir} has no version ${v} (latest is ${latest})`);
    return v;
  }

  /** The manifest of version `n` (default: the latest). */
  manifest(n?: number): VersionManifest {
    const v = this.checkVersion(n);
    const file = path.join(this.versionDir(v), MANIFEST_FILE);
    return checkManifest(readJson(file), v, file);
  }

  get base(): BaseModelRef {
    return this.manifest(0).base;
  }

  /** The styles of version `n` (default: the latest), in the order they were learned. */
  listStyles(version?: number): StyleRecord[] {
    return this.manifest(version).styles;
  }

  getStyle(name: string, version?: number): StyleRecord {
    const s = this.listStyles(version).find((x) => x.name === name);
    if (!s) throw new MuseumError('NOT_FOUND', `style ${JSON.stringify(name)} is not in version ${version ?? this.latestVersion()}`);
    return s;
  }

  /** Throws INVALID_ARGUMENT for a malformed name and ALREADY_EXISTS for one the latest version holds. */
  checkNewStyleName(name: unknown): string {
    const n = validateStyleName(name);
    if (this.listStyles().some((s) => s.name === n)) throw new MuseumError('ALREADY_EXISTS', `style ${JSON.stringify(n)} already exists in this museum`);
    return n;
  }

  private verifiedPath(v: number, ref: FileRef, verify: boolean): string {
    const file = path.join(this.versionDir(v), ref.file);
    if (!fs.existsSync(file)) throw new MuseumError('DATA_LOSS', `version ${v}: ${ref.file} is missing`);
    if (verify) {
      const sha = sha256File(file);
      if (sha !== ref.sha256) throw new MuseumError('DATA_LOSS', `version ${v}: ${ref.file} has sha256 ${sha}, the manifest records ${ref.sha256}`);
    }
    return file;
  }

  /** Read one safetensors file of a version, checking its hash (the caller owns the tensors). */
  private loadRef(v: number, ref: FileRef, verify: boolean): { tensors: Map<string, tf.Tensor>; metadata: Record<string, string> } {
    return loadSafetensors(this.verifiedPath(v, ref, verify));
  }

  /** The shared LoRA, task tokens and per-style adapters of version `n` (default: the latest). */
  loadVersion(n?: number, options: { verify?: boolean } = {}): LoadedVersion {
    const v = this.checkVersion(n);
    const verify = options.verify ?? true;
    const manifest = this.manifest(v);
    const owned: tf.Tensor[] = [];
    const track = (m: Map<string, tf.Tensor>) => {
      owned.push(...m.values());
      return m;
    };
    try {
      let lora: LoadedVersion['lora'] = null;
      if (manifest.lora) {
        const { tensors, metadata } = this.loadRef(v, manifest.lora, verify);
        const { file: _f, sha256: _s, bytes: _b, ...config } = manifest.lora;
        lora = { tensors: track(tensors), metadata, config };
      }
      const tokens = manifest.tokens ? track(this.loadRef(v, manifest.tokens, verify).tensors) : new Map<string, tf.Tensor>();
      const adapters: LoadedVersion['adapters'] = new Map();
      for (const s of manifest.styles) {
        if (!s.adapter) continue;
        const { tensors, metadata } = this.loadRef(v, s.adapter, verify);
        const { file: _f, sha256: _s, bytes: _b, ...config } = s.adapter;
        adapters.set(s.name, { tensors: track(tensors), metadata, config });
      }
      for (const s of manifest.styles) {
        if (s.embedding.kind === 'token' && !tokens.has(s.token)) throw new MuseumError('DATA_LOSS', `version ${v}: no token row for ${s.token}`);
      }
      return { manifest, lora, tokens, adapters, dispose: () => tf.dispose(owned) };
    } catch (err) {
      tf.dispose(owned);
      throw err;
    }
  }

  /** A per-method state file of version `n` (NOT_FOUND when the version keeps none under `key`). */
  loadState(n: number, key: string, options: { verify?: boolean } = {}): { tensors: Map<string, tf.Tensor>; metadata: Record<string, string> } {
    const v = this.checkVersion(n);
    const ref = this.manifest(v).state[key];
    if (!ref) throw new MuseumError('NOT_FOUND', `version ${v} keeps no state '${key}'`);
    return this.loadRef(v, ref, options.verify ?? true);
  }

  // ---------------------------------------------------------------------------------------------- writing

  /**
   * Commit version parent+1 = the parent's styles plus `input.style`, with the given LoRA, token table and
   * state. Atomic (see the file comment); returns the new manifest.
   */
  commitVersion(input: CommitVersionInput, hooks?: CommitHooks): VersionManifest {
    const name = validateStyleName(input.style.name);
    return this.withLock(() => {
      const latest = this.latestVersion();
      if (input.parent !== latest) {
        throw new MuseumError('FAILED_PRECONDITION', `commit builds on version ${input.parent} but the latest is ${latest}`);
      }
      const parent = this.manifest(latest);
      if (parent.styles.some((s) => s.name === name)) throw new MuseumError('ALREADY_EXISTS', `style ${JSON.stringify(name)} already exists in this museum`);
      if (parent.method !== null && parent.method !== input.method) {
        throw new MuseumError('FAILED_PRECONDITION', `this museum learns with method '${parent.method}', not '${input.method}'`);
      }
      for (const key of Object.keys(input.state ?? {})) {
        if (!STATE_KEY.test(key)) throw new MuseumError('INVALID_ARGUMENT', `state key ${JSON.stringify(key)} must match ${STATE_KEY}`);
      }
      this.cleanLeftovers(latest);
      const version = latest + 1;
      const token = styleTokenOf(name);
      const manifest: VersionManifest = {
        format: VERSION_FORMAT,
        version,
        parent: latest,
        createdAt: input.createdAt ?? nowIso(),
        base: parent.base,
        method: input.method,
        lora: null,
        tokens: null,
        styles: [],
        state: {},
        bytes: 0,
      };
      const newStyle: StyleRecord = { ...input.style, name, token, index: version, version };
      const writeFiles = (tmp: string) => {
        const write = (rel: string, f: TensorFile): FileRef => {
          const file = path.join(tmp, rel);
          fs.mkdirSync(path.dirname(file), { recursive: true });
          saveSafetensors(file, f.tensors, { metadata: { format: 'pt', ...f.metadata }, dtype: f.dtype ?? 'F32' });
          const ref = { file: rel, sha256: sha256File(file), bytes: fs.statSync(file).size };
          hooks?.onStage?.('file-written', rel);
          return ref;
        };
        if (input.lora) {
          const { config, ...f } = input.lora;
          manifest.lora = { ...write(LORA_FILE, f), ...config };
        }
        if (input.tokens && input.tokens.size > 0) manifest.tokens = write(TOKENS_FILE, { tensors: input.tokens });
        for (const [key, f] of Object.entries(input.state ?? {})) manifest.state[key] = write(`state/${key}.safetensors`, f);
        const adapters = input.adapters ?? {};
        manifest.styles = [...parent.styles, newStyle].map((s) => {
          const a = adapters[s.name];
          if (!a) return { ...s, adapter: undefined };
          const { config, ...f } = a;
          return { ...s, adapter: { ...write(`adapters/${s.name}.safetensors`, f), ...config } };
        });
        for (const a of Object.keys(adapters)) {
          if (!manifest.styles.some((s) => s.name === a)) throw new MuseumError('INVALID_ARGUMENT', `adapter for unknown style ${a}`);
        }
        manifest.styles = manifest.styles.map((s) => JSON.parse(JSON.stringify(s)) as StyleRecord); // drop undefined fields
        manifest.bytes = [manifest.lora, manifest.tokens, ...Object.values(manifest.state), ...manifest.styles.map((s) => s.adapter)].reduce(
          (sum, r) => sum + (r ? r.bytes : 0),
          0,
        );
      };
      this.publish(manifest, writeFiles, hooks);
      return manifest;
    });
  }

  /** Build a version folder in a temp dir, rename it into place, then move HEAD (the commit point). */
  private publish(manifest: VersionManifest, writeFiles: (tmp: string) => void, hooks: CommitHooks | undefined): void {
    const versions = path.join(this.dir, VERSIONS_DIR);
    const finalDir = this.versionDir(manifest.version);
    const tmp = path.join(versions, `.tmp-${versionName(manifest.version)}-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
    let renamed = false;
    try {
      fs.mkdirSync(tmp);
      writeFiles(tmp);
      writeFileDurable(path.join(tmp, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
      hooks?.onStage?.('manifest-written', MANIFEST_FILE);
      for (const sub of ['state', 'adapters']) if (fs.existsSync(path.join(tmp, sub))) fsyncPath(path.join(tmp, sub));
      fsyncPath(tmp);
      fs.renameSync(tmp, finalDir);
      renamed = true;
      fsyncPath(versions);
      hooks?.onStage?.('version-renamed', versionName(manifest.version));
      replaceFileAtomic(path.join(this.dir, HEAD_FILE), versionName(manifest.version) + '\n');
      hooks?.onStage?.('head-written', versionName(manifest.version));
    } catch (err) {
      // Not committed unless HEAD names the new version: remove what was built (a real crash leaves it for cleanLeftovers).
      let head = -1;
      try {
        head = this.latestVersion();
      } catch {
        // no HEAD yet (creating)
      }
      if (head !== manifest.version) {
        fs.rmSync(renamed ? finalDir : tmp, { recursive: true, force: true });
        fs.rmSync(tmp, { recursive: true, force: true });
      }
      throw err;
    }
  }

  /** Remove temp folders and uncommitted numbered folders (above `head`); call with the lock held. */
  private cleanLeftovers(head: number): void {
    const versions = path.join(this.dir, VERSIONS_DIR);
    if (!fs.existsSync(versions)) return;
    for (const e of fs.readdirSync(versions)) {
      const n = parseVersionName(e);
      if (e.startsWith('.tmp-') || (n !== null && n > head)) fs.rmSync(path.join(versions, e), { recursive: true, force: true });
    }
    for (const e of fs.readdirSync(this.dir)) {
      if (e.startsWith(`.${HEAD_FILE}.`) && e.endsWith('.tmp')) fs.rmSync(path.join(this.dir, e), { force: true });
    }
  }

  // ---------------------------------------------------------------------------------------------- locking

  /** Take the museum's lock file (stale locks of dead processes are broken); FAILED_PRECONDITION when held. */
  private acquireLock(): boolean {
    const file = path.join(this.dir, LOCK_FILE);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        writeFileDurable(file, `${process.pid}\n`);
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const pid = Number(fs.readFileSync(file, 'utf8').trim());
        if (isProcessAlive(pid)) return false;
        fs.rmSync(file, { force: true }); // its owner died mid-commit
      }
    }
    return false;
  }

  private releaseLock(): void {
    fs.rmSync(path.join(this.dir, LOCK_FILE), { force: true });
  }

  private withLock<T>(fn: () => T): T {
    if (!this.acquireLock()) throw new MuseumError('FAILED_PRECONDITION', `museum ${this.dir} is being written by another process (${LOCK_FILE} held)`);
    try {
      return fn();
    } finally {
      this.releaseLock();
    }
  }

  private tryWithLock(fn: () => void): void {
    if (!this.acquireLock()) return;
    try {
      fn();
    } finally {
      this.releaseLock();
    }
  }
}
