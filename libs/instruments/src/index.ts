/**
 * @museum/instruments — the benchmark's measuring instruments: small CNN classifiers of world
 * images (style, shape, colour), trained only on fresh world renders and shipped in
 * models/instruments, plus a classifier-free Gram style distance under a fixed random conv net.
 */
export * from './classifier';
export * from './norm';
export * from './augment';
export * from './data';
export * from './train';
export * from './io';
export * from './gram';
export { trainAndSaveInstruments, type TrainAllOptions, type InstrumentSummary } from './train-instruments';
