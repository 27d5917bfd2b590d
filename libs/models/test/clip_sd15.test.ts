import * as fs from 'fs';
import * as path from 'path';
import { tf, initBackend } from '@museum/tensor';
import { CLIPTextModel, SD15_TEXT_ENCODER_CONFIG } from '../src/index';

/** The 196 text-encoder entries of Stable Diffusion 1.5's published parameter list. */
const SHAPES = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'text_encoder', 'sd15-text-encoder-shapes.json'), 'utf8')) as Record<string, number[]>;

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

it('SD 1.5 text encoder has upstream parameter names and torch shapes', () => {
  const before = tf.memory().numTensors;
  const model = new CLIPTextModel({ ...SD15_TEXT_ENCODER_CONFIG });
  try {
    const ours: Record<string, number[]> = {};
    for (const [name, p] of model.namedParameters()) ours[name] = p.torchShape;
    expect(Object.keys(SHAPES).length).toBe(196);
    expect(Object.keys(ours).sort()).toEqual(Object.keys(SHAPES).sort());
    for (const name of Object.keys(SHAPES)) expect([name, ours[name]]).toEqual([name, SHAPES[name]]);
    // ViT-L/14's text tower: 123,060,480 parameters.
    expect(model.parameterCount()).toBe(Object.values(SHAPES).reduce((s, sh) => s + sh.reduce((a, b) => a * b, 1), 0));
    // One 77-token forward pass runs and gives the UNet's conditioning shape.
    const ids = tf.tensor2d([[49406, 320, 1125, 539, 320, 2368, 49407, ...new Array(70).fill(49407)]], [1, 77], 'int32');
    const h = model.lastHiddenState(ids);
    expect(h.shape).toEqual([1, 77, 768]);
    const finite = tf.tidy(() => tf.all(tf.isFinite(h)));
    expect(finite.dataSync()[0]).toBe(1);
    tf.dispose([ids, h, finite]);
  } finally {
    model.dispose();
  }
  expect(tf.memory().numTensors).toBe(before);
});
