/**
 * @museum/world — the procedural world the Atelier model learns from: 8 shapes x 8 colours,
 * rendered plain, in 3 pre-training styles and in the 5 benchmark styles, deterministic from a seed.
 */
export * from './rng';
export * from './content';
export * from './styles';
export * from './captions';
export * from './dataset';
export * from './png';
export * from './contact';
export * from './tensor';
export * from './textures';
export * from './revision';
