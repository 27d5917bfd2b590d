/** One jest run over every workspace; sources are compiled on the fly by swc. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/libs', '<rootDir>/services'],
  testMatch: ['**/test/**/*.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } } }] },
  moduleNameMapper: { '^@museum/([a-z-]+)$': '<rootDir>/libs/$1/src/index.ts' },
  testTimeout: 120000,
  maxWorkers: 2,
};
