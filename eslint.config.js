// Type-aware lint: the rules that matter most here catch un-awaited promises in SSH and lab code.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['.scratch/**', 'node_modules/**', 'dist/**', 'reports/**', '.cache/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js', 'bin/*.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true, allowNullish: true }],
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // One time axis: events, faults and steps are stamped with harness/clock.ts now() (monotonic,
    // from the process start). Date.now() is the wall clock, which a long run can see stepped away
    // from it: a bound computed with one and compared with the other moves by that step.
    files: ['harness/**/*.ts', 'suites/**/*.ts'],
    rules: {
      'no-restricted-properties': ['error', { object: 'Date', property: 'now', message: 'use now() from harness/clock.ts: the time axis of every event' }],
    },
  },
  {
    files: ['test/**/*.ts', 'suites/**/*.ts'],
    rules: {
      // chai's property assertions (expect(x).to.be.true) are expressions by design
      '@typescript-eslint/no-unused-expressions': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
    },
  },
);
