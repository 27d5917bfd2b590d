/**
 * Time for the load runner: the real clock, or a simulated one for tests. The simulated clock is a
 * discrete-event scheduler: `sleep` registers a timer, and time jumps to the earliest timer only once
 * every pending promise has settled (a setImmediate tick), so concurrent workers, timers and calls
 * interleave exactly as they would in real time, only instantly and deterministically.
 */
export interface Clock {
  /** Milliseconds (monotonic). */
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms))),
};

interface Timer {
  at: number;
  seq: number;
  resolve: () => void;
}

export class SimulatedClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly timers: Timer[] = [];
  private ticking = false;

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.timers.push({ at: this.t + Math.max(0, ms), seq: this.seq++, resolve });
      this.schedule();
    });
  }

  /** Timers not fired yet. */
  get pending(): number {
    return this.timers.length;
  }

  private schedule(): void {
    if (this.ticking) return;
    this.ticking = true;
    setImmediate(() => {
      this.ticking = false;
      if (this.timers.length === 0) return;
      // the earliest timer (ties: the one registered first)
      let k = 0;
      for (let i = 1; i < this.timers.length; i++) {
        const a = this.timers[i];
        const b = this.timers[k];
        if (a.at < b.at || (a.at === b.at && a.seq < b.seq)) k = i;
      }
      const [timer] = this.timers.splice(k, 1);
      this.t = Math.max(this.t, timer.at);
      timer.resolve();
      if (this.timers.length > 0) this.schedule();
    });
  }
}
