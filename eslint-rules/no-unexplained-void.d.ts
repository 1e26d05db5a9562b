// Types for the rules' unit tests (the rule itself is plain JS: eslint.config.js loads it untranspiled).
import type { Rule } from 'eslint';

declare const rule: Rule.RuleModule;
export default rule;
