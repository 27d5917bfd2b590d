import * as path from 'path';
import * as fs from 'fs';
import { initBackend, loadSafetensors, tf } from '@museum/tensor';
import {
  DDIMScheduler,
  DDPMScheduler,
  DPMSolverMultistepScheduler,
  EulerAncestralDiscreteScheduler,
  createGenerator,
  createScheduler,
  noiseSchedule,
  resolveConfig,
} from '../src';

const FIX = path.join(__dirname, 'fixtures', 'scheduler');
const fixture = JSON.parse(fs.readFileSync(path.join(FIX, 'schedule.json'), 'utf8'));
const SD_CONFIG = fixture.config;

function relErr(ours: tf.Tensor, theirs: tf.Tensor): number {
  const a = ours.dataSync();
  const b = theirs.dataSync();
  expect(a.length).toBe(b.length);
  let maxDiff = 0;
  let maxRef = 0;
  for (let i = 0; i < a.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
    maxRef = Math.max(maxRef, Math.abs(b[i]));
  }
  return maxDiff / maxRef;
}

/** Runs a sampler from x0 with eps[i] as the model output at step i; returns the max rel error per step. */
function trajectoryErrors(sched: DDIMScheduler | DPMSolverMultistepScheduler, name: string): number[] {
  const { tensors } = loadSafetensors(path.join(FIX, 'trajectories.safetensors'));
  const errs: number[] = [];
  try {
    let x = tf.clone(tensors.get('x0')!);
    const eps = tensors.get('eps')!;
    const ref = tensors.get(name)!;
    sched.timesteps.forEach((t, i) => {
      const e = tf.tidy(() => tf.squeeze(tf.slice(eps, [i], [1]), [0]));
      const next = sched.step(e, t, x);
      e.dispose();
      x.dispose();
      x = next;
      const r = tf.tidy(() => tf.squeeze(tf.slice(ref, [i], [1]), [0]));
      errs.push(relErr(x, r));
      r.dispose();
    });
    x.dispose();
    sched.dispose();
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  return errs;
}

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

describe('noise schedule', () => {
  it('alphas_cumprod at 0, 500, 999 match upstream and the closed form', () => {
    const ac = new DDPMScheduler(SD_CONFIG).alphasCumprod;
    expect(ac.length).toBe(1000);
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);
    expect(rel(ac[0], fixture.alphas_cumprod_first)).toBeLessThan(1e-6);
    expect(rel(ac[500], fixture.alphas_cumprod_500)).toBeLessThan(1e-6);
    expect(rel(ac[999], fixture.alphas_cumprod_last)).toBeLessThan(1e-6);
    // closed form: ᾱ_0 = 1 − β_start; ᾱ_999 = ∏ (1 − β_i) with √β linear from √β_start to √β_end
    expect(rel(ac[0], 1 - SD_CONFIG.beta_start)).toBeLessThan(1e-6);
    let prod = 1;
    const a = Math.sqrt(SD_CONFIG.beta_start);
    const b = Math.sqrt(SD_CONFIG.beta_end);
    for (let i = 0; i < 1000; i++) prod *= 1 - (a + ((b - a) * i) / 999) ** 2;
    expect(rel(ac[999], prod)).toBeLessThan(1e-5);
    // monotone decreasing
    for (let i = 1; i < 1000; i++) expect(ac[i]).toBeLessThan(ac[i - 1]);
  });

  it('linear and cosine schedules follow their definitions', () => {
    const lin = noiseSchedule(resolveConfig({}, { beta_schedule: 'linear', beta_start: 0.0001, beta_end: 0.02 }));
    expect(lin.betas[0]).toBeCloseTo(0.0001, 8);
    expect(lin.betas[999]).toBeCloseTo(0.02, 8);
    expect(lin.betas[500] - lin.betas[499]).toBeCloseTo((0.02 - 0.0001) / 999, 8);
    const cos = noiseSchedule(resolveConfig({}, { beta_schedule: 'squaredcos_cap_v2' }));
    const f = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
    expect(cos.alphasCumprod[499]).toBeCloseTo(f(0.5) / f(0), 5);
    expect(cos.betas[999]).toBeCloseTo(0.999, 6);
  });

  it('rejects unknown schedule names', () => {
    expect(() => new DDIMScheduler({ beta_schedule: 'quadratic' as never })).toThrow(/beta_schedule/);
  });
});

describe('timesteps', () => {
  it('DDIM and DPM-Solver++ timesteps for 20 steps equal upstream', () => {
    const ddim = new DDIMScheduler(SD_CONFIG);
    ddim.setTimesteps(20);
    expect(ddim.timesteps).toEqual(fixture.ddim_timesteps);
    const dpm = new DPMSolverMultistepScheduler(SD_CONFIG);
    dpm.setTimesteps(20);
    expect(dpm.timesteps).toEqual(fixture.dpmpp2m_timesteps);
  });

  it('trailing and linspace spacings', () => {
    const t = new DDIMScheduler({ ...SD_CONFIG, timestep_spacing: 'trailing' });
    t.setTimesteps(4);
    expect(t.timesteps).toEqual([999, 749, 499, 249]);
    const l = new DDIMScheduler({ ...SD_CONFIG, timestep_spacing: 'linspace' });
    l.setTimesteps(4);
    expect(l.timesteps).toEqual([999, 666, 333, 0]);
    const e = new EulerAncestralDiscreteScheduler(SD_CONFIG);
    e.setTimesteps(4);
    expect(e.timesteps[0]).toBe(999);
    expect(e.timesteps[1]).toBeCloseTo(666, 10);
    expect(e.timesteps[3]).toBe(0);
  });
});

describe('sampler parity with diffusers v0.21.4', () => {
  it('DDIM (eta 0) trajectory', () => {
    const s = new DDIMScheduler(SD_CONFIG);
    s.setTimesteps(20);
    const errs = trajectoryErrors(s, 'ddim_trajectory');
    console.log(`DDIM trajectory max rel error ${Math.max(...errs).toExponential(2)} (final ${errs[19].toExponential(2)})`);
    expect(errs).toHaveLength(20);
    expect(Math.max(...errs)).toBeLessThan(1e-4);
  });

  it('DPM-Solver++(2M) trajectory', () => {
    const s = new DPMSolverMultistepScheduler(SD_CONFIG);
    s.setTimesteps(20);
    const errs = trajectoryErrors(s, 'dpmpp2m_trajectory');
    console.log(`DPM-Solver++(2M) trajectory max rel error ${Math.max(...errs).toExponential(2)} (final ${errs[19].toExponential(2)})`);
    expect(errs).toHaveLength(20);
    expect(Math.max(...errs)).toBeLessThan(1e-4);
  });

  it('DPM-Solver++ keeps its history per run and frees it', () => {
    const before = tf.memory().numTensors;
    const a = new DPMSolverMultistepScheduler(SD_CONFIG);
    a.setTimesteps(5);
    const x = tf.ones([1, 2, 2, 1]);
    const y1 = tf.tidy(() => a.step(tf.fill([1, 2, 2, 1], 0.1), a.timesteps[0], x));
    const y2 = tf.tidy(() => a.step(tf.fill([1, 2, 2, 1], 0.2), a.timesteps[1], y1));
    // a second run on another instance, interleaved, does not see the first run's history
    const b = new DPMSolverMultistepScheduler(SD_CONFIG);
    b.setTimesteps(5);
    const z1 = tf.tidy(() => b.step(tf.fill([1, 2, 2, 1], 0.1), b.timesteps[0], x));
    expect(Array.from(z1.dataSync())).toEqual(Array.from(y1.dataSync()));
    // restarting a run clears the history: the first step is first order again
    a.setTimesteps(5);
    const y1b = tf.tidy(() => a.step(tf.fill([1, 2, 2, 1], 0.1), a.timesteps[0], x));
    expect(Array.from(y1b.dataSync())).toEqual(Array.from(y1.dataSync()));
    a.dispose();
    b.dispose();
    tf.dispose([x, y1, y2, z1, y1b]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('stochastic samplers', () => {
  it('DDIM with eta > 0 is reproducible from a seed and differs from eta 0', () => {
    const run = (eta: number, seed: number) => {
      const s = new DDIMScheduler(SD_CONFIG);
      s.setTimesteps(5);
      const g = createGenerator(seed);
      let x = g.normal([1, 4, 4, 2]);
      for (const t of s.timesteps) {
        const out = tf.tidy(() => tf.mul(x, 0.3));
        const next = s.step(out, t, x, { eta, generator: g });
        tf.dispose([out, x]);
        x = next;
      }
      const v = Array.from(x.dataSync());
      x.dispose();
      return v;
    };
    const a = run(1, 7);
    expect(run(1, 7)).toEqual(a);
    expect(run(1, 8)).not.toEqual(a);
    expect(run(0, 7)).not.toEqual(a);
  });

  it('DDIM with eta 1 adds noise of std η·√(σ²_t) per step', () => {
    const s = new DDIMScheduler(SD_CONFIG);
    s.setTimesteps(10);
    const t = s.timesteps[3];
    const x = tf.zeros([1, 64, 64, 4]);
    const eps = tf.zeros([1, 64, 64, 4]);
    const det = s.step(eps, t, x, { eta: 0 });
    const sto = s.step(eps, t, x, { eta: 1, generator: createGenerator(3) });
    const ac = s.alphasCumprod;
    const aT = ac[t];
    const aPrev = ac[t - 100];
    const expectedStd = Math.sqrt(((1 - aPrev) / (1 - aT)) * (1 - aT / aPrev));
    const diff = tf.sub(sto, det);
    const std = Math.sqrt(tf.moments(diff).variance.dataSync()[0]);
    expect(Math.abs(std - expectedStd) / expectedStd).toBeLessThan(0.05);
    tf.dispose([x, eps, det, sto, diff]);
    expect(() => s.step(tf.zeros([1]), t, tf.zeros([1]), { eta: 1 })).toThrow(/generator/);
  });

  it('Euler ancestral: sigmas, init noise sigma, input scaling and a noise-free limit', () => {
    const s = new EulerAncestralDiscreteScheduler(SD_CONFIG);
    s.setTimesteps(10);
    const ac = s.alphasCumprod;
    const sigmaMax = Math.sqrt((1 - ac[999]) / ac[999]);
    expect(s.sigmas[0]).toBeCloseTo(sigmaMax, 4);
    expect(s.sigmas[10]).toBe(0);
    expect(s.initNoiseSigma).toBeCloseTo(sigmaMax, 4);
    const x = tf.fill([1, 2, 2, 1], 2);
    const scaled = s.scaleModelInput(x, s.timesteps[0]);
    expect(scaled.dataSync()[0]).toBeCloseTo(2 / Math.sqrt(sigmaMax ** 2 + 1), 5);
    // last step (σ_to = 0) is deterministic: x0 = x − σ·ε exactly
    const tl = s.timesteps[9];
    const sig = s.sigmas[9];
    const eps = tf.fill([1, 2, 2, 1], 0.5);
    const out = s.step(eps, tl, x);
    expect(out.dataSync()[0]).toBeCloseTo(2 - sig * 0.5, 5);
    // an earlier step needs noise; seeded runs repeat
    const a = s.step(eps, s.timesteps[2], x, { generator: createGenerator(1) });
    const b = s.step(eps, s.timesteps[2], x, { generator: createGenerator(1) });
    expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    tf.dispose([x, scaled, eps, out, a, b]);
  });

  it('createScheduler builds every sampler from an SD scheduler config', () => {
    const pndm = { _class_name: 'PNDMScheduler', ...SD_CONFIG, skip_prk_steps: true };
    expect(createScheduler('ddim', pndm)).toBeInstanceOf(DDIMScheduler);
    const d = createScheduler('dpmpp-2m', pndm);
    d.setTimesteps(20);
    expect(d.timesteps).toEqual(fixture.dpmpp2m_timesteps);
    expect(createScheduler('euler-a', pndm)).toBeInstanceOf(EulerAncestralDiscreteScheduler);
    expect(() => createScheduler('plms' as never)).toThrow(/unknown sampler/);
  });
});

describe('training (DDPM)', () => {
  it('addNoise and getVelocity follow q(x_t|x_0) per sample', () => {
    const s = new DDPMScheduler(SD_CONFIG);
    const x0 = tf.tensor4d([1, 2], [2, 1, 1, 1]);
    const noise = tf.tensor4d([0.5, -1], [2, 1, 1, 1]);
    const xt = s.addNoise(x0, noise, [0, 999]);
    const v = s.getVelocity(x0, noise, [0, 999]);
    const ac = s.alphasCumprod;
    const [a, b] = xt.dataSync();
    expect(a).toBeCloseTo(Math.sqrt(ac[0]) * 1 + Math.sqrt(1 - ac[0]) * 0.5, 6);
    expect(b).toBeCloseTo(Math.sqrt(ac[999]) * 2 - Math.sqrt(1 - ac[999]), 6);
    expect(v.dataSync()[1]).toBeCloseTo(Math.sqrt(ac[999]) * -1 - Math.sqrt(1 - ac[999]) * 2, 6);
    expect(() => s.addNoise(x0, noise, [0, 1000])).toThrow(/timestep/);
    const ts = s.sampleTimesteps(1000, createGenerator(5));
    expect(Math.min(...ts)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...ts)).toBeLessThan(1000);
    expect(new Set(ts).size).toBeGreaterThan(500);
    tf.dispose([x0, noise, xt, v]);
  });

  it('DDIM recovers x0 exactly from a perfect noise prediction (v and epsilon)', () => {
    for (const prediction_type of ['epsilon', 'v_prediction'] as const) {
      const s = new DDIMScheduler({ ...SD_CONFIG, prediction_type, set_alpha_to_one: true });
      s.setTimesteps(10);
      const g = createGenerator(11);
      const x0 = g.normal([1, 3, 3, 2]);
      const noise = g.normal([1, 3, 3, 2]);
      const t = s.timesteps[0];
      const xt = s.addNoise(x0, noise, [t]);
      let x = tf.clone(xt);
      // with the true output at every step, DDIM stays on the line between x0 and the noise
      for (const ti of s.timesteps) {
        const eps = prediction_type === 'epsilon' ? tf.clone(noise) : s.getVelocity(x0, noise, [ti]);
        const next = s.step(eps, ti, x);
        tf.dispose([eps, x]);
        x = next;
      }
      expect(relErrNumbers(x.dataSync(), x0.dataSync())).toBeLessThan(1e-4);
      tf.dispose([x0, noise, xt, x]);
    }
  });
});

function relErrNumbers(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    m = Math.max(m, Math.abs(b[i]));
  }
  return d / m;
}

describe('generator', () => {
  it('is deterministic, seed-dependent and standard normal', () => {
    const a = createGenerator(42).normalArray(20000);
    const b = createGenerator(42).normalArray(20000);
    expect(a).toEqual(b);
    expect(createGenerator(43).normalArray(8)).not.toEqual(a.slice(0, 8));
    expect(createGenerator(2 ** 40 + 42).normalArray(8)).not.toEqual(a.slice(0, 8));
    let mean = 0;
    let sq = 0;
    for (const v of a) {
      mean += v;
      sq += v * v;
    }
    mean /= a.length;
    const variance = sq / a.length - mean * mean;
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(variance - 1)).toBeLessThan(0.03);
    const t = createGenerator(42).normal([2, 5, 2000]);
    expect(t.shape).toEqual([2, 5, 2000]);
    expect(Array.from(t.dataSync())).toEqual(Array.from(a));
    t.dispose();
    expect(() => createGenerator(-1)).toThrow();
    expect(() => createGenerator(1.5)).toThrow();
  });
});
