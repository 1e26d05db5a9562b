// tvm's own ESLint rules, loaded by eslint.config.js as the `tvm` plugin.
import noSilentCatch from './no-silent-catch.js';
import noUnexplainedVoid from './no-unexplained-void.js';

export default {
  meta: { name: 'eslint-plugin-tvm' },
  rules: { 'no-silent-catch': noSilentCatch, 'no-unexplained-void': noUnexplainedVoid },
};
