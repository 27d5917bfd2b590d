export * from './manifest';
export * from './museum';
export { replaceFileAtomic, sha256Bytes, sha256File } from './fsutil';
