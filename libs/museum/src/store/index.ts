export * from './manifest';
export * from './museum';
export { sha256Bytes, sha256File } from './fsutil';
