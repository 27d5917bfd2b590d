/**
 * The one door to TensorFlow.js for the whole project: every other lib imports `tf` from here,
 * so that backend selection and the extra kernels are in place before any op runs.
 */
import * as tf from '@tensorflow/tfjs-core';

export { tf };
export * from './backend';
export * from './safetensors';
export * from './images';
export * from './kernels';
export * from './bench';
