/** One jest run over every workspace; sources are compiled on the fly by swc. */
const fs = require('fs');
const path = require('path');

module.exports = {
  testEnvironment: 'node',
  // Only folders that exist (a fresh clone has no empty folders).
  roots: ['libs', 'services', 'loadtests', 'deploy'].filter((d) => fs.existsSync(path.join(__dirname, d))).map((d) => `<rootDir>/${d}`),
  testMatch: ['**/test/**/*.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } } }] },
  // libs first, then services (a service package is @museum/<folder under services/>)
  moduleNameMapper: { '^@museum/([a-z-]+)$': ['<rootDir>/libs/$1/src/index.ts', '<rootDir>/services/$1/src/index.ts'] },
  testTimeout: 120000,
  maxWorkers: 2,
};
