/** The continual benchmark's numbers on hand-made matrices with known answers. */
import { heldOutShapes } from '@museum/world';
import {
  agreement,
  checkTaskMatrix,
  contentHeldout,
  continualScores,
  countByShape,
  labelCounts,
  forgetting,
  plasticity,
  styleAccuracy,
  type TaskMatrix,
} from '../src/continual_metrics';
import { summarizeMethod, type BaseEval, type MethodRun } from '../src/continual';

// 5 tasks; S[t][s] for s ≤ t.
const S5: TaskMatrix = [
  [0.9],
  [0.7, 1.0],
  [0.95, 0.6, 0.8],
  [0.5, 0.9, 0.85, 0.75],
  [0.6, 0.5, 0.9, 0.7, 0.4],
];

describe('continual metrics', () => {
  it('A is the mean of the last row, P the mean of the diagonal', () => {
    expect(styleAccuracy(S5)).toBeCloseTo((0.6 + 0.5 + 0.9 + 0.7 + 0.4) / 5, 12);
    expect(plasticity(S5)).toBeCloseTo((0.9 + 1.0 + 0.8 + 0.75 + 0.4) / 5, 12);
  });

  it('F takes, per style, the best value over t in [s, T-2] (not only the diagonal) minus the final one', () => {
    // s=0: max(0.9, 0.7, 0.95, 0.5) = 0.95 (at t=2, after the diagonal) − 0.6 = 0.35
    // s=1: max(1.0, 0.6, 0.9) = 1.0 − 0.5 = 0.5
    // s=2: max(0.8, 0.85) = 0.85 (at t=3) − 0.9 = −0.05 (improved)
    // s=3: max(0.75) − 0.7 = 0.05;  s=4 (the last style) is not counted
    expect(forgetting(S5)).toBeCloseTo((0.35 + 0.5 - 0.05 + 0.05) / 4, 12);
    // the final row is not part of the max: a style that peaks only at the end has negative forgetting
    expect(forgetting([[0.2], [0.9, 0.5]])).toBeCloseTo(0.2 - 0.9, 12);
    // nothing to forget with one task
    expect(forgetting([[0.7]])).toBeNull();
    // no change at all → 0
    expect(forgetting([[1], [1, 1], [1, 1, 1]])).toBe(0);
  });

  it('rejects matrices that are not lower-triangular', () => {
    expect(() => checkTaskMatrix([[0.1, 0.2]])).toThrow(/row 0 must hold 1/);
    expect(() => checkTaskMatrix([[0.1], [0.2]])).toThrow(/row 1 must hold 2/);
    expect(() => checkTaskMatrix([])).toThrow(/at least one task/);
    expect(() => styleAccuracy([[NaN]])).toThrow(/finite/);
  });

  it('held-out content accuracy counts only shapes absent from each style’s training images', () => {
    // stripes trains circle/square/triangle; pointillism star/ring/cross
    const stripes = { circle: [4, 4], square: [4, 4], triangle: [0, 4], star: [1, 4], ring: [2, 4], cross: [4, 4], diamond: [0, 4], heart: [3, 4] } as Record<string, [number, number]>;
    const pointillism = { circle: [0, 4], square: [4, 4], triangle: [2, 4], star: [4, 4], ring: [4, 4], cross: [4, 4], diamond: [1, 4], heart: [1, 4] } as Record<string, [number, number]>;
    const r = contentHeldout([stripes, pointillism], [heldOutShapes('stripes'), heldOutShapes('pointillism')]);
    expect(r.byStyle[0]).toBeCloseTo((1 + 2 + 4 + 0 + 3) / 20, 12);
    expect(r.byStyle[1]).toBeCloseTo((0 + 4 + 2 + 1 + 1) / 20, 12);
    expect(r.mean).toBeCloseTo((10 / 20 + 8 / 20) / 2, 12);
    const both = continualScores([[1], [0.5, 1]], [[1], [0.25, 0.5]], [stripes, pointillism], [heldOutShapes('stripes'), heldOutShapes('pointillism')]);
    expect(both).toMatchObject({ A: 0.75, F: 0.5, P: 1 });
    expect(both.content_heldout).toBeCloseTo(0.45, 12);
    expect(() => continualScores([[1], [1, 1]], [[1]], [stripes, pointillism], [[], []])).toThrow(/C has 1/);
  });

  it('counts agreement per shape', () => {
    const pred = ['star', 'star', 'ring', 'heart', 'ring'];
    const truth = ['star', 'ring', 'ring', 'heart', 'cross'];
    expect(agreement(pred, truth)).toBeCloseTo(3 / 5, 12);
    expect(countByShape(pred, truth)).toEqual({ star: [1, 1], ring: [1, 2], heart: [1, 1], cross: [0, 1] });
    expect(() => agreement(['a'], [])).toThrow();
    expect(labelCounts(['neon', 'plain', 'neon'])).toEqual({ neon: 2, plain: 1 });
    expect(labelCounts([])).toEqual({});
  });

  it('summarizes a method run: base retention, seconds and bytes per style', () => {
    const cell = (style: 'stripes' | 'pointillism', S: number, C: number, gram: number) => ({ style, S, C, gram, images: 4, shapes: { heart: [Math.round(C * 4), 4] as [number, number] } });
    const run: MethodRun = {
      method: 'museummaker',
      styles: ['stripes', 'pointillism'],
      rows: [
        { task: 1, version: 1, seconds: 1, cells: [cell('stripes', 1, 0.75, 0.2)] },
        { task: 2, version: 2, seconds: 1, cells: [cell('stripes', 0.5, 0.5, 0.4), cell('pointillism', 0.75, 1, 0.3)] },
      ],
      base_after: { shape_acc: 0.8, colour_acc: 0.7, shapes: {}, images: 8 },
      train_seconds: [10, 30],
      bytes_by_version: [1000, 1400],
      state_bytes: 0,
      params_per_style: [5, 5],
      eval_seconds: 2,
    };
    const before: BaseEval = { shape_acc: 0.9, colour_acc: 0.95, shapes: {}, images: 8 };
    const settings = { learn: { steps: 2 }, weights: { diffusion: 1 }, components: { sdl: false, weightReg: false, featReg: false, clora: false, ewc: false, tokenOrthogonal: false } };
    const rep = summarizeMethod(run, before, settings);
    expect(rep.settings).toEqual(settings);
    expect(rep.S).toEqual([[1], [0.5, 0.75]]);
    expect(rep.C).toEqual([[0.75], [0.5, 1]]);
    expect(rep.A).toBeCloseTo(0.625, 12);
    expect(rep.F).toBeCloseTo(0.5, 12);
    expect(rep.P).toBeCloseTo(0.875, 12);
    expect(rep.base_before).toBe(0.9);
    expect(rep.base_after).toBe(0.8);
    expect(rep.base_colour_after).toBe(0.7);
    expect(rep.train_seconds_per_style).toBe(20);
    expect(rep.bytes_per_style).toBe(700);
    expect(rep.bytes_added_by_version).toEqual([1000, 400]);
    expect(rep.gram_final).toEqual([0.4, 0.3]);
    expect(rep.gram_mean).toBeCloseTo(0.35, 12);
    // heart is held out for both styles: 2/4 and 4/4
    expect(rep.content_heldout).toBeCloseTo(0.75, 12);
    expect(() => summarizeMethod({ ...run, rows: run.rows.slice(0, 1) }, before, settings)).toThrow(/1 judged rows for 2 styles/);
  });
});
