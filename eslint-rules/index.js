// tvm's own ESLint rules, loaded by eslint.config.js as the `tvm` plugin.
import noSilentCatch from './no-silent-catch.js';

export default {
  meta: { name: 'eslint-plugin-tvm' },
  rules: { 'no-silent-catch': noSilentCatch },
};
