/**
 * Loaded museum versions of one stage (task-token rows in the text encoder, shared-LoRA weights in
 * the denoiser), by version number. A request pins the version it starts with, so a version
 * hot-loaded from an event never changes a request in flight; unpinned old versions are evicted
 * beyond `keep`. Versions are immutable, so a loaded one never needs reloading.
 */
import { notFound } from './errors';

export interface VersionCacheOptions<T> {
  /** Load version `v` (reject with NOT_FOUND when the museum has no such version). */
  load: (version: number) => Promise<T>;
  dispose: (value: T, version: number) => void;
  /** The newest version the museum has committed (asked at start and when a request names a newer one). */
  latest: () => Promise<number>;
  /** Unpinned versions kept loaded besides the latest (default 2). */
  keep?: number;
}

interface Entry<T> {
  value: Promise<T>;
  pins: number;
  lastUsed: number;
}

export interface PinnedVersion<T> {
  version: number;
  value: T;
  release(): void;
}

export class VersionCache<T> {
  private readonly entries = new Map<number, Entry<T>>();
  private latestKnown = -1;
  private clock = 0;
  private closed = false;

  constructor(private readonly o: VersionCacheOptions<T>) {}

  /** The newest version seen so far (from the museum or from events); -1 before `refresh`. */
  get latest(): number {
    return this.latestKnown;
  }

  /** Versions loaded (or loading) now. */
  get loaded(): number[] {
    return [...this.entries.keys()].sort((a, b) => a - b);
  }

  /** Ask the museum for its newest version; loads it. */
  async refresh(): Promise<number> {
    const v = await this.o.latest();
    await this.announce(v);
    return this.latestKnown;
  }

  /** A version was committed (event): load it now so the first request does not wait, and make it the latest. */
  async announce(version: number): Promise<void> {
    if (version > this.latestKnown) this.latestKnown = version;
    const pinned = await this.acquire(version);
    pinned.release();
  }

  /** Pin `version` (default: the latest) for the life of a request; call `release()` when done. */
  async acquire(version?: number): Promise<PinnedVersion<T>> {
    if (this.closed) throw new Error('version cache is closed');
    let v = version ?? this.latestKnown;
    if (v < 0) v = await this.refresh();
    if (version !== undefined && version > this.latestKnown) {
      // maybe committed but its event is not here yet: ask the museum
      const newest = await this.o.latest();
      if (newest > this.latestKnown) this.latestKnown = newest;
      if (version > newest) throw notFound(`museum_version ${version} does not exist (the latest is ${newest})`);
    }
    let e = this.entries.get(v);
    if (!e) {
      e = { value: this.o.load(v), pins: 0, lastUsed: 0 };
      this.entries.set(v, e);
      const entry = e;
      e.value.catch(() => {
        if (this.entries.get(v) === entry) this.entries.delete(v);
      });
    }
    e.pins++;
    e.lastUsed = ++this.clock;
    let value: T;
    try {
      value = await e.value;
    } catch (err) {
      e.pins--;
      throw err;
    }
    let released = false;
    const entry = e;
    return {
      version: v,
      value,
      release: () => {
        if (released) return;
        released = true;
        entry.pins--;
        this.evict();
      },
    };
  }

  private evict(): void {
    const keep = this.o.keep ?? 2;
    const idle = [...this.entries.entries()].filter(([v, e]) => e.pins === 0 && v !== this.latestKnown).sort((a, b) => b[1].lastUsed - a[1].lastUsed);
    for (const [v, e] of idle.slice(keep)) {
      this.entries.delete(v);
      void e.value.then((x) => this.o.dispose(x, v)).catch(() => {});
    }
  }

  /** Dispose every loaded version (pinned ones too: call after in-flight requests ended). */
  async close(): Promise<void> {
    this.closed = true;
    for (const [v, e] of this.entries) {
      try {
        this.o.dispose(await e.value, v);
      } catch {
        // failed loads have nothing to free
      }
    }
    this.entries.clear();
  }
}
